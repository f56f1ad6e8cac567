//! A light made of software through Linux uhid: the kernel shows it as a real USB
//! HID device (`/dev/hidrawN`), so the whole driver path — hidapi, hidraw, the HID
//! core — runs as with a light in a USB port. The firmware behind it is the
//! in-process emulator of its family (the BlinkStick's [`Firmware`], the blink(1)'s,
//! the Luxafor Flag's), so there is one model of each firmware, not two.
//!
//! Event layout from `<linux/uhid.h>`: `struct uhid_event` is packed, a `u32` type
//! followed by a union; every field is in the machine's byte order.

use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::blink1::Blink1Firmware;
use super::emulator::{EmulatedLight, Firmware};
use super::luxafor::LuxaforFirmware;
use crate::device::protocol::{self, Model};
use crate::device::{blink1, luxafor};
use crate::frame::Rgb;

/// Room for the largest event (`UHID_CREATE2`); reads and writes use whole events.
pub(crate) const EVENT_SIZE: usize = 4380;
/// `BUS_USB` from `<linux/input.h>`.
pub(crate) const BUS_USB: u16 = 0x03;
/// `UHID_DATA_MAX`: room for one report's data in an event.
const UHID_DATA_MAX: usize = 4096;
/// The errno a busy or refusing firmware answers with (EIO reaches the caller).
const EIO: u16 = 5;

const UHID_DESTROY: u32 = 1;
const UHID_START: u32 = 2;
const UHID_STOP: u32 = 3;
const UHID_OPEN: u32 = 4;
const UHID_CLOSE: u32 = 5;
const UHID_OUTPUT: u32 = 6;
const UHID_GET_REPORT: u32 = 9;
const UHID_GET_REPORT_REPLY: u32 = 10;
const UHID_CREATE2: u32 = 11;
const UHID_SET_REPORT: u32 = 13;
const UHID_SET_REPORT_REPLY: u32 = 14;

/// The BlinkStick Pro firmware's HID report descriptor: vendor page 0xFF00, feature
/// reports 1–9 with the sizes the protocol uses.
pub(crate) const PRO_REPORT_DESCRIPTOR: [u8; 96] = [
    0x06, 0x00, 0xFF, 0x09, 0x01, 0xA1, 0x01, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, //
    0x85, 0x01, 0x95, 0x03, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0x85, 0x02, 0x95, 0x20, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0x85, 0x03, 0x95, 0x20, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0x85, 0x04, 0x95, 0x01, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0x85, 0x05, 0x95, 0x05, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0x85, 0x06, 0x95, 0x19, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0x85, 0x07, 0x95, 0x31, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0x85, 0x08, 0x95, 0x61, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0x85, 0x09, 0x95, 0xC1, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0xC0,
];

/// The blink(1)'s report descriptor: vendor page 0xFF00, feature report 1 of eight
/// bytes (the ID aside), as its firmware declares.
pub(crate) const BLINK1_REPORT_DESCRIPTOR: [u8; 24] = [
    0x06, 0x00, 0xFF, 0x09, 0x01, 0xA1, 0x01, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, //
    0x85, 0x01, 0x95, 0x08, 0x09, 0x00, 0xB2, 0x02, 0x01, //
    0xC0,
];

/// The Luxafor Flag's report descriptor: vendor page 0xFF00, unnumbered input and
/// output reports of eight bytes.
pub(crate) const LUXAFOR_REPORT_DESCRIPTOR: [u8; 27] = [
    0x06, 0x00, 0xFF, 0x09, 0x01, 0xA1, 0x01, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, //
    0x95, 0x08, 0x09, 0x01, 0x91, 0x02, //
    0x95, 0x08, 0x09, 0x02, 0x81, 0x02, //
    0xC0,
];

/// What the kernel asks of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start,
    Stop,
    Open,
    Close,
    /// An output report; `data[0]` is the report ID, 0 where the device numbers none.
    Output {
        data: Vec<u8>,
    },
    /// GET_REPORT for report `number`; answer with the request's `id`.
    GetReport {
        id: u32,
        number: u8,
    },
    /// SET_REPORT; `data[0]` is the report ID.
    SetReport {
        id: u32,
        data: Vec<u8>,
    },
    Other(u32),
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

/// Decodes one event as read from `/dev/uhid`.
pub(crate) fn decode_event(buf: &[u8]) -> Result<Event, String> {
    let short = || format!("uhid event of {} bytes is too short", buf.len());
    let kind = u32_at(buf, 0).ok_or_else(short)?;
    Ok(match kind {
        UHID_START => Event::Start,
        UHID_STOP => Event::Stop,
        UHID_OPEN => Event::Open,
        UHID_CLOSE => Event::Close,
        // struct uhid_output_req { u8 data[UHID_DATA_MAX]; u16 size; u8 rtype; }
        UHID_OUTPUT => {
            let size = usize::from(u16_at(buf, 4 + UHID_DATA_MAX).ok_or_else(short)?);
            let data = buf.get(4..4 + size.min(UHID_DATA_MAX)).ok_or_else(short)?;
            Event::Output {
                data: data.to_vec(),
            }
        }
        // struct uhid_get_report_req { u32 id; u8 rnum; u8 rtype; }
        UHID_GET_REPORT => Event::GetReport {
            id: u32_at(buf, 4).ok_or_else(short)?,
            number: *buf.get(8).ok_or_else(short)?,
        },
        // struct uhid_set_report_req { u32 id; u8 rnum; u8 rtype; u16 size; u8 data[]; }
        UHID_SET_REPORT => {
            let id = u32_at(buf, 4).ok_or_else(short)?;
            let size = usize::from(u16_at(buf, 10).ok_or_else(short)?);
            let data = buf.get(12..12 + size).ok_or_else(short)?.to_vec();
            Event::SetReport { id, data }
        }
        other => Event::Other(other),
    })
}

fn event(kind: u32) -> Vec<u8> {
    let mut buf = vec![0u8; EVENT_SIZE];
    buf[..4].copy_from_slice(&kind.to_ne_bytes());
    buf
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Copies a string into a fixed, NUL-terminated field.
fn put_str(buf: &mut [u8], at: usize, field: usize, text: &str) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(field - 1);
    put(buf, at, &bytes[..n]);
}

/// How a light shows itself to the kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UsbIdentity {
    pub name: &'static str,
    pub vendor: u16,
    pub product: u16,
    /// bcdDevice.
    pub release: u16,
    pub descriptor: &'static [u8],
}

/// `UHID_CREATE2` for a light with this identity and serial (uniq; empty for none).
pub(crate) fn encode_create(identity: &UsbIdentity, serial: &str) -> Vec<u8> {
    // struct uhid_create2_req { u8 name[128]; u8 phys[64]; u8 uniq[64]; u16 rd_size;
    //   u16 bus; u32 vendor; u32 product; u32 version; u32 country; u8 rd_data[4096]; }
    let mut buf = event(UHID_CREATE2);
    put_str(&mut buf, 4, 128, identity.name);
    put_str(&mut buf, 132, 64, "podlight-uhid");
    put_str(&mut buf, 196, 64, serial);
    let descriptor = &identity.descriptor[..identity.descriptor.len().min(4096)];
    put(&mut buf, 260, &(descriptor.len() as u16).to_ne_bytes());
    put(&mut buf, 262, &BUS_USB.to_ne_bytes());
    put(&mut buf, 264, &u32::from(identity.vendor).to_ne_bytes());
    put(&mut buf, 268, &u32::from(identity.product).to_ne_bytes());
    put(&mut buf, 272, &u32::from(identity.release).to_ne_bytes());
    put(&mut buf, 280, descriptor);
    buf
}

pub(crate) fn encode_destroy() -> Vec<u8> {
    event(UHID_DESTROY)
}

/// `UHID_GET_REPORT_REPLY`: `data` starts with the report ID; `err` 0 for success.
pub(crate) fn encode_get_report_reply(id: u32, err: u16, data: &[u8]) -> Vec<u8> {
    // struct uhid_get_report_reply_req { u32 id; u16 err; u16 size; u8 data[]; }
    let mut buf = event(UHID_GET_REPORT_REPLY);
    put(&mut buf, 4, &id.to_ne_bytes());
    put(&mut buf, 8, &err.to_ne_bytes());
    put(&mut buf, 10, &(data.len() as u16).to_ne_bytes());
    put(&mut buf, 12, data);
    buf
}

/// `UHID_SET_REPORT_REPLY`: `err` 0 for success.
pub(crate) fn encode_set_report_reply(id: u32, err: u16) -> Vec<u8> {
    // struct uhid_set_report_reply_req { u32 id; u16 err; }
    let mut buf = event(UHID_SET_REPORT_REPLY);
    put(&mut buf, 4, &id.to_ne_bytes());
    put(&mut buf, 8, &err.to_ne_bytes());
    buf
}

/// `#rrggbb,#rrggbb,…`: how the log shows LEDs.
pub(crate) fn leds_text(leds: &[Rgb]) -> String {
    leds.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Which firmware a uhid light runs: one per family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UhidFirmware {
    BlinkStick(Model),
    Blink1,
    Luxafor,
}

impl UhidFirmware {
    fn identity(&self) -> UsbIdentity {
        match self {
            UhidFirmware::BlinkStick(model) => UsbIdentity {
                name: "Agile Innovative Ltd BlinkStick",
                vendor: protocol::VENDOR_ID,
                product: protocol::PRODUCT_ID,
                release: model.release(),
                descriptor: &PRO_REPORT_DESCRIPTOR,
            },
            UhidFirmware::Blink1 => UsbIdentity {
                name: "ThingM blink(1) mk3",
                vendor: blink1::VENDOR_ID,
                product: blink1::PRODUCT_ID,
                release: 0x0002,
                descriptor: &BLINK1_REPORT_DESCRIPTOR,
            },
            UhidFirmware::Luxafor => UsbIdentity {
                name: "Microchip Technology Inc. LUXAFOR FLAG",
                vendor: luxafor::VENDOR_ID,
                product: luxafor::PRODUCT_ID,
                release: 0x0100,
                descriptor: &LUXAFOR_REPORT_DESCRIPTOR,
            },
        }
    }

    /// The firmware as after power-up.
    fn fresh(&self, serial: &str) -> Box<dyn EmulatedLight> {
        match self {
            UhidFirmware::BlinkStick(model) => Box::new(Firmware::new(*model, serial)),
            UhidFirmware::Blink1 => Box::new(Blink1Firmware::new(serial)),
            UhidFirmware::Luxafor => Box::new(LuxaforFirmware::new("uhid")),
        }
    }

    /// Bytes (ID included) of feature report `id`: a GET_REPORT request does not say.
    fn feature_size(&self, id: u8) -> usize {
        match self {
            UhidFirmware::BlinkStick(_) => protocol::report_size(id).unwrap_or(1),
            UhidFirmware::Blink1 => blink1::REPORT_SIZE,
            UhidFirmware::Luxafor => 1,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            UhidFirmware::BlinkStick(model) => model.name(),
            UhidFirmware::Blink1 => "blink1",
            UhidFirmware::Luxafor => "luxafor",
        }
    }
}

type SharedFirmware = Arc<Mutex<Box<dyn EmulatedLight>>>;

/// A virtual light on `/dev/uhid`. Each line it logs starts with the milliseconds
/// since it started, so reconnect times can be read off the log:
/// `plugged SERIAL KIND`, `set HEX leds=…` (a feature report), `write HEX leds=…` (an
/// output report), `get ID HEX`, `refused set|get|write … (reason)`, `unplugged`.
pub struct UhidLight {
    device: Arc<File>,
    kind: UhidFirmware,
    serial: String,
    firmware: SharedFirmware,
    log: Arc<Mutex<Box<dyn Write + Send>>>,
    started: Instant,
}

impl UhidLight {
    /// A light of `kind` with this serial (empty: none, as a Luxafor Flag has).
    pub fn new(
        device: File,
        kind: UhidFirmware,
        serial: &str,
        log: Box<dyn Write + Send>,
    ) -> UhidLight {
        UhidLight {
            device: Arc::new(device),
            firmware: Arc::new(Mutex::new(kind.fresh(serial))),
            kind,
            serial: serial.to_string(),
            log: Arc::new(Mutex::new(log)),
            started: Instant::now(),
        }
    }

    fn log(&self, line: &str) {
        log_line(&self.log, self.started, line);
    }

    /// Creates the device, as when the light is plugged in: fresh firmware state.
    pub fn plug(&self) -> std::io::Result<()> {
        *self.firmware.lock().unwrap_or_else(PoisonError::into_inner) =
            self.kind.fresh(&self.serial);
        (&*self.device).write_all(&encode_create(&self.kind.identity(), &self.serial))?;
        let serial = if self.serial.is_empty() {
            "-"
        } else {
            &self.serial
        };
        self.log(&format!("plugged {serial} {}", self.kind.name()));
        Ok(())
    }

    /// Destroys the device, as when the light is pulled out.
    pub fn unplug(&self) -> std::io::Result<()> {
        (&*self.device).write_all(&encode_destroy())?;
        self.log("unplugged");
        Ok(())
    }

    /// Answers the kernel's requests on a thread of its own (a client blocks in its
    /// ioctl until the reply), and takes `plug`, `unplug`, `mark LABEL` and `quit` from
    /// `commands`.
    /// Returns on `quit`; at the end of `commands` it keeps serving.
    pub fn run(self, commands: impl BufRead) -> std::io::Result<()> {
        self.plug()?;
        let server = {
            let device = Arc::clone(&self.device);
            let firmware = Arc::clone(&self.firmware);
            let log = Arc::clone(&self.log);
            let started = self.started;
            let kind = self.kind.clone();
            std::thread::spawn(move || serve(&device, &kind, &firmware, &log, started))
        };
        for line in commands.lines() {
            match line?.trim() {
                "plug" => self.plug()?,
                "unplug" => self.unplug()?,
                "quit" => {
                    self.unplug()?;
                    return Ok(());
                }
                "" => {}
                other => match other.strip_prefix("mark ") {
                    // A label in the log, so a script can tell its steps apart.
                    Some(label) => self.log(&format!("mark {label}")),
                    None => self.log(&format!(
                        "unknown command {other:?} (plug, unplug, mark LABEL, quit)"
                    )),
                },
            }
        }
        match server.join() {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::other("the uhid event thread panicked")),
        }
    }
}

fn log_line(log: &Mutex<Box<dyn Write + Send>>, started: Instant, line: &str) {
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    // A log that cannot be written is not a reason to stop being a light.
    let _ = writeln!(log, "{ms:.3} {line}");
    let _ = log.flush();
}

fn serve(
    device: &File,
    kind: &UhidFirmware,
    firmware: &Mutex<Box<dyn EmulatedLight>>,
    log: &Mutex<Box<dyn Write + Send>>,
    started: Instant,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; EVENT_SIZE];
    loop {
        let n = (&*device).read(&mut buf)?;
        let event = match decode_event(&buf[..n]) {
            Ok(event) => event,
            Err(e) => {
                log_line(log, started, &e);
                continue;
            }
        };
        let now = Instant::now();
        let mut firmware = firmware.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::SetReport { id, data } => {
                let err = match firmware.set_feature(&data, now) {
                    Ok(()) => {
                        let leds = leds_text(&firmware.leds());
                        log_line(
                            log,
                            started,
                            &format!("set {} leds={leds}", hex::encode(&data)),
                        );
                        0
                    }
                    Err(e) => {
                        log_line(
                            log,
                            started,
                            &format!("refused set {} ({e})", hex::encode(&data)),
                        );
                        EIO
                    }
                };
                (&*device).write_all(&encode_set_report_reply(id, err))?;
            }
            Event::GetReport { id, number } => {
                let size = kind.feature_size(number);
                let reply = match firmware.get_feature(number, size, now) {
                    Ok(data) => {
                        log_line(
                            log,
                            started,
                            &format!("get {number} {}", hex::encode(&data)),
                        );
                        encode_get_report_reply(id, 0, &data)
                    }
                    Err(e) => {
                        log_line(log, started, &format!("refused get {number} ({e})"));
                        encode_get_report_reply(id, EIO, &[number])
                    }
                };
                (&*device).write_all(&reply)?;
            }
            // An output report has no reply: the kernel's write has already returned.
            Event::Output { data } => match firmware.write(&data, now) {
                Ok(()) => {
                    let leds = leds_text(&firmware.leds());
                    log_line(
                        log,
                        started,
                        &format!("write {} leds={leds}", hex::encode(&data)),
                    );
                }
                Err(e) => log_line(
                    log,
                    started,
                    &format!("refused write {} ({e})", hex::encode(&data)),
                ),
            },
            Event::Start | Event::Stop | Event::Open | Event::Close => {}
            Event::Other(kind) => log_line(log, started, &format!("ignored uhid event {kind}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_places_ids_and_descriptor_where_the_kernel_reads_them() {
        let identity = UhidFirmware::BlinkStick(Model::Pro).identity();
        let buf = encode_create(&identity, "BS000123-3.1");
        assert_eq!(buf.len(), EVENT_SIZE);
        assert_eq!(u32_at(&buf, 0), Some(11));
        assert_eq!(&buf[196..208], b"BS000123-3.1");
        assert_eq!(buf[208], 0, "uniq is NUL-terminated");
        assert_eq!(u16_at(&buf, 260), Some(96));
        assert_eq!(u16_at(&buf, 262), Some(BUS_USB));
        assert_eq!(u32_at(&buf, 264), Some(0x20A0));
        assert_eq!(u32_at(&buf, 268), Some(0x41E5));
        assert_eq!(u32_at(&buf, 272), Some(u32::from(Model::Pro.release())));
        assert_eq!(&buf[280..376], &PRO_REPORT_DESCRIPTOR);
    }

    #[test]
    fn descriptor_declares_each_report_with_the_protocol_size() {
        // Each report item: 85 ID 95 COUNT; COUNT data bytes follow the ID.
        let mut declared = Vec::new();
        for pair in PRO_REPORT_DESCRIPTOR.windows(4) {
            if pair[0] == 0x85 && pair[2] == 0x95 {
                declared.push((pair[1], usize::from(pair[3]) + 1));
            }
        }
        assert_eq!(declared.len(), 9);
        for (id, size) in declared {
            assert_eq!(protocol::report_size(id), Some(size), "report {id}");
        }
    }

    #[test]
    fn set_report_decodes_with_its_report_id_first() {
        let mut buf = event(UHID_SET_REPORT);
        put(&mut buf, 4, &77u32.to_ne_bytes());
        buf[8] = 1; // rnum
        buf[9] = 0; // rtype: feature
        put(&mut buf, 10, &4u16.to_ne_bytes());
        put(&mut buf, 12, &[1, 255, 0, 0]);
        assert_eq!(
            decode_event(&buf),
            Ok(Event::SetReport {
                id: 77,
                data: vec![1, 255, 0, 0]
            })
        );
    }

    #[test]
    fn get_report_and_replies_round_trip_their_fields() {
        let mut buf = event(UHID_GET_REPORT);
        put(&mut buf, 4, &9u32.to_ne_bytes());
        buf[8] = 2;
        assert_eq!(
            decode_event(&buf),
            Ok(Event::GetReport { id: 9, number: 2 })
        );
        let reply = encode_get_report_reply(9, 0, &[1, 10, 20, 30]);
        assert_eq!(u32_at(&reply, 0), Some(UHID_GET_REPORT_REPLY));
        assert_eq!(u32_at(&reply, 4), Some(9));
        assert_eq!(u16_at(&reply, 8), Some(0));
        assert_eq!(u16_at(&reply, 10), Some(4));
        assert_eq!(&reply[12..16], &[1, 10, 20, 30]);
        let refused = encode_set_report_reply(3, EIO);
        assert_eq!(u32_at(&refused, 0), Some(UHID_SET_REPORT_REPLY));
        assert_eq!(u16_at(&refused, 8), Some(EIO));
    }

    #[test]
    fn other_families_declare_the_reports_their_protocols_send() {
        // blink(1): feature report 1 of eight bytes, nine with its ID.
        let blink1 = &BLINK1_REPORT_DESCRIPTOR;
        let feature = blink1.windows(4).position(|w| w[0] == 0x85 && w[2] == 0x95);
        let at = feature.expect("a numbered report");
        assert_eq!(blink1[at + 1], blink1::REPORT_ID);
        assert_eq!(usize::from(blink1[at + 3]) + 1, blink1::REPORT_SIZE);
        // Luxafor: unnumbered output report of eight bytes (hidraw adds the 0).
        let lux = &LUXAFOR_REPORT_DESCRIPTOR;
        assert!(!lux.contains(&0x85), "no report IDs");
        let output = lux.windows(2).position(|w| w == [0x91, 0x02]);
        let at = output.expect("an output item");
        assert_eq!(lux[at - 4], 0x95);
        assert_eq!(usize::from(lux[at - 3]) + 1, luxafor::REPORT_SIZE);
        assert_eq!(lux.last(), Some(&0xC0), "the collection ends");
    }

    #[test]
    fn output_reports_decode_with_their_leading_zero() {
        let mut buf = event(UHID_OUTPUT);
        put(&mut buf, 4, &[0, 1, 0xff, 10, 20, 30, 0, 0, 0]);
        put(&mut buf, 4 + UHID_DATA_MAX, &9u16.to_ne_bytes());
        assert_eq!(
            decode_event(&buf),
            Ok(Event::Output {
                data: vec![0, 1, 0xff, 10, 20, 30, 0, 0, 0]
            })
        );
        assert!(decode_event(&buf[..100]).is_err(), "cut short");
    }

    #[test]
    fn short_events_are_errors_not_panics() {
        assert!(decode_event(&[1, 0]).is_err());
        assert!(decode_event(&UHID_SET_REPORT.to_ne_bytes()).is_err());
    }
}
