//! `podlight replay`: a recorded timeline through a policy, at its recorded pace (or
//! faster), frame by frame on stdout and, with `--show`, on the sticks. Between
//! records the policy's own `again-after-ms` hints are followed, so animations play.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use podlight::device::{FrameWriter, WriterOptions};
use podlight::frame::{Frame, ansi_blocks, hex_codes};
use podlight::policy_test::plan::read_timeline;
use podlight::state::Snapshot;
use serde_json::json;

use super::args::{DEFAULT_LED_COUNT, DeviceArgs, EngineArgs};
use super::build::read_settings;

#[derive(Args)]
pub struct ReplayArgs {
    /// A timeline written by `podlight record`.
    timeline: PathBuf,
    /// A .wasm or .wasm.gz component, or `builtin` for the default policy.
    plugin: String,
    /// The policy's settings file (JSON by convention).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Play this many times faster than recorded; 0: as fast as the policy evaluates.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Show the frames on the sticks (`--device virtual`: in the terminal).
    #[arg(long)]
    show: bool,
    #[command(flatten)]
    device: DeviceArgs,
    /// Print each frame as a JSON line (`atMs` after the first record, `leds`,
    /// `againAfterMs`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Hint-driven frames between two records are capped, so a policy asking every
/// millisecond cannot stall a replay of a long recording.
const MAX_FRAMES_BETWEEN_RECORDS: u32 = 10_000;

pub fn replay(args: ReplayArgs) -> Result<()> {
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        bail!(
            "--speed {} is not a speed: use a positive factor, or 0 for no waiting",
            args.speed
        );
    }
    let text = std::fs::read_to_string(&args.timeline)
        .with_context(|| format!("cannot read the timeline {}", args.timeline.display()))?;
    let records = read_timeline(&text)
        .map_err(|e| anyhow::anyhow!("timeline {}: {e}", args.timeline.display()))?;
    let settings = read_settings(args.settings.as_deref())?;
    let engine = args.engine.engine()?;
    let policy = Arc::new(args.engine.load(&engine, &args.plugin)?);
    let mut instance = policy.instantiate(settings)?;
    let (writer, led_count) = if args.show {
        let manager = args.device.connect()?;
        let led_count = manager.led_count();
        let options = WriterOptions {
            brightness_cap: args.device.brightness_cap,
            ..WriterOptions::default()
        };
        let writer = FrameWriter::spawn(manager, options, args.device.observer());
        (Some(writer), led_count)
    } else {
        (None, args.device.leds.unwrap_or(DEFAULT_LED_COUNT))
    };
    let led_count = u32::try_from(led_count).context("too many LEDs")?;
    let first_ms = records.first().map_or(0, |(_, s)| s.now_ms);
    let started = Instant::now();
    let colour = std::io::stdout().is_terminal() && !args.json;
    let mut play = |snapshot: &Arc<Snapshot>, at_ms: u64| -> Result<Frame> {
        if args.speed > 0.0 {
            let due = started + Duration::from_secs_f64(at_ms as f64 / 1000.0 / args.speed);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let frame = instance.evaluate_at(snapshot, led_count, first_ms + at_ms)?;
        print_frame(at_ms, &frame, args.json, colour)?;
        if let Some(writer) = &writer {
            writer.set_target(frame.leds.clone());
        }
        Ok(frame)
    };
    let mut previous: Option<(Arc<Snapshot>, u64, Frame)> = None;
    for (offset, record) in &records {
        // The animation the last frame asked for, up to this record.
        if let Some((snapshot, mut at, mut frame)) = previous.take() {
            let mut frames = 0;
            while let Some(hint) = frame.again_after_ms.filter(|&h| h > 0) {
                at += u64::from(hint);
                frames += 1;
                if at >= *offset || frames > MAX_FRAMES_BETWEEN_RECORDS {
                    break;
                }
                frame = play(&snapshot, at)?;
            }
        }
        let snapshot = Arc::new(record.clone());
        let frame = play(&snapshot, *offset)?;
        previous = Some((snapshot, *offset, frame));
    }
    if let Some(writer) = writer {
        writer.shutdown(false);
    }
    Ok(())
}

fn print_frame(at_ms: u64, frame: &Frame, json: bool, colour: bool) -> Result<()> {
    if json {
        outln!(
            "{}",
            json!({"atMs": at_ms, "leds": frame.leds, "againAfterMs": frame.again_after_ms})
        )?;
    } else if colour {
        outln!(
            "+{:>9.3}s  {}",
            at_ms as f64 / 1000.0,
            ansi_blocks(&frame.leds)
        )?;
    } else {
        outln!(
            "+{:>9.3}s  {}",
            at_ms as f64 / 1000.0,
            hex_codes(&frame.leds)
        )?;
    }
    Ok(())
}
