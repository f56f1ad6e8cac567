//! `podlight devices`, `podlight set` and `podlight off`: diagnostics for sticks;
//! `podlight emulate`: a virtual stick through Linux uhid.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use podlight::device::emulator::EmulatorBus;
use podlight::device::hid::{self, HidBus};
use podlight::device::protocol::{self, Layout, Model};
use podlight::device::uhid::UhidStick;
use podlight::device::virtual_display::{FrameDisplay, frame_observer, virtual_stick};
use podlight::device::writer::FrameObserver;
use podlight::device::{
    Bus, DeviceError, DeviceManager, DeviceOptions, FrameWriter, Joining, StickSpec, UDEV_RULE,
    WriterOptions,
};
use podlight::frame::Rgb;

use super::agent::wait_for_stop;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// Real sticks over USB HID.
    Usb,
    /// An emulated stick drawn in the terminal.
    Virtual,
}

/// Which sticks and how to drive them; shared by every command that shows LEDs.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// `usb` for real sticks, `virtual` to draw the LEDs in the terminal.
    #[arg(long, value_enum, default_value = "usb", env = "PODLIGHT_DEVICE")]
    pub device: DeviceKind,
    /// Sticks by serial, in strip order (repeat or comma-separate); default: the first found.
    #[arg(long = "serial", value_delimiter = ',', env = "PODLIGHT_SERIALS")]
    pub serials: Vec<String>,
    /// Every stick shows the same frame instead of forming one strip.
    #[arg(long)]
    pub mirror: bool,
    /// The model, when the stick cannot tell (original, pro, square, strip, nano, flex).
    #[arg(long, value_parser = Model::parse)]
    pub model: Option<Model>,
    /// LEDs per stick (Pro in WS2812 mode: up to 192; Flex: up to 32); virtual: default 8.
    #[arg(long)]
    pub leds: Option<usize>,
    /// Highest value of any colour channel (0–255).
    #[arg(long)]
    pub brightness_cap: Option<u8>,
}

impl DeviceArgs {
    /// The bus and options these flags describe.
    pub fn open(&self) -> Result<(Arc<dyn Bus>, DeviceOptions)> {
        if self.device == DeviceKind::Virtual {
            let (bus, options) = virtual_stick(self.leds.unwrap_or(8));
            let bus: Arc<EmulatorBus> = bus;
            return Ok((bus, options));
        }
        let spec = |serial: Option<String>| StickSpec {
            serial,
            model: self.model,
            led_count: self.leds,
        };
        let sticks = if self.serials.is_empty() {
            vec![spec(None)]
        } else {
            self.serials
                .iter()
                .cloned()
                .map(|s| spec(Some(s)))
                .collect()
        };
        let joining = if self.mirror {
            Joining::Mirror
        } else {
            Joining::Strip
        };
        Ok((Arc::new(HidBus::new()?), DeviceOptions { sticks, joining }))
    }

    /// The sticks, connected now (for one-shot commands): an error if none is there.
    pub fn connect(&self) -> Result<DeviceManager> {
        let (bus, options) = self.open()?;
        let mut manager = DeviceManager::new(bus, options);
        if !manager.reconnect_due() {
            bail!(DeviceError::NotFound {
                serial: self.serials.first().cloned()
            });
        }
        Ok(manager)
    }

    pub fn observer(&self) -> Option<FrameObserver> {
        (self.device == DeviceKind::Virtual)
            .then(|| frame_observer(FrameDisplay::for_stderr(super::json_logs())))
    }
}

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

/// How a one-shot command shows its frame.
#[derive(Args, Debug, Clone, Copy)]
pub struct ShowArgs {
    /// Keep showing the frame until SIGTERM or Ctrl-C, re-sending it when a stick is
    /// replugged.
    #[arg(long)]
    pub hold: bool,
}

pub fn set(args: SetArgs) -> Result<()> {
    let mut manager = args.device.connect()?;
    if let Some(index) = args.index {
        let channel = (index / protocol::PRO_CHANNEL_LEDS) as u8;
        let report = protocol::encode_indexed(
            channel,
            (index % protocol::PRO_CHANNEL_LEDS) as u8,
            args.color,
        );
        manager.send_raw(&report)?;
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

/// Fades the sticks to `leds` through the frame writer and waits until they show
/// them; with `--hold`, keeps them shown until a stop signal.
pub fn show(
    manager: DeviceManager,
    device: &DeviceArgs,
    leds: Vec<Rgb>,
    fade: Duration,
    how: ShowArgs,
) -> Result<()> {
    let options = WriterOptions {
        fade,
        brightness_cap: device.brightness_cap,
        ..WriterOptions::default()
    };
    let capped: Vec<Rgb> = match device.brightness_cap {
        Some(cap) => leds
            .iter()
            .map(|&c| podlight::device::fade::cap_brightness(c, cap))
            .collect(),
        None => leds.clone(),
    };
    let writer = FrameWriter::spawn(manager, options, device.observer());
    writer.set_target(leds);
    let shown = writer.wait_until_shown(&capped, fade + Duration::from_secs(2));
    let errors = writer
        .status()
        .errors
        .load(std::sync::atomic::Ordering::Relaxed);
    if shown && how.hold {
        eprintln!("showing; stop with Ctrl-C or SIGTERM");
        let held = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the signal handler")?
            .block_on(wait_for_stop(None));
        // As without --hold, the LEDs keep the colour after podlight exits.
        writer.shutdown(false);
        return held;
    }
    writer.shutdown(false);
    if device.device == DeviceKind::Virtual {
        eprintln!();
    }
    if !shown || errors > 0 {
        bail!("the stick did not take the colour ({errors} write errors); is it still plugged in?");
    }
    Ok(())
}

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
