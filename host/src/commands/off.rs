//! `podlight off`: the sticks dark.

use super::args::{DeviceArgs, ShowArgs};
use super::build::show;
use anyhow::Result;
use clap::Args;
use podlight::frame::Rgb;
use std::time::Duration;

#[derive(Args)]
pub struct OffArgs {
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn off(args: OffArgs) -> Result<()> {
    let manager = args.device.connect()?;
    let leds = vec![Rgb::OFF; manager.led_count()];
    show(
        manager,
        &args.device,
        leds,
        Duration::ZERO,
        ShowArgs { hold: false },
    )
}
