//! `podlight devices`: the lights found (every family on USB, or a WLED controller at
//! its address), and the device nodes podlight may open.

use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use podlight::device::hid::{self, HidBus};
use podlight::device::protocol::Model;
use podlight::device::sim::virtual_display::virtual_stick;
use podlight::device::wled::WledBus;
use podlight::device::{Bus, DeviceError, DeviceLayout, Family, StickSpec, UDEV_RULE};

use super::args::DeviceKind;

#[derive(Args)]
pub struct DevicesArgs {
    /// Where to look: `usb` (BlinkStick, blink(1), Luxafor Flag), `wled://HOST[:PORT]`
    /// to ask that WLED controller, or `virtual`.
    #[arg(long, value_parser = DeviceKind::parse, default_value = "usb", env = "PODLIGHT_DEVICE")]
    device: DeviceKind,
    /// The BlinkStick model, when a stick cannot tell (as through Linux uhid).
    #[arg(long, value_parser = Model::parse)]
    model: Option<Model>,
    /// LEDs per light, overriding what its model (or controller) says.
    #[arg(long)]
    leds: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn devices(args: DevicesArgs) -> Result<()> {
    let bus: Arc<dyn Bus> = match &args.device {
        DeviceKind::Usb => return usb_devices(&args),
        DeviceKind::Wled(address) => Arc::new(WledBus::new(address.clone())),
        DeviceKind::Virtual => virtual_stick(args.leds.unwrap_or(8)).0,
    };
    // A controller that does not answer is reported like a missing stick: the
    // error says which address and why.
    let lights = bus.list()?;
    print_rows(&args, rows(&args, bus.as_ref(), lights)?)
}

fn usb_devices(args: &DevicesArgs) -> Result<()> {
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
    let lights = bus.list()?;
    let ids = Family::usb_id_list();
    if lights.is_empty() {
        if !nodes.is_empty() {
            bail!(
                "no BlinkStick found, nor any other light podlight drives ({ids}), behind the device \
                 nodes above: if they open, the light's USB IDs are not visible in /sys; if not, see why above"
            );
        }
        bail!(
            "no BlinkStick found, nor any other light podlight drives ({ids}). If one is plugged in, \
             podlight may not be allowed to see it: install this udev rule as \
             /etc/udev/rules.d/85-blinkstick.rules, then replug the light:\n{UDEV_RULE}"
        );
    }
    let rows = rows(args, &bus, lights)?;
    print_rows(args, rows.clone())?;
    if rows.iter().any(|r| r["access"] == "permission denied") {
        eprintln!(
            "some lights cannot be opened: install this udev rule, then replug:\n{UDEV_RULE}"
        );
    }
    Ok(())
}

fn rows(
    args: &DevicesArgs,
    bus: &dyn Bus,
    lights: Vec<podlight::device::DeviceInfo>,
) -> Result<Vec<serde_json::Value>> {
    let spec = StickSpec {
        serial: None,
        model: args.model,
        led_count: args.leds,
    };
    let mut rows = Vec::new();
    for light in lights {
        let layout = DeviceLayout::for_device(&light, &spec).ok();
        let access = match bus.open(&light.serial) {
            Ok(_) => "ok".to_string(),
            Err(DeviceError::PermissionDenied { .. }) => "permission denied".to_string(),
            Err(e) => e.to_string(),
        };
        rows.push(serde_json::json!({
            "family": light.family,
            "serial": light.serial,
            "model": layout.and_then(|l| l.model()).map(Model::name),
            "leds": layout.map(|l| l.led_count()),
            "release": format!("{:#06x}", light.release),
            "manufacturer": light.manufacturer,
            "product": light.product,
            "path": light.path,
            "access": access,
        }));
    }
    Ok(rows)
}

fn print_rows(args: &DevicesArgs, rows: Vec<serde_json::Value>) -> Result<()> {
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
        let model = match row["family"].as_str() {
            Some("blinkstick") => row["model"]
                .as_str()
                .unwrap_or("unknown (pass --model)")
                .to_string(),
            _ => "-".to_string(),
        };
        outln!(
            "{}  family={}  model={}  leds={}  release={}  manufacturer={:?}  product={:?}  path={}  access={}",
            text("serial"),
            text("family"),
            model,
            text("leds"),
            text("release"),
            text("manufacturer"),
            text("product"),
            text("path"),
            text("access"),
        )?;
    }
    Ok(())
}
