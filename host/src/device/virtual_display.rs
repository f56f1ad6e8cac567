//! The virtual device, for people without a stick: an emulated BlinkStick driven
//! through the whole protocol path, whose LEDs are drawn in the terminal.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use super::emulator::{EmulatorBus, Firmware};
use super::manager::{DeviceOptions, StickSpec};
use super::protocol::{Layout, Model};
use super::writer::FrameObserver;
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

/// Draws frames on stderr: redrawn in place on a terminal (every fade step), one
/// line per settled frame otherwise.
pub fn terminal_observer() -> FrameObserver {
    let tty = std::io::stderr().is_terminal();
    Box::new(move |leds: &[Rgb], settled: bool| {
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r\x1b[2K{}", ansi_blocks(leds))
        } else if settled {
            writeln!(err, "leds: {}", ansi_blocks(leds))
        } else {
            Ok(())
        };
        let _ = err.flush();
    })
}
