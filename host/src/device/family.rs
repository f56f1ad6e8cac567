//! The kinds of light podlight drives, and what each must provide: how it is found
//! (USB IDs or a network address), how many LEDs it has, the exact messages that set
//! them, how fast it takes them, and how long it holds a frame on its own. The device
//! manager drives every family through [`DeviceLayout`]; nothing else in podlight
//! needs to know which family a light is.
//!
//! Pure: no I/O.

use std::time::Duration;

use super::manager::StickSpec;
use super::protocol::{self, Layout, Model};
use super::transport::DeviceInfo;
use super::{DeviceError, blink1, luxafor, wled};
use crate::frame::Rgb;

/// A family of lights: one protocol, one way to be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Agile Innovative's BlinkStick (every model): the reference device.
    BlinkStick,
    /// ThingM's blink(1) mk1/mk2/mk3.
    Blink1,
    /// Luxafor Flag.
    Luxafor,
    /// A WLED controller (ESP8266/ESP32) over the network.
    Wled,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::BlinkStick,
        Family::Blink1,
        Family::Luxafor,
        Family::Wled,
    ];

    /// The name in flags, JSON and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Family::BlinkStick => "blinkstick",
            Family::Blink1 => "blink1",
            Family::Luxafor => "luxafor",
            Family::Wled => "wled",
        }
    }

    /// The name for people.
    pub fn label(self) -> &'static str {
        match self {
            Family::BlinkStick => "BlinkStick",
            Family::Blink1 => "blink(1)",
            Family::Luxafor => "Luxafor Flag",
            Family::Wled => "WLED",
        }
    }

    /// USB vendor and product IDs of a family found on the HID bus.
    pub fn usb_ids(self) -> Option<(u16, u16)> {
        match self {
            Family::BlinkStick => Some((protocol::VENDOR_ID, protocol::PRODUCT_ID)),
            Family::Blink1 => Some((blink1::VENDOR_ID, blink1::PRODUCT_ID)),
            Family::Luxafor => Some((luxafor::VENDOR_ID, luxafor::PRODUCT_ID)),
            Family::Wled => None,
        }
    }

    /// The HID family these USB IDs belong to.
    pub fn from_usb_ids(vendor: u16, product: u16) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|f| f.usb_ids() == Some((vendor, product)))
    }

    /// Every HID family's USB IDs, `vvvv:pppp`, for messages.
    pub fn usb_id_list() -> String {
        Family::ALL
            .into_iter()
            .filter_map(|f| {
                f.usb_ids()
                    .map(|(v, p)| format!("{} {v:04x}:{p:04x}", f.label()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Shortest time between two frames the device takes. The writer's own pace
    /// (20 ms) covers the USB families; a WLED controller renders at its own frame
    /// rate and drops datagrams that arrive faster.
    pub fn min_frame_interval(self) -> Duration {
        match self {
            Family::Wled => wled::MIN_FRAME_INTERVAL,
            _ => Duration::ZERO,
        }
    }

    /// How often the frame must be sent again for the device to keep showing it:
    /// a WLED controller returns to its own effect when the realtime stream pauses
    /// longer than the timeout each datagram carries. USB lights hold a frame.
    pub fn keepalive(self) -> Option<Duration> {
        match self {
            Family::Wled => Some(wled::KEEPALIVE),
            _ => None,
        }
    }
}

/// One message to a device. HID lights take feature reports (BlinkStick, blink(1))
/// or output reports (Luxafor); a network light takes datagrams, sent like output
/// reports. Byte 0 is the report ID (0 where the device numbers none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Feature(Vec<u8>),
    Output(Vec<u8>),
}

impl Message {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Message::Feature(b) | Message::Output(b) => b,
        }
    }
}

/// What an open device is and how its LEDs are addressed: the one type the manager
/// drives, whatever the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "family", rename_all = "lowercase")]
pub enum DeviceLayout {
    BlinkStick(Layout),
    Blink1(blink1::Layout),
    Luxafor,
    Wled(wled::Layout),
}

impl DeviceLayout {
    /// How the light `info` is addressed, given what the operator said about it.
    pub fn for_device(info: &DeviceInfo, spec: &StickSpec) -> Result<DeviceLayout, DeviceError> {
        Ok(match info.family {
            Family::BlinkStick => {
                let model = spec
                    .model
                    .or_else(|| protocol::detect_model(&info.serial, info.release))
                    .ok_or_else(|| DeviceError::UnknownModel {
                        serial: info.serial.clone(),
                        release: info.release,
                    })?;
                DeviceLayout::BlinkStick(Layout::new(model, spec.led_count))
            }
            Family::Blink1 => {
                DeviceLayout::Blink1(blink1::Layout::for_serial(&info.serial, spec.led_count))
            }
            Family::Luxafor => DeviceLayout::Luxafor,
            Family::Wled => {
                // What the controller said, or fewer if told; never more.
                let has = info.led_count.unwrap_or(1);
                DeviceLayout::Wled(wled::Layout {
                    led_count: spec.led_count.unwrap_or(has).clamp(1, has),
                })
            }
        })
    }

    pub fn family(&self) -> Family {
        match self {
            DeviceLayout::BlinkStick(_) => Family::BlinkStick,
            DeviceLayout::Blink1(_) => Family::Blink1,
            DeviceLayout::Luxafor => Family::Luxafor,
            DeviceLayout::Wled(_) => Family::Wled,
        }
    }

    pub fn led_count(&self) -> usize {
        match self {
            DeviceLayout::BlinkStick(layout) => layout.led_count,
            DeviceLayout::Blink1(layout) => layout.led_count,
            DeviceLayout::Luxafor => luxafor::LED_COUNT,
            DeviceLayout::Wled(layout) => layout.led_count,
        }
    }

    /// The BlinkStick model, for the one family that has models.
    pub fn model(&self) -> Option<Model> {
        match self {
            DeviceLayout::BlinkStick(layout) => Some(layout.model),
            _ => None,
        }
    }

    /// Messages sent once after opening, before any frame.
    pub fn setup_messages(&self) -> Vec<Message> {
        match self {
            DeviceLayout::BlinkStick(layout) => layout
                .setup_reports()
                .into_iter()
                .map(Message::Feature)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The messages that show `leds` (missing LEDs off, extra ignored). Each message
    /// keeps its slot from frame to frame, so a slot whose bytes did not change need
    /// not be sent again.
    pub fn frame_messages(&self, leds: &[Rgb]) -> Vec<Message> {
        match self {
            DeviceLayout::BlinkStick(layout) => layout
                .frame_reports(leds)
                .into_iter()
                .map(Message::Feature)
                .collect(),
            DeviceLayout::Blink1(layout) => layout
                .frame_reports(leds)
                .into_iter()
                .map(Message::Feature)
                .collect(),
            DeviceLayout::Luxafor => luxafor::frame_reports(leds)
                .into_iter()
                .map(Message::Output)
                .collect(),
            DeviceLayout::Wled(layout) => layout
                .frame_datagrams(leds)
                .into_iter()
                .map(Message::Output)
                .collect(),
        }
    }

    /// The message that sets LED `index` alone, leaving the others as they are.
    pub fn single_led_message(&self, index: usize, c: Rgb) -> Option<Message> {
        if index >= self.led_count() {
            return None;
        }
        Some(match self {
            DeviceLayout::BlinkStick(_) => {
                let channel = u8::try_from(index / protocol::PRO_CHANNEL_LEDS).ok()?;
                let in_channel = u8::try_from(index % protocol::PRO_CHANNEL_LEDS).ok()?;
                Message::Feature(protocol::encode_indexed(channel, in_channel, c))
            }
            DeviceLayout::Blink1(layout) => {
                let n = if layout.addressable && layout.led_count > 1 {
                    u8::try_from(index + 1).ok()?
                } else {
                    0
                };
                Message::Feature(blink1::fade_now(c, n))
            }
            DeviceLayout::Luxafor => {
                Message::Output(luxafor::static_colour(u8::try_from(index + 1).ok()?, c))
            }
            DeviceLayout::Wled(_) => {
                let start = u16::try_from(index).ok()?.to_be_bytes();
                Message::Output(vec![
                    wled::PROTOCOL_DNRGB,
                    wled::TIMEOUT_SECONDS,
                    start[0],
                    start[1],
                    c.r,
                    c.g,
                    c.b,
                ])
            }
        })
    }

    /// How to read back what the device shows, where it can tell: the messages that
    /// ask, one per LED group, and the feature report to read after each.
    pub fn readback(&self) -> Option<Vec<(Option<Message>, u8, usize)>> {
        match self {
            DeviceLayout::BlinkStick(layout) => {
                let (id, size) = layout.readback_report()?;
                Some(vec![(None, id, size)])
            }
            DeviceLayout::Blink1(layout) => Some(
                (0..layout.led_count)
                    .map(|i| {
                        (
                            Some(Message::Feature(layout.read_request(i))),
                            blink1::REPORT_ID,
                            blink1::REPORT_SIZE,
                        )
                    })
                    .collect(),
            ),
            DeviceLayout::Luxafor | DeviceLayout::Wled(_) => None,
        }
    }

    /// The LEDs a read-back answer names, in order.
    pub fn decode_readback(&self, answers: &[Vec<u8>]) -> Option<Vec<Rgb>> {
        match self {
            DeviceLayout::BlinkStick(layout) => layout.decode_readback(answers.first()?),
            DeviceLayout::Blink1(_) => answers.iter().map(|a| blink1::decode_read(a)).collect(),
            DeviceLayout::Luxafor | DeviceLayout::Wled(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_udev_rule_covers_every_usb_family() {
        for family in Family::ALL {
            if let Some((vendor, product)) = family.usb_ids() {
                let matched = format!(
                    r#"ATTRS{{idVendor}}=="{vendor:04x}", ATTRS{{idProduct}}=="{product:04x}""#
                );
                assert!(
                    crate::device::UDEV_RULE.contains(&matched),
                    "{}: {matched}",
                    family.label()
                );
            }
        }
    }

    #[test]
    fn every_hid_family_is_found_by_its_own_ids_only() {
        for family in Family::ALL {
            if let Some((vendor, product)) = family.usb_ids() {
                assert_eq!(Family::from_usb_ids(vendor, product), Some(family));
            }
        }
        assert_eq!(
            Family::from_usb_ids(0x046d, 0xc52b),
            None,
            "a mouse receiver"
        );
        assert!(Family::usb_id_list().contains("blink(1) 27b8:01ed"));
    }

    #[test]
    fn a_blinkstick_layout_sends_what_it_always_sent() {
        let layout = Layout::new(Model::Strip, None);
        let leds = vec![Rgb::new(1, 2, 3); 8];
        let wrapped = DeviceLayout::BlinkStick(layout);
        assert_eq!(wrapped.led_count(), 8);
        assert_eq!(
            wrapped.frame_messages(&leds),
            layout
                .frame_reports(&leds)
                .into_iter()
                .map(Message::Feature)
                .collect::<Vec<_>>()
        );
        assert_eq!(wrapped.family(), Family::BlinkStick);
    }
}
