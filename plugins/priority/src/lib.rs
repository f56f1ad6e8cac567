//! The default "priority" policy: every LED shows the colour of the most important
//! state present on the node — failed, then deleting, then pending, then running —
//! or off when none is.
//!
//! The rule is plain Rust over plain data ([`Counts`] in, [`Rgb`] out) so the host can
//! link the same rule natively as a baseline; the Wasm glue lives in `component.rs`.

use serde::Deserialize;

pub mod cluster;
#[cfg(target_family = "wasm")]
mod component;

use cluster::{ClusterFile, ClusterSettings};

/// A colour, 0..255 per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

    pub(crate) fn scaled(self, brightness: f32) -> Rgb {
        let scale = |c: u8| (f32::from(c) * brightness).round().clamp(0.0, 255.0) as u8;
        Rgb::new(scale(self.r), scale(self.g), scale(self.b))
    }
}

/// The pod states of the contract (`podlight:policy/types.pod-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Deleting,
    Failed,
    Succeeded,
    Pending,
    Unready,
    Running,
    Unknown,
}

/// Pods per state on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub deleting: u32,
    pub failed: u32,
    pub succeeded: u32,
    pub pending: u32,
    pub unready: u32,
    pub running: u32,
    pub unknown: u32,
}

impl Counts {
    pub fn of(&self, state: State) -> u32 {
        match state {
            State::Deleting => self.deleting,
            State::Failed => self.failed,
            State::Succeeded => self.succeeded,
            State::Pending => self.pending,
            State::Unready => self.unready,
            State::Running => self.running,
            State::Unknown => self.unknown,
        }
    }
}

/// One rule: if any pod is in one of `states`, show `color`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub states: Vec<State>,
    pub color: Rgb,
}

/// The policy's settings. Rules are tried in order; the first that matches wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub rules: Vec<Rule>,
    /// Multiplies every colour (0.0 ..= 1.0).
    pub brightness: f32,
    /// Cluster scope: colours for node conditions and the overflow marker.
    pub cluster: ClusterSettings,
}

impl Default for Settings {
    /// The original prototype's colours: failed red, deleting blue, pending yellow,
    /// running green. A running pod that is not ready counts as pending: it is not
    /// serving yet.
    fn default() -> Self {
        Settings {
            rules: vec![
                Rule {
                    states: vec![State::Failed],
                    color: Rgb::new(50, 0, 0),
                },
                Rule {
                    states: vec![State::Deleting],
                    color: Rgb::new(0, 0, 50),
                },
                Rule {
                    states: vec![State::Pending, State::Unready],
                    color: Rgb::new(50, 50, 0),
                },
                Rule {
                    states: vec![State::Running],
                    color: Rgb::new(0, 25, 0),
                },
            ],
            brightness: 1.0,
            cluster: ClusterSettings::default(),
        }
    }
}

/// The settings file's JSON shape, e.g.
/// `{"brightness": 0.5, "rules": [{"states": ["failed"], "color": "#ff0000"}]}`.
/// Both keys are optional; a missing one keeps its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    rules: Option<Vec<RuleFile>>,
    brightness: Option<f32>,
    cluster: Option<ClusterFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    states: Vec<State>,
    color: String,
}

/// Parses `#rrggbb`.
pub fn parse_hex_color(text: &str) -> Result<Rgb, String> {
    let hex = text
        .strip_prefix('#')
        .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("colour {text:?} is not of the form #rrggbb"))?;
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0);
    Ok(Rgb::new(channel(0), channel(2), channel(4)))
}

/// Reads the settings text. Absent settings give the defaults; malformed settings give
/// the defaults too, with a description of the problem for the host's log.
pub fn parse_settings(text: Option<&str>) -> (Settings, Option<String>) {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return (Settings::default(), None);
    };
    match settings_from_json(text) {
        Ok(settings) => (settings, None),
        Err(problem) => (
            Settings::default(),
            Some(format!(
                "priority settings ignored, using the defaults: {problem}"
            )),
        ),
    }
}

fn settings_from_json(text: &str) -> Result<Settings, String> {
    let file: SettingsFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut settings = Settings::default();
    if let Some(brightness) = file.brightness {
        if !(0.0..=1.0).contains(&brightness) {
            return Err(format!("brightness {brightness} is outside 0.0 ..= 1.0"));
        }
        settings.brightness = brightness;
    }
    if let Some(rules) = file.rules {
        settings.rules = rules
            .into_iter()
            .map(|rule| {
                Ok(Rule {
                    states: rule.states,
                    color: parse_hex_color(&rule.color)?,
                })
            })
            .collect::<Result<_, String>>()?;
    }
    if let Some(cluster) = file.cluster {
        cluster.apply(&mut settings.cluster)?;
    }
    Ok(settings)
}

/// The colour for the whole node: the first rule with a pod in one of its states.
pub fn node_color(counts: &Counts, settings: &Settings) -> Rgb {
    settings
        .rules
        .iter()
        .find(|rule| rule.states.iter().any(|&state| counts.of(state) > 0))
        .map_or(Rgb::OFF, |rule| rule.color.scaled(settings.brightness))
}

/// The frame: every LED shows the node colour.
pub fn frame(counts: &Counts, settings: &Settings, led_count: u32) -> Vec<Rgb> {
    vec![node_color(counts, settings); led_count as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(f: impl FnOnce(&mut Counts)) -> Counts {
        let mut c = Counts::default();
        f(&mut c);
        c
    }

    #[test]
    fn priority_order_is_failed_deleting_pending_running_off() {
        let s = Settings::default();
        let all = counts(|c| {
            c.failed = 1;
            c.deleting = 1;
            c.pending = 1;
            c.running = 1;
        });
        assert_eq!(node_color(&all, &s), Rgb::new(50, 0, 0));
        assert_eq!(
            node_color(&Counts { failed: 0, ..all }, &s),
            Rgb::new(0, 0, 50)
        );
        let pending = counts(|c| {
            c.pending = 1;
            c.running = 3;
        });
        assert_eq!(node_color(&pending, &s), Rgb::new(50, 50, 0));
        assert_eq!(
            node_color(&counts(|c| c.unready = 1), &s),
            Rgb::new(50, 50, 0)
        );
        assert_eq!(
            node_color(&counts(|c| c.running = 2), &s),
            Rgb::new(0, 25, 0)
        );
        assert_eq!(node_color(&counts(|c| c.succeeded = 4), &s), Rgb::OFF);
        assert_eq!(node_color(&Counts::default(), &s), Rgb::OFF);
    }

    #[test]
    fn frame_fills_every_led() {
        let f = frame(&counts(|c| c.running = 1), &Settings::default(), 8);
        assert_eq!(f, vec![Rgb::new(0, 25, 0); 8]);
        assert!(frame(&Counts::default(), &Settings::default(), 0).is_empty());
    }

    #[test]
    fn settings_override_rules_and_brightness() {
        let (s, problem) = parse_settings(Some(
            r##"{"brightness": 0.5, "rules": [{"states": ["succeeded", "running"], "color": "#ff0010"}]}"##,
        ));
        assert_eq!(problem, None);
        assert_eq!(
            node_color(&counts(|c| c.succeeded = 1), &s),
            Rgb::new(128, 0, 8)
        );
        assert_eq!(node_color(&counts(|c| c.failed = 1), &s), Rgb::OFF);
    }

    #[test]
    fn malformed_settings_fall_back_to_defaults_with_a_reason() {
        for bad in [
            "{",
            r#"{"brightness": 3}"#,
            r#"{"rules": [{"states": ["failed"], "color": "red"}]}"#,
            r##"{"rules": [{"states": ["broken"], "color": "#ff0000"}]}"##,
            r#"{"colour": 1}"#,
        ] {
            let (s, problem) = parse_settings(Some(bad));
            assert_eq!(s, Settings::default(), "{bad}");
            assert!(
                problem.is_some_and(|p| p.contains("using the defaults")),
                "{bad}"
            );
        }
        assert_eq!(parse_settings(None), (Settings::default(), None));
        assert_eq!(parse_settings(Some("  ")), (Settings::default(), None));
    }
}
