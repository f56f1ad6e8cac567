//! `podlight emulate`: a virtual light through Linux uhid.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use podlight::device::protocol::Model;
use podlight::device::sim::uhid::{UhidFirmware, UhidLight};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EmulatedFamily {
    Blinkstick,
    Blink1,
    Luxafor,
}

#[derive(Args)]
pub struct EmulateArgs {
    /// The family to be: blinkstick, blink1 (a two-LED mk3) or luxafor (a Flag).
    #[arg(long, value_enum, default_value = "blinkstick")]
    family: EmulatedFamily,
    /// The BlinkStick model to be (original, pro, square, strip, nano, flex).
    #[arg(long, value_parser = Model::parse, default_value = "strip")]
    model: Model,
    /// The serial to report: BSnnnnnn-3.m for a current BlinkStick, eight hex digits
    /// for a blink(1) (the first the generation). A Luxafor Flag has none.
    #[arg(long)]
    serial: Option<String>,
    /// The uhid character device.
    #[arg(long, default_value = "/dev/uhid")]
    uhid: PathBuf,
}

/// A virtual light the kernel sees as USB HID: every report it takes is logged on
/// stdout; `plug`, `unplug` and `quit` on stdin replug it.
pub fn emulate(args: EmulateArgs) -> Result<()> {
    let (kind, serial) = match (args.family, args.serial) {
        (EmulatedFamily::Blinkstick, serial) => (
            UhidFirmware::BlinkStick(args.model),
            serial.unwrap_or_else(|| "BS000001-3.1".into()),
        ),
        (EmulatedFamily::Blink1, serial) => (
            UhidFirmware::Blink1,
            serial.unwrap_or_else(|| "3000cafe".into()),
        ),
        (EmulatedFamily::Luxafor, None) => (UhidFirmware::Luxafor, String::new()),
        (EmulatedFamily::Luxafor, Some(_)) => {
            bail!("a Luxafor Flag has no serial number; leave out --serial")
        }
    };
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&args.uhid)
        .with_context(|| {
            format!(
                "cannot open {}: load the uhid module (modprobe uhid) and run as root",
                args.uhid.display()
            )
        })?;
    let light = UhidLight::new(device, kind, &serial, Box::new(std::io::stdout()));
    light
        .run(std::io::stdin().lock())
        .with_context(|| format!("the virtual light on {} failed", args.uhid.display()))
}
