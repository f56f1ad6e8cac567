//! What the policy produces and the device shows: one colour per LED index.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A colour, 0..255 per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub struct Rgb {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Rgb {
    pub const OFF: Rgb = Rgb { r: 0, g: 0, b: 0 };

    pub const fn new(r: u8, g: u8, b: u8) -> Self {
        Rgb { r, g, b }
    }

    /// Parses `#rrggbb`, `rrggbb` or a basic colour name.
    pub fn parse(text: &str) -> Result<Rgb, String> {
        let named = match text.to_ascii_lowercase().as_str() {
            "off" | "black" => Some(Rgb::OFF),
            "red" => Some(Rgb::new(255, 0, 0)),
            "green" => Some(Rgb::new(0, 255, 0)),
            "blue" => Some(Rgb::new(0, 0, 255)),
            "yellow" => Some(Rgb::new(255, 255, 0)),
            "white" => Some(Rgb::new(255, 255, 255)),
            _ => None,
        };
        if let Some(rgb) = named {
            return Ok(rgb);
        }
        let hex = text.strip_prefix('#').unwrap_or(text);
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{text:?} is not a colour: use #rrggbb or one of off, red, green, blue, yellow, white"
            ));
        }
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0);
        Ok(Rgb::new(channel(0), channel(2), channel(4)))
    }
}

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }
}

/// The colours of every LED, index 0 first, sized to the device.
pub type Leds = Vec<Rgb>;

/// A policy's answer: the LEDs, when to ask again, and why.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Frame {
    pub leds: Leds,
    /// Evaluate again after this many milliseconds even if nothing changed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub again_after_ms: Option<u32>,
    /// Why the LEDs have their colours (contract 0.4); empty when the policy gave
    /// no reason.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub reasons: Vec<LedReason>,
    /// LEDs left to the policy below in a stack of layers.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub see_through: Vec<u32>,
}

impl Frame {
    /// A frame with no reasons: these LEDs, evaluated again after `again_after_ms`.
    pub fn of(leds: Leds, again_after_ms: Option<u32>) -> Frame {
        Frame {
            leds,
            again_after_ms,
            ..Frame::default()
        }
    }

    /// The reason the policy gave for LED `led`: the first naming it.
    pub fn reason_for(&self, led: u32) -> Option<&LedReason> {
        self.reasons.iter().find(|r| r.leds.contains(&led))
    }
}

/// Why some LEDs have their colour, as a policy said it: indices into the frame, the
/// snapshot's pods, nodes and alerts (checked and bounded by the host).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LedReason {
    pub leds: Vec<u32>,
    pub rule: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<u32>,
    /// The layer whose policy gave it, in a stack of layers (set by the host).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub layer: String,
}

/// The LEDs as 24-bit-colour blocks for a terminal, then their hex codes:
/// `██ ██  #320000 #320000`. Off LEDs show as dim outlines so they stay visible.
pub fn ansi_blocks(leds: &[Rgb]) -> String {
    let blocks: Vec<String> = leds
        .iter()
        .map(|c| {
            if *c == Rgb::OFF {
                "\x1b[2m░░\x1b[0m".to_string()
            } else {
                format!("\x1b[38;2;{};{};{}m██\x1b[0m", c.r, c.g, c.b)
            }
        })
        .collect();
    format!("{}  {}", blocks.join(" "), hex_codes(leds))
}

/// The LEDs as `#rrggbb` codes, space-separated.
pub fn hex_codes(leds: &[Rgb]) -> String {
    leds.iter()
        .map(Rgb::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_names() {
        assert_eq!(Rgb::parse("#0a1B2c"), Ok(Rgb::new(10, 27, 44)));
        assert_eq!(Rgb::parse("ff0000"), Ok(Rgb::new(255, 0, 0)));
        assert_eq!(Rgb::parse("Green"), Ok(Rgb::new(0, 255, 0)));
        assert!(Rgb::parse("#12345").is_err());
        assert!(Rgb::parse("#gg0000").is_err());
        assert_eq!(Rgb::new(1, 2, 255).to_string(), "#0102ff");
    }

    #[test]
    fn ansi_blocks_carry_true_colour_and_codes() {
        let text = ansi_blocks(&[Rgb::new(50, 0, 0), Rgb::OFF]);
        assert!(text.starts_with("\x1b[38;2;50;0;0m██"), "{text:?}");
        assert!(text.ends_with("#320000 #000000"), "{text:?}");
    }
}
