//! The default "priority" policy: every LED shows the colour of the most important
//! state present on the node — failed, then deleting, then pending, then running —
//! or off when none is. Pods someone silenced (acknowledged) show in a dim
//! "acknowledged" colour instead, unless something unsilenced matters more; a
//! silenced node shows its "maintenance" colour. Alert rules (off unless set) put
//! alerts by severity before every pod rule; alerts silenced or inhibited in
//! Alertmanager count as acknowledged. As a layer above others the policy can leave
//! the LEDs it has nothing to say about to the layer below. Each frame says why.
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

/// One alert rule: if an alert of one of `severities` is active about the node, show
/// `color`. `*` matches any severity (and none).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub severities: Vec<String>,
    pub color: Rgb,
}

impl AlertRule {
    fn matches(&self, severity: &str) -> bool {
        self.severities
            .iter()
            .any(|s| s == "*" || s.eq_ignore_ascii_case(severity))
    }
}

impl Settings {
    /// Whether `alert` is one of those behind alert rule `rule.0` — the muted ones when
    /// `rule.1`: the first alert rule it matches is that one.
    pub fn alert_behind(&self, rule: (usize, bool), alert: AlertView<'_>) -> bool {
        alert.muted == rule.1
            && self
                .alert_rules
                .iter()
                .position(|r| r.matches(alert.severity))
                == Some(rule.0)
    }
}

/// What LEDs show when no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Otherwise {
    /// Off (a ready node with nothing to show, in cluster scope: the idle colour).
    #[default]
    Off,
    /// Left to the layer below (contract 0.4's `see-through`): the policy as an
    /// overlay that only speaks when a rule matches.
    SeeThrough,
}

/// The policy's settings. Rules are tried in order — alert rules first — and the
/// first that matches wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Alerts by severity, before the pod rules; none by default.
    pub alert_rules: Vec<AlertRule>,
    pub rules: Vec<Rule>,
    /// Multiplies every colour (0.0 ..= 1.0).
    pub brightness: f32,
    /// Cluster scope: colours for node conditions and the overflow marker.
    pub cluster: ClusterSettings,
    /// Silenced pods whose rule would win: known, shown quietly.
    pub acknowledged: Rgb,
    /// A silenced node (maintenance).
    pub maintenance: Rgb,
    /// Half-period of a blink for LEDs that show failed pods (a second channel
    /// beside colour); 0 keeps them steady.
    pub blink_failed_ms: u32,
    pub otherwise: Otherwise,
}

/// The colour sets the `palette` setting chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Palette {
    /// The original prototype's red, blue, yellow, green.
    Default,
    /// After Okabe & Ito's colour-universal-design set: failed vermillion, pending
    /// white, running blue (deleting reddish purple): failed, pending and running
    /// stay apart in hue under protanopia, deuteranopia and tritanopia
    /// (`podlight test --lint colour-vision` checks it).
    ColourBlindSafe,
}

impl Palette {
    /// The colours of failed, deleting, pending and running pods.
    fn rule_colours(self) -> [Rgb; 4] {
        match self {
            Palette::Default => [
                Rgb::new(50, 0, 0),
                Rgb::new(0, 0, 50),
                Rgb::new(50, 50, 0),
                Rgb::new(0, 25, 0),
            ],
            // Okabe-Ito vermillion #d55e00, reddish purple #cc79a7 and blue #0072b2
            // scaled to the default's brightness, and a neutral white.
            Palette::ColourBlindSafe => [
                Rgb::new(50, 22, 0),
                Rgb::new(50, 30, 41),
                Rgb::new(30, 30, 30),
                Rgb::new(0, 32, 50),
            ],
        }
    }
}

impl Default for Settings {
    /// The original prototype's colours: failed red, deleting blue, pending yellow,
    /// running green. A running pod that is not ready counts as pending: it is not
    /// serving yet.
    fn default() -> Self {
        Settings {
            alert_rules: Vec::new(),
            rules: default_rules(Palette::Default),
            brightness: 1.0,
            cluster: ClusterSettings::default(),
            acknowledged: Rgb::new(12, 4, 0),
            maintenance: Rgb::new(8, 8, 12),
            blink_failed_ms: 0,
            otherwise: Otherwise::Off,
        }
    }
}

/// The four rules (failed, deleting, pending or unready, running) in a palette.
fn default_rules(palette: Palette) -> Vec<Rule> {
    let [failed, deleting, pending, running] = palette.rule_colours();
    vec![
        Rule {
            states: vec![State::Failed],
            color: failed,
        },
        Rule {
            states: vec![State::Deleting],
            color: deleting,
        },
        Rule {
            states: vec![State::Pending, State::Unready],
            color: pending,
        },
        Rule {
            states: vec![State::Running],
            color: running,
        },
    ]
}

/// The settings file's JSON shape, e.g.
/// `{"brightness": 0.5, "rules": [{"states": ["failed"], "color": "#ff0000"}],
///   "alerts": [{"severities": ["critical"], "color": "#320000"}]}`.
/// Every key is optional; a missing one keeps its default. `palette` chooses the
/// rules' colours (`rules` given too wins).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettingsFile {
    alerts: Option<Vec<AlertRuleFile>>,
    otherwise: Option<Otherwise>,
    rules: Option<Vec<RuleFile>>,
    brightness: Option<f32>,
    cluster: Option<ClusterFile>,
    palette: Option<Palette>,
    acknowledged: Option<String>,
    maintenance: Option<String>,
    blink_failed_ms: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertRuleFile {
    severities: Vec<String>,
    color: String,
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
    if let Some(palette) = file.palette {
        settings.rules = default_rules(palette);
    }
    if let Some(text) = file.acknowledged {
        settings.acknowledged = parse_hex_color(&text)?;
    }
    if let Some(text) = file.maintenance {
        settings.maintenance = parse_hex_color(&text)?;
    }
    if let Some(ms) = file.blink_failed_ms {
        settings.blink_failed_ms = ms;
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
    if let Some(alerts) = file.alerts {
        settings.alert_rules = alerts
            .into_iter()
            .map(|rule| {
                Ok(AlertRule {
                    severities: rule.severities,
                    color: parse_hex_color(&rule.color)?,
                })
            })
            .collect::<Result<_, String>>()?;
    }
    if let Some(otherwise) = file.otherwise {
        settings.otherwise = otherwise;
    }
    if let Some(cluster) = file.cluster {
        cluster.apply(&mut settings.cluster)?;
    }
    Ok(settings)
}

/// The colour for the whole node: the first rule with a pod in one of its states.
pub fn node_color(counts: &Counts, settings: &Settings) -> Rgb {
    decide(&Judged::counts(*counts), settings).color
}

/// The frame: every LED shows the node colour.
pub fn frame(counts: &Counts, settings: &Settings, led_count: u32) -> Vec<Rgb> {
    vec![node_color(counts, settings); led_count as usize]
}

/// What the rule looks at: pods per state, those of them silenced, whether the node
/// itself is silenced, and which alert rules its alerts match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Judged {
    pub counts: Counts,
    pub silenced: Counts,
    pub node_silenced: bool,
    pub alerts: AlertsJudged,
}

/// The first alert rule matched by a firing alert, and the first matched by one
/// silenced or inhibited in Alertmanager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlertsJudged {
    pub firing: Option<usize>,
    pub muted: Option<usize>,
}

/// An alert as the rules see it: its severity, and whether Alertmanager silenced or
/// inhibited it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertView<'a> {
    pub severity: &'a str,
    pub muted: bool,
}

impl AlertsJudged {
    /// Which alert rules `alerts` match.
    pub fn of<'a>(alerts: impl IntoIterator<Item = AlertView<'a>>, settings: &Settings) -> Self {
        let mut judged = AlertsJudged::default();
        for alert in alerts {
            let Some(rule) = settings
                .alert_rules
                .iter()
                .position(|r| r.matches(alert.severity))
            else {
                continue;
            };
            let slot = if alert.muted {
                &mut judged.muted
            } else {
                &mut judged.firing
            };
            *slot = Some(slot.map_or(rule, |r| r.min(rule)));
        }
        judged
    }
}

impl Judged {
    pub fn counts(counts: Counts) -> Judged {
        Judged {
            counts,
            ..Judged::default()
        }
    }

    fn unsilenced(&self, state: State) -> u32 {
        self.counts
            .of(state)
            .saturating_sub(self.silenced.of(state))
    }
}

/// Why a colour was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Alert rule `n` (0-based) matched a firing alert.
    Alert(usize),
    /// Alerts silenced or inhibited in Alertmanager would have matched alert rule
    /// `n`, before anything firing.
    AlertAcknowledged(usize),
    /// Rule `n` (0-based) matched pods that are not silenced.
    Rule(usize),
    /// Silenced pods would have matched rule `n`, before anything unsilenced.
    Acknowledged(usize),
    /// The node is silenced.
    Maintenance,
    /// No pod is in any rule's states.
    Nothing,
}

/// A colour and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub color: Rgb,
    pub why: Why,
}

/// The node's colour: the node's silence first, then the first rule — alert rules
/// before pod rules — matched by alerts or pods that are not silenced, unless
/// silenced ones match an earlier rule, which then shows as acknowledged; then off.
pub fn decide(judged: &Judged, settings: &Settings) -> Decision {
    let brightness = settings.brightness;
    if judged.node_silenced {
        return Decision {
            color: settings.maintenance.scaled(brightness),
            why: Why::Maintenance,
        };
    }
    // One ranking: alert rules, then pod rules.
    let alert_rules = settings.alert_rules.len();
    let first = |count: &dyn Fn(State) -> u32| {
        settings
            .rules
            .iter()
            .position(|rule| rule.states.iter().any(|&state| count(state) > 0))
            .map(|rule| alert_rules + rule)
    };
    let unsilenced = judged
        .alerts
        .firing
        .or_else(|| first(&|state| judged.unsilenced(state)));
    let silenced = judged
        .alerts
        .muted
        .or_else(|| first(&|state| judged.silenced.of(state)));
    let shown = |rank: usize| {
        if rank < alert_rules {
            Decision {
                color: settings.alert_rules[rank].color.scaled(brightness),
                why: Why::Alert(rank),
            }
        } else {
            Decision {
                color: settings.rules[rank - alert_rules].color.scaled(brightness),
                why: Why::Rule(rank - alert_rules),
            }
        }
    };
    let acknowledged = |rank: usize| Decision {
        color: settings.acknowledged.scaled(brightness),
        why: if rank < alert_rules {
            Why::AlertAcknowledged(rank)
        } else {
            Why::Acknowledged(rank - alert_rules)
        },
    };
    match (unsilenced, silenced) {
        (Some(rank), None) => shown(rank),
        (Some(rank), Some(muted)) if rank <= muted => shown(rank),
        (_, Some(muted)) => acknowledged(muted),
        (None, None) => Decision {
            color: Rgb::OFF,
            why: Why::Nothing,
        },
    }
}

impl Decision {
    /// The decision at `now_ms` with failed pods blinking, if the settings ask for
    /// it: the colour (off in the dark half) and when it changes next.
    pub fn blinking(self, settings: &Settings, now_ms: u64) -> (Rgb, Option<u32>) {
        let shows_failed = matches!(self.why, Why::Rule(n)
            if settings.rules[n].states.contains(&State::Failed));
        let half = u64::from(settings.blink_failed_ms);
        if !shows_failed || half == 0 {
            return (self.color, None);
        }
        let lit = (now_ms / half).is_multiple_of(2);
        let until_toggle = u32::try_from(half - now_ms % half).unwrap_or(u32::MAX);
        (if lit { self.color } else { Rgb::OFF }, Some(until_toggle))
    }

    /// The rule as people read it, e.g. `rule 1: failed → #320000`.
    pub fn rule_text(&self, settings: &Settings) -> String {
        let states = |n: usize| {
            settings.rules[n]
                .states
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let severities = |n: usize| settings.alert_rules[n].severities.join(", ");
        match self.why {
            Why::Alert(n) => format!(
                "alert rule {}: {} alerts → {}",
                n + 1,
                severities(n),
                self.color
            ),
            Why::AlertAcknowledged(n) => format!(
                "acknowledged: {} alerts silenced or inhibited in Alertmanager (alert rule {}) → {}",
                severities(n),
                n + 1,
                self.color
            ),
            Why::Rule(n) => format!("rule {}: {} pods → {}", n + 1, states(n), self.color),
            Why::Acknowledged(n) => format!(
                "acknowledged: silenced {} pods (rule {}) → {}",
                states(n),
                n + 1,
                self.color
            ),
            Why::Maintenance => format!("node silenced (maintenance) → {}", self.color),
            Why::Nothing => "no pod in any rule's states → off".to_string(),
        }
    }

    /// The states whose pods are behind the colour, and whether those pods are the
    /// silenced ones.
    pub fn behind(&self, settings: &Settings) -> (Vec<State>, bool) {
        match self.why {
            Why::Rule(n) => (settings.rules[n].states.clone(), false),
            Why::Acknowledged(n) => (settings.rules[n].states.clone(), true),
            Why::Alert(_) | Why::AlertAcknowledged(_) | Why::Maintenance | Why::Nothing => {
                (Vec::new(), false)
            }
        }
    }

    /// The alert rule behind the colour, and whether its alerts are the muted ones.
    pub fn alert_rule(&self) -> Option<(usize, bool)> {
        match self.why {
            Why::Alert(n) => Some((n, false)),
            Why::AlertAcknowledged(n) => Some((n, true)),
            _ => None,
        }
    }

    /// Whether `alert` is behind the colour.
    pub fn names_alert(&self, settings: &Settings, alert: AlertView<'_>) -> bool {
        self.alert_rule()
            .is_some_and(|rule| settings.alert_behind(rule, alert))
    }

    /// The LEDs are left to the layer below: no rule matched and the settings say so.
    pub fn see_through(&self, settings: &Settings) -> bool {
        self.why == Why::Nothing && settings.otherwise == Otherwise::SeeThrough
    }
}

impl State {
    pub const ALL: [State; 7] = [
        State::Deleting,
        State::Failed,
        State::Succeeded,
        State::Pending,
        State::Unready,
        State::Running,
        State::Unknown,
    ];

    /// The contract's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            State::Deleting => "deleting",
            State::Failed => "failed",
            State::Succeeded => "succeeded",
            State::Pending => "pending",
            State::Unready => "unready",
            State::Running => "running",
            State::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Rgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }
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
    fn silenced_pods_show_acknowledged_unless_something_unsilenced_matters_more() {
        let s = Settings::default();
        let failed_silenced = Judged {
            counts: counts(|c| {
                c.failed = 1;
                c.running = 2;
            }),
            silenced: counts(|c| c.failed = 1),
            node_silenced: false,
            alerts: AlertsJudged::default(),
        };
        let d = decide(&failed_silenced, &s);
        assert_eq!(d.why, Why::Acknowledged(0));
        assert_eq!(d.color, s.acknowledged);
        assert!(
            d.rule_text(&s).contains("acknowledged"),
            "{}",
            d.rule_text(&s)
        );
        assert_eq!(d.behind(&s), (vec![State::Failed], true));
        let also_pending = Judged {
            counts: counts(|c| {
                c.failed = 1;
                c.pending = 1;
            }),
            ..failed_silenced
        };
        assert_eq!(decide(&also_pending, &s).why, Why::Acknowledged(0));
        let another_failing = Judged {
            counts: counts(|c| c.failed = 2),
            ..failed_silenced
        };
        assert_eq!(decide(&another_failing, &s).why, Why::Rule(0));
        let only_silenced = Judged {
            counts: counts(|c| c.failed = 1),
            ..failed_silenced
        };
        assert_eq!(decide(&only_silenced, &s).color, s.acknowledged);
        let maintenance = Judged {
            node_silenced: true,
            ..another_failing
        };
        assert_eq!(decide(&maintenance, &s).color, s.maintenance);
        assert_eq!(decide(&Judged::default(), &s).why, Why::Nothing);
    }

    #[test]
    fn failed_can_blink_and_the_palette_changes_the_rule_colours() {
        let (s, problem) = parse_settings(Some(
            r##"{"palette": "colour-blind-safe", "blinkFailedMs": 400, "acknowledged": "#010203"}"##,
        ));
        assert_eq!(problem, None);
        assert_eq!(s.rules[0].color, Rgb::new(50, 22, 0));
        assert_eq!(s.acknowledged, Rgb::new(1, 2, 3));
        let failed = decide(&Judged::counts(counts(|c| c.failed = 1)), &s);
        assert_eq!(failed.blinking(&s, 100), (Rgb::new(50, 22, 0), Some(300)));
        assert_eq!(failed.blinking(&s, 500), (Rgb::OFF, Some(300)));
        let running = decide(&Judged::counts(counts(|c| c.running = 1)), &s);
        assert_eq!(running.blinking(&s, 500), (Rgb::new(0, 32, 50), None));
    }

    #[test]
    fn alert_rules_come_before_pod_rules_and_muted_alerts_are_acknowledged() {
        let (s, problem) = parse_settings(Some(
            r##"{"alerts": [{"severities": ["critical"], "color": "#300000"}, {"severities": ["warning", "*"], "color": "#302000"}], "otherwise": "see-through"}"##,
        ));
        assert_eq!(problem, None);
        let view = |severity, muted| AlertView { severity, muted };
        let failing = counts(|c| c.failed = 1);
        let with = |alerts: &[AlertView<'_>], counts: Counts| Judged {
            counts,
            alerts: AlertsJudged::of(alerts.iter().copied(), &s),
            ..Judged::default()
        };
        let critical = decide(&with(&[view("CRITICAL", false)], failing), &s);
        assert_eq!(
            (critical.why, critical.color),
            (Why::Alert(0), Rgb::new(48, 0, 0))
        );
        assert!(critical.rule_text(&s).contains("critical alerts"));
        assert!(critical.names_alert(&s, view("critical", false)));
        assert!(!critical.names_alert(&s, view("warning", false)));
        let info = decide(&with(&[view("info", false)], Counts::default()), &s);
        assert_eq!(info.why, Why::Alert(1));
        // Silenced in Alertmanager: acknowledged, unless something firing ranks higher.
        let muted = decide(
            &with(&[view("critical", true)], counts(|c| c.running = 1)),
            &s,
        );
        assert_eq!(
            (muted.why, muted.color),
            (Why::AlertAcknowledged(0), s.acknowledged)
        );
        let muted_but_warning = decide(
            &with(&[view("critical", true), view("warning", false)], failing),
            &s,
        );
        assert_eq!(muted_but_warning.why, Why::AlertAcknowledged(0));
        let firing_first = decide(
            &with(&[view("critical", false), view("warning", true)], failing),
            &s,
        );
        assert_eq!(firing_first.why, Why::Alert(0));
        // No alert: the pod rules as before; nothing at all: see-through.
        assert_eq!(decide(&with(&[], failing), &s).why, Why::Rule(0));
        let nothing = decide(&with(&[], Counts::default()), &s);
        assert!(nothing.see_through(&s));
        assert!(!nothing.see_through(&Settings::default()));
        // Without alert rules, alerts change nothing.
        let plain = Settings::default();
        let judged = Judged {
            counts: counts(|c| c.running = 1),
            alerts: AlertsJudged::of([view("critical", false)], &plain),
            ..Judged::default()
        };
        assert_eq!(decide(&judged, &plain).why, Why::Rule(3));
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
