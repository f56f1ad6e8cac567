//! `podlight emulate`: a virtual stick through Linux uhid.

use anyhow::{Context, Result};
use clap::Args;
use podlight::device::protocol::Model;
use podlight::device::sim::uhid::UhidStick;
use std::path::PathBuf;

#[derive(Args)]
pub struct EmulateArgs {
    /// The model to be (original, pro, square, strip, nano, flex).
    #[arg(long, value_parser = Model::parse, default_value = "strip")]
    model: Model,
    /// The serial to report, BSnnnnnn-3.m for current firmware.
    #[arg(long, default_value = "BS000001-3.1")]
    serial: String,
    /// The uhid character device.
    #[arg(long, default_value = "/dev/uhid")]
    uhid: PathBuf,
}

/// A virtual stick the kernel sees as USB HID: every report it takes is logged on
/// stdout; `plug`, `unplug` and `quit` on stdin replug it.
pub fn emulate(args: EmulateArgs) -> Result<()> {
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
    let stick = UhidStick::new(
        device,
        args.model,
        &args.serial,
        Box::new(std::io::stdout()),
    );
    stick
        .run(std::io::stdin().lock())
        .with_context(|| format!("the virtual stick on {} failed", args.uhid.display()))
}
