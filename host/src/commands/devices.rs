//! `podlight devices`: the sticks plugged in, and the device nodes podlight may open.

use anyhow::{Result, bail};
use clap::Args;
use podlight::device::hid::{self, HidBus};
use podlight::device::protocol::{self, Layout, Model};
use podlight::device::{Bus, DeviceError, UDEV_RULE};

#[derive(Args)]
pub struct DevicesArgs {
    /// The model, when a stick cannot tell (as through Linux uhid).
    #[arg(long, value_parser = Model::parse)]
    model: Option<Model>,
    /// LEDs per stick, overriding the model's count.
    #[arg(long)]
    leds: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn devices(args: DevicesArgs) -> Result<()> {
    // What a device plugin handed this container (or the udev rule linked on a host),
    // and whether podlight may open it: said first, whatever hidapi finds.
    let nodes = hid::linked_nodes();
    if !args.json {
        for node in &nodes {
            match &node.access {
                Ok(()) => outln!("{}: opens read-write", node.path.display())?,
                Err(error) => outln!(
                    "{}: cannot be opened read-write: {error}",
                    node.path.display()
                )?,
            }
        }
    }
    let bus = HidBus::new()?;
    let sticks = bus.list()?;
    if sticks.is_empty() {
        if !nodes.is_empty() {
            bail!(
                "no BlinkStick found (USB 20a0:41e5) behind the device nodes above: if they open, the \
                 stick's USB IDs are not visible in /sys; if not, see why above"
            );
        }
        bail!(
            "no BlinkStick found (USB 20a0:41e5). If one is plugged in, podlight may not be allowed to see it: \
             install this udev rule as /etc/udev/rules.d/85-blinkstick.rules, then replug the stick:\n{UDEV_RULE}"
        );
    }
    let mut rows = Vec::new();
    for stick in sticks {
        let model = args
            .model
            .or_else(|| protocol::detect_model(&stick.serial, stick.release));
        let layout = model.map(|m| Layout::new(m, args.leds));
        let access = match bus.open(&stick.serial) {
            Ok(_) => "ok".to_string(),
            Err(DeviceError::PermissionDenied { .. }) => "permission denied".to_string(),
            Err(e) => e.to_string(),
        };
        rows.push(serde_json::json!({
            "serial": stick.serial,
            "model": model.map(Model::name),
            "leds": layout.map(|l| l.led_count),
            "release": format!("{:#06x}", stick.release),
            "manufacturer": stick.manufacturer,
            "product": stick.product,
            "path": stick.path,
            "access": access,
        }));
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    for row in &rows {
        let text = |key: &str| {
            row[key]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| row[key].to_string())
        };
        outln!(
            "{}  model={}  leds={}  release={}  manufacturer={:?}  product={:?}  path={}  access={}",
            text("serial"),
            row["model"].as_str().unwrap_or("unknown (pass --model)"),
            text("leds"),
            text("release"),
            text("manufacturer"),
            text("product"),
            text("path"),
            text("access"),
        )?;
    }
    if rows.iter().any(|r| r["access"] == "permission denied") {
        eprintln!(
            "some sticks cannot be opened: install this udev rule, then replug:\n{UDEV_RULE}"
        );
    }
    Ok(())
}
