//! `podlight eval` and `podlight plugin check`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use podlight::device::WriterOptions;
use podlight::frame::ansi_blocks;
use podlight::policy::{BUILTIN_NAME, Backend, EngineOptions, Policy, PolicyEngine};
use podlight::state::Snapshot;

use super::device::{DeviceArgs, ShowArgs, show};

/// LEDs to evaluate for when no device says how many.
const DEFAULT_LED_COUNT: usize = 8;

#[derive(Args)]
pub struct EngineArgs {
    /// Run plugins on the Pulley interpreter instead of native code.
    #[arg(long)]
    pulley: bool,
    /// Keep compiled plugins here so an unchanged plugin is not compiled again.
    #[arg(long, env = "PODLIGHT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Deadline of one evaluation, in milliseconds.
    #[arg(long, default_value_t = 50)]
    deadline_ms: u64,
    /// Memory a plugin may use, in MiB.
    #[arg(long, default_value_t = 32)]
    memory_mib: usize,
    /// Largest plugin accepted, in MiB, before and after decompression (a Python
    /// policy is about 18 MiB).
    #[arg(long, default_value_t = 32)]
    max_plugin_mib: usize,
}

impl EngineArgs {
    pub fn engine(&self) -> Result<PolicyEngine> {
        let options = EngineOptions {
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            memory_limit: self.memory_mib << 20,
            max_plugin_size: self.max_plugin_mib << 20,
            cache_dir: self.cache_dir.clone(),
            backend: if self.pulley {
                Backend::Pulley
            } else {
                Backend::native()
            },
        };
        Ok(PolicyEngine::new(options)?)
    }

    fn load(&self, engine: &PolicyEngine, plugin: &str) -> Result<Policy> {
        let policy = if plugin == BUILTIN_NAME {
            engine.builtin()?
        } else {
            engine.load_file(Path::new(plugin))?
        };
        Ok(policy)
    }
}

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
        println!("{}", serde_json::to_string(&frame)?);
    } else {
        println!("{}", ansi_blocks(&frame.leds));
        if let Some(ms) = frame.again_after_ms {
            println!("again after {ms} ms");
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
        println!("{}", serde_json::to_string_pretty(info)?);
        return Ok(());
    }
    println!("plugin:     {}", info.name);
    println!(
        "contract:   podlight:policy@{} (host speaks {})",
        info.contract_version,
        podlight::policy::CONTRACT_VERSION
    );
    let size = if info.gzip {
        format!(
            "{} bytes gzip, {} bytes component",
            info.file_bytes, info.component_bytes
        )
    } else {
        format!("{} bytes", info.component_bytes)
    };
    println!("size:       {size}");
    println!("sha256:     {}", info.sha256);
    println!("backend:    {}", engine.options().backend.name());
    println!("imports:    {}", info.imports.len());
    for import in &info.imports {
        println!("  {import}");
    }
    println!("ok: loads, starts and evaluates an empty node");
    Ok(())
}
