//! The virtual device, for people without a stick: an emulated BlinkStick driven
//! through the whole protocol path, whose LEDs are drawn in the terminal.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use super::emulator::{EmulatorBus, Firmware};
use crate::device::manager::{DeviceOptions, StickSpec};
use crate::device::protocol::{Layout, Model};
use crate::device::writer::FrameObserver;
use crate::frame::{Rgb, ansi_blocks};

pub const VIRTUAL_SERIAL: &str = "BSVIRTUAL-2.0";

/// A bus with one emulated stick of `led_count` LEDs (a Pro in WS2812 mode, which
/// takes 1 to 192), and the options that select it.
pub fn virtual_stick(led_count: usize) -> (Arc<EmulatorBus>, DeviceOptions) {
    let bus = Arc::new(EmulatorBus::new());
    bus.plug(Firmware::new(Model::Pro, VIRTUAL_SERIAL));
    let layout = Layout::new(Model::Pro, Some(led_count));
    let spec = StickSpec {
        serial: Some(VIRTUAL_SERIAL.into()),
        model: Some(layout.model),
        led_count: Some(layout.led_count),
    };
    (
        bus,
        DeviceOptions {
            sticks: vec![spec],
            ..DeviceOptions::default()
        },
    )
}

/// How the virtual device shows its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDisplay {
    /// Redrawn in place on a terminal, every fade step.
    Terminal,
    /// A `leds: …` line on stderr per settled frame (colour blocks and `#rrggbb`).
    Lines,
    /// A log event per settled frame (`frame shown`, field `leds`), so a JSON log
    /// stays JSON.
    Log,
}

impl FrameDisplay {
    /// On a terminal, redraw; otherwise lines, or log events when the log is JSON.
    pub fn for_stderr(json_logs: bool) -> FrameDisplay {
        if json_logs {
            FrameDisplay::Log
        } else if std::io::stderr().is_terminal() {
            FrameDisplay::Terminal
        } else {
            FrameDisplay::Lines
        }
    }
}

/// Shows the virtual stick's frames as `display` says.
pub fn frame_observer(display: FrameDisplay) -> FrameObserver {
    Box::new(move |leds: &[Rgb], settled: bool| match display {
        FrameDisplay::Terminal => {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", ansi_blocks(leds));
            let _ = err.flush();
        }
        FrameDisplay::Lines if settled => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "leds: {}", ansi_blocks(leds));
            let _ = err.flush();
        }
        FrameDisplay::Log if settled => {
            let codes: Vec<String> = leds.iter().map(Rgb::to_string).collect();
            tracing::info!(leds = %codes.join(" "), "frame shown");
        }
        FrameDisplay::Lines | FrameDisplay::Log => {}
    })
}
