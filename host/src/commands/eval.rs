//! `podlight eval`: a policy on a snapshot, the frame printed (and shown).

use super::args::{DEFAULT_LED_COUNT, DeviceArgs, EngineArgs, ShowArgs};
use super::build::{read_settings, show};
use anyhow::{Context, Result};
use clap::Args;
use podlight::device::WriterOptions;
use podlight::explain::{PolicyName, explain, render};
use podlight::frame::ansi_blocks;
use podlight::state::Snapshot;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Also say why each LED has its colour: the policy's rule and the pods, nodes
    /// and alerts behind it (with --json: the explanation as JSON).
    #[arg(long)]
    explain: bool,
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
    let settings = read_settings(args.settings.as_deref())?;
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
    let explanation = args.explain.then(|| {
        explain(
            &snapshot,
            &frame,
            &frame.leds,
            &PolicyName {
                name: policy.name(),
                sha256: &policy.info().sha256,
            },
        )
    });
    if args.json {
        match &explanation {
            Some(explanation) => outln!("{}", serde_json::to_string(explanation)?)?,
            None => outln!("{}", serde_json::to_string(&frame)?)?,
        }
    } else {
        outln!("{}", ansi_blocks(&frame.leds))?;
        if let Some(ms) = frame.again_after_ms {
            outln!("again after {ms} ms")?;
        }
        if let Some(explanation) = &explanation {
            out!(
                "{}",
                render(
                    explanation,
                    None,
                    std::io::IsTerminal::is_terminal(&std::io::stdout())
                )
            )?;
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
