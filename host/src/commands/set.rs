//! `podlight set`: a colour on the sticks (diagnostics).

use super::args::{DeviceArgs, ShowArgs};
use super::build::show;
use anyhow::Result;
use clap::Args;
use podlight::frame::Rgb;
use std::time::Duration;

#[derive(Args)]
pub struct SetArgs {
    /// A colour: #rrggbb, rrggbb, or off, red, green, blue, yellow, white.
    #[arg(value_parser = Rgb::parse)]
    color: Rgb,
    /// Set only this LED (report 5), leaving the others as they are.
    #[arg(long)]
    index: Option<usize>,
    /// Fade to the colour over this many milliseconds.
    #[arg(long, default_value_t = 300)]
    fade: u64,
    #[command(flatten)]
    show: ShowArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn set(args: SetArgs) -> Result<()> {
    let mut manager = args.device.connect()?;
    if let Some(index) = args.index {
        manager.set_one(index, args.color)?;
        return Ok(());
    }
    let leds = vec![args.color; manager.led_count()];
    show(
        manager,
        &args.device,
        leds,
        Duration::from_millis(args.fade),
        args.show,
    )
}
