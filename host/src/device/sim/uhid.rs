//! A BlinkStick made of software through Linux uhid: the kernel shows it as a real
//! USB HID device (`/dev/hidrawN`), so the whole driver path — hidapi, hidraw, the
//! HID core — runs as with a stick in a USB port. The firmware behind it is the
//! emulator's [`Firmware`], so there is one model of the firmware, not two.
//!
//! Event layout from `<linux/uhid.h>`: `struct uhid_event` is packed, a `u32` type
//! followed by a union; every field is in the machine's byte order.

use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::emulator::Firmware;
use crate::device::protocol::{self, Model, PRODUCT_ID, VENDOR_ID};
use crate::frame::Rgb;

/// Room for the largest event (`UHID_CREATE2`); reads and writes use whole events.
pub(crate) const EVENT_SIZE: usize = 4380;
/// `BUS_USB` from `<linux/input.h>`.
pub(crate) const BUS_USB: u16 = 0x03;
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

/// What the kernel asks of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start,
    Stop,
    Open,
    Close,
    /// An output report (BlinkSticks have none; ignored).
    Output,
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
        UHID_OUTPUT => Event::Output,
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

/// `UHID_CREATE2` for a BlinkStick with this serial (uniq) and release (version).
pub(crate) fn encode_create(serial: &str, release: u16) -> Vec<u8> {
    // struct uhid_create2_req { u8 name[128]; u8 phys[64]; u8 uniq[64]; u16 rd_size;
    //   u16 bus; u32 vendor; u32 product; u32 version; u32 country; u8 rd_data[4096]; }
    let mut buf = event(UHID_CREATE2);
    put_str(&mut buf, 4, 128, "Agile Innovative Ltd BlinkStick");
    put_str(&mut buf, 132, 64, "podlight-uhid");
    put_str(&mut buf, 196, 64, serial);
    put(
        &mut buf,
        260,
        &(PRO_REPORT_DESCRIPTOR.len() as u16).to_ne_bytes(),
    );
    put(&mut buf, 262, &BUS_USB.to_ne_bytes());
    put(&mut buf, 264, &u32::from(VENDOR_ID).to_ne_bytes());
    put(&mut buf, 268, &u32::from(PRODUCT_ID).to_ne_bytes());
    put(&mut buf, 272, &u32::from(release).to_ne_bytes());
    put(&mut buf, 280, &PRO_REPORT_DESCRIPTOR);
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

/// A virtual stick on `/dev/uhid`. Each line it logs starts with the milliseconds
/// since it started, so reconnect times can be read off the log:
/// `plugged SERIAL MODEL`, `set HEX leds=…`, `get ID HEX`, `refused set|get … (reason)`,
/// `unplugged`.
pub struct UhidStick {
    device: Arc<File>,
    model: Model,
    serial: String,
    firmware: Arc<Mutex<Firmware>>,
    log: Arc<Mutex<Box<dyn Write + Send>>>,
    started: Instant,
}

impl UhidStick {
    pub fn new(device: File, model: Model, serial: &str, log: Box<dyn Write + Send>) -> UhidStick {
        UhidStick {
            device: Arc::new(device),
            model,
            serial: serial.to_string(),
            firmware: Arc::new(Mutex::new(Firmware::new(model, serial))),
            log: Arc::new(Mutex::new(log)),
            started: Instant::now(),
        }
    }

    fn log(&self, line: &str) {
        log_line(&self.log, self.started, line);
    }

    /// Creates the device, as when the stick is plugged in: fresh firmware state.
    pub fn plug(&self) -> std::io::Result<()> {
        *self.firmware.lock().unwrap_or_else(PoisonError::into_inner) =
            Firmware::new(self.model, &self.serial);
        (&*self.device).write_all(&encode_create(&self.serial, self.model.release()))?;
        self.log(&format!("plugged {} {}", self.serial, self.model.name()));
        Ok(())
    }

    /// Destroys the device, as when the stick is pulled out.
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
            std::thread::spawn(move || serve(&device, &firmware, &log, started))
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
    // A log that cannot be written is not a reason to stop being a stick.
    let _ = writeln!(log, "{ms:.3} {line}");
    let _ = log.flush();
}

fn serve(
    device: &File,
    firmware: &Mutex<Firmware>,
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
                let size = protocol::report_size(number).unwrap_or(1);
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
            Event::Start | Event::Stop | Event::Open | Event::Close | Event::Output => {}
            Event::Other(kind) => log_line(log, started, &format!("ignored uhid event {kind}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_places_ids_and_descriptor_where_the_kernel_reads_them() {
        let buf = encode_create("BS000123-3.1", 0x0202);
        assert_eq!(buf.len(), EVENT_SIZE);
        assert_eq!(u32_at(&buf, 0), Some(11));
        assert_eq!(&buf[196..208], b"BS000123-3.1");
        assert_eq!(buf[208], 0, "uniq is NUL-terminated");
        assert_eq!(u16_at(&buf, 260), Some(96));
        assert_eq!(u16_at(&buf, 262), Some(BUS_USB));
        assert_eq!(u32_at(&buf, 264), Some(0x20A0));
        assert_eq!(u32_at(&buf, 268), Some(0x41E5));
        assert_eq!(u32_at(&buf, 272), Some(0x0202));
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
    fn short_events_are_errors_not_panics() {
        assert!(decode_event(&[1, 0]).is_err());
        assert!(decode_event(&UHID_SET_REPORT.to_ne_bytes()).is_err());
    }
}
