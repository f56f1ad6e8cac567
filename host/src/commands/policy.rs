//! `podlight eval`, `podlight plugin check` and `podlight plugin compile`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use podlight::device::WriterOptions;
use podlight::frame::ansi_blocks;
use podlight::policy::compile::{EXIT_INVALID, limit_this_process};
use podlight::policy::{Backend, CompileBudget, EngineOptions, PolicyEngine, PolicyError};
use podlight::state::Snapshot;

use super::args::{DeviceArgs, EngineArgs, ShowArgs, show};

/// LEDs to evaluate for when no device says how many.
const DEFAULT_LED_COUNT: usize = 8;

#[derive(Args)]
pub struct EvalArgs {
    /// A .wasm or .wasm.gz component, or `builtin` for the default policy.
    plugin: String,
    /// A snapshot JSON file (as `podlight snapshot` prints), or `-` for stdin.
    snapshot: String,
    /// Show the frame on the sticks (`--device virtual`: in the terminal); the LED
    /// count is then the device's.
    #[arg(long)]
    show: bool,
    #[command(flatten)]
    hold: ShowArgs,
    /// The sticks to show on, and `--leds`: the LED count to evaluate for (default 8).
    #[command(flatten)]
    device: DeviceArgs,
    /// The policy's settings file (JSON by convention).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Print the frame as JSON.
    #[arg(long)]
    json: bool,
    /// Evaluate this many times and print the mean time per evaluation (to stderr).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    #[command(flatten)]
    engine: EngineArgs,
}

fn read_snapshot(source: &str) -> Result<Snapshot> {
    let text = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the snapshot from stdin")?;
        text
    } else {
        std::fs::read_to_string(source)
            .with_context(|| format!("cannot read the snapshot file {source}"))?
    };
    Snapshot::from_json(&text).with_context(|| format!("snapshot {source}"))
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let snapshot = Arc::new(read_snapshot(&args.snapshot)?);
    let settings = args
        .settings
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the settings file {}", path.display()))
        })
        .transpose()?;
    let engine = args.engine.engine()?;
    let policy = Arc::new(args.engine.load(&engine, &args.plugin)?);
    let mut instance = policy.instantiate(settings)?;
    let manager = args.show.then(|| args.device.connect()).transpose()?;
    let led_count = match &manager {
        Some(manager) => manager.led_count(),
        None => args.device.leds.unwrap_or(DEFAULT_LED_COUNT),
    };
    let led_count = u32::try_from(led_count).context("too many LEDs")?;
    let mut frame = instance.evaluate(&snapshot, led_count)?;
    if args.repeat > 1 {
        let started = std::time::Instant::now();
        for _ in 0..args.repeat {
            frame = instance.evaluate(&snapshot, led_count)?;
        }
        let per_call = started.elapsed() / args.repeat;
        eprintln!(
            "{} evaluations of {} pods on {}: {:.2} µs each",
            args.repeat,
            snapshot.pods.len(),
            engine.options().backend.name(),
            per_call.as_secs_f64() * 1e6
        );
    }
    if args.json {
        outln!("{}", serde_json::to_string(&frame)?)?;
    } else {
        outln!("{}", ansi_blocks(&frame.leds))?;
        if let Some(ms) = frame.again_after_ms {
            outln!("again after {ms} ms")?;
        }
    }
    match manager {
        Some(manager) => show(
            manager,
            &args.device,
            frame.leds,
            WriterOptions::default().fade,
            args.hold,
        ),
        None => Ok(()),
    }
}

#[derive(Args)]
pub struct CheckArgs {
    /// A .wasm or .wasm.gz component, or `builtin`.
    plugin: String,
    #[command(flatten)]
    engine: EngineArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn plugin_check(args: CheckArgs) -> Result<()> {
    let json = args.json;
    let engine = args.engine.engine()?;
    let policy = Arc::new(args.engine.load(&engine, &args.plugin)?);
    // A plugin that cannot even start on an empty node is not valid.
    let mut instance = policy.instantiate(None)?;
    let empty = Arc::new(Snapshot::new(Default::default(), Vec::new(), 0));
    instance.evaluate(&empty, 1)?;
    let info = policy.info();
    if json {
        outln!("{}", serde_json::to_string_pretty(info)?)?;
        return Ok(());
    }
    outln!("plugin:     {}", info.name)?;
    outln!(
        "contract:   podlight:policy@{} (host speaks {})",
        info.contract_version,
        podlight::policy::CONTRACT_VERSION
    )?;
    let size = if info.gzip {
        format!(
            "{} bytes gzip, {} bytes component",
            info.file_bytes, info.component_bytes
        )
    } else {
        format!("{} bytes", info.component_bytes)
    };
    outln!("size:       {size}")?;
    outln!("sha256:     {}", info.sha256)?;
    outln!("backend:    {}", engine.options().backend.name())?;
    outln!("imports:    {}", info.imports.len())?;
    for import in &info.imports {
        outln!("  {import}")?;
    }
    outln!("ok: loads, starts and evaluates an empty node")?;
    Ok(())
}

/// This binary, to run as the compiling child: its path from /proc, else how it was
/// started (where /proc is not mounted, e.g. a bare chroot), else `podlight` on PATH.
#[derive(Args)]
pub struct CompileArgs {
    /// The component to compile (.wasm, uncompressed).
    input: PathBuf,
    /// Where to write the compiled artifact.
    output: PathBuf,
    /// Compile for the Pulley interpreter.
    #[arg(long)]
    pulley: bool,
    /// Refuse to use more memory than this, in MiB.
    #[arg(long)]
    memory_budget_mib: Option<usize>,
    /// Refuse to use more CPU time than this, in seconds.
    #[arg(long)]
    cpu_budget_seconds: Option<u64>,
}

/// Compiles one plugin for this machine's engine, under budgets applied to this very
/// process: the agent and the other commands run this as their compiling child, and
/// load only what it writes.
pub fn plugin_compile(args: CompileArgs) -> Result<()> {
    let defaults = CompileBudget::default();
    limit_this_process(
        args.memory_budget_mib.map_or(defaults.memory, |m| m << 20),
        args.cpu_budget_seconds
            .map_or(defaults.cpu, Duration::from_secs),
    )
    .context("cannot apply the compile budget")?;
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let engine = PolicyEngine::new(EngineOptions {
        backend: if args.pulley {
            Backend::Pulley
        } else {
            Backend::native()
        },
        // One thread: a lower memory peak within the budget, and the agent's other
        // core stays free.
        parallel_compilation: false,
        ..EngineOptions::default()
    })?;
    let name = args
        .input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let artifact = match engine.precompile(&name, &bytes) {
        Ok(artifact) => artifact,
        Err(PolicyError::Invalid { reason, .. }) => {
            eprintln!("{reason}");
            std::process::exit(EXIT_INVALID);
        }
        Err(error) => return Err(error.into()),
    };
    std::fs::write(&args.output, artifact)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(())
}
