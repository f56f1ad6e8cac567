//! The built-in policy in cluster scope: one LED per node, in the order the host
//! gives them (by name), each the colour of the node's worst trouble; when there are
//! more nodes than LEDs, the last LED is an overflow marker.

use serde::Deserialize;

use crate::{AlertsJudged, Counts, Judged, Otherwise, Rgb, Settings, Why, decide, parse_hex_color};

/// A node as the cluster rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeView {
    pub ready: bool,
    /// Memory, disk or PID pressure.
    pub pressure: bool,
    /// Cordoned (`spec.unschedulable`).
    pub cordoned: bool,
    pub counts: Counts,
    /// Of `counts`, the pods with a silence in force.
    pub silenced: Counts,
    /// The node is silenced (maintenance).
    pub node_silenced: bool,
    /// Which alert rules the node's alerts match.
    pub alerts: AlertsJudged,
}

/// Colours for node conditions, and the overflow marker's blink.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    pub not_ready: Rgb,
    pub pressure: Rgb,
    pub cordoned: Rgb,
    /// A ready node whose pods match no rule (none at all, or only succeeded ones).
    pub idle: Rgb,
    /// Half-period of the overflow marker's blink; 0 keeps it steady.
    pub overflow_blink_ms: u32,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            not_ready: Rgb::new(50, 0, 50),
            pressure: Rgb::new(50, 20, 0),
            cordoned: Rgb::new(0, 30, 30),
            idle: Rgb::new(0, 8, 0),
            overflow_blink_ms: 500,
        }
    }
}

/// The `cluster` key of the settings file; every key optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClusterFile {
    not_ready: Option<String>,
    pressure: Option<String>,
    cordoned: Option<String>,
    idle: Option<String>,
    overflow_blink_ms: Option<u32>,
}

impl ClusterFile {
    pub(crate) fn apply(self, to: &mut ClusterSettings) -> Result<(), String> {
        let colour = |text: Option<String>, slot: &mut Rgb| -> Result<(), String> {
            if let Some(text) = text {
                *slot = parse_hex_color(&text)?;
            }
            Ok(())
        };
        colour(self.not_ready, &mut to.not_ready)?;
        colour(self.pressure, &mut to.pressure)?;
        colour(self.cordoned, &mut to.cordoned)?;
        colour(self.idle, &mut to.idle)?;
        if let Some(ms) = self.overflow_blink_ms {
            to.overflow_blink_ms = ms;
        }
        Ok(())
    }
}

/// How bad a node is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Lower is worse.
    pub rank: usize,
    pub colour: Rgb,
    pub rule: String,
    /// The alert rule behind the colour, and whether its alerts are the muted ones.
    pub alert_rule: Option<(usize, bool)>,
    /// Nothing to show, and the settings leave such LEDs to the layer below.
    pub see_through: bool,
}

/// How bad a node is, its colour, and why. A node in maintenance (silenced) shows so
/// whatever its state. Then worst first: not ready, under pressure, then the node's
/// alerts by the alert rules and its pods by the priority rules for anything but
/// running (silenced ones as acknowledged) — except that a cordoned node whose pods
/// are all fine shows as cordoned — then idle.
pub fn judge(node: &NodeView, settings: &Settings) -> Judgement {
    let brightness = settings.brightness;
    let ranked = settings.alert_rules.len() + settings.rules.len();
    let judged = Judged {
        counts: node.counts,
        silenced: node.silenced,
        node_silenced: node.node_silenced,
        alerts: node.alerts,
    };
    let decision = decide(&judged, settings);
    let described = |rank: usize, colour: Rgb, text: &str| Judgement {
        rank,
        colour,
        rule: format!("{text} → {colour}"),
        alert_rule: None,
        see_through: false,
    };
    let decided = |rank: usize| Judgement {
        rank,
        colour: decision.color,
        rule: decision.rule_text(settings),
        alert_rule: decision.alert_rule(),
        see_through: false,
    };
    if decision.why == Why::Maintenance {
        return decided(4 + ranked);
    }
    if !node.ready {
        return described(
            0,
            settings.cluster.not_ready.scaled(brightness),
            "node not ready",
        );
    }
    if node.pressure {
        return described(
            1,
            settings.cluster.pressure.scaled(brightness),
            "node under memory, disk or PID pressure",
        );
    }
    let c = &node.counts;
    let troubled = c.failed + c.deleting + c.pending + c.unready + c.unknown > 0
        || node.alerts.firing.is_some();
    if node.cordoned && !troubled {
        return described(
            3 + ranked,
            settings.cluster.cordoned.scaled(brightness),
            "node cordoned",
        );
    }
    match decision.why {
        Why::Alert(index) => decided(2 + index),
        Why::Rule(index) => decided(2 + settings.alert_rules.len() + index),
        Why::Acknowledged(_) | Why::AlertAcknowledged(_) => decided(2 + ranked),
        Why::Maintenance | Why::Nothing => Judgement {
            see_through: settings.otherwise == Otherwise::SeeThrough,
            ..described(
                5 + ranked,
                settings.cluster.idle.scaled(brightness),
                "node ready, no pod in any rule's states",
            )
        },
    }
}

/// Why an LED of the cluster frame has its colour: the nodes behind it (indices
/// into the list given), the rule, and the alert rule behind it if one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReason {
    pub led: u32,
    pub nodes: Vec<u32>,
    pub rule: String,
    pub alert_rule: Option<(usize, bool)>,
}

/// The cluster frame, when to evaluate again (the marker's next blink), why each lit
/// LED is lit, and the LEDs left to the layer below.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterFrame {
    pub leds: Vec<Rgb>,
    pub again_after_ms: Option<u32>,
    pub reasons: Vec<NodeReason>,
    pub see_through: Vec<u32>,
}

/// The cluster frame and when to evaluate again (the marker's next blink).
pub fn frame(
    nodes: &[NodeView],
    settings: &Settings,
    led_count: u32,
    now_ms: u64,
) -> (Vec<Rgb>, Option<u32>) {
    let frame = explained_frame(nodes, settings, led_count, now_ms);
    (frame.leds, frame.again_after_ms)
}

/// The cluster frame with its reasons and see-through LEDs.
pub fn explained_frame(
    nodes: &[NodeView],
    settings: &Settings,
    led_count: u32,
    now_ms: u64,
) -> ClusterFrame {
    let leds = led_count as usize;
    let mut out = ClusterFrame {
        leds: vec![Rgb::OFF; leds],
        ..ClusterFrame::default()
    };
    if leds == 0 {
        return out;
    }
    let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    let shown = if nodes.len() <= leds {
        nodes.len()
    } else {
        leds - 1
    };
    for (i, node) in nodes[..shown].iter().enumerate() {
        let judgement = judge(node, settings);
        out.leds[i] = judgement.colour;
        if judgement.see_through {
            out.see_through.push(index(i));
        }
        out.reasons.push(NodeReason {
            led: index(i),
            nodes: vec![index(i)],
            rule: judgement.rule,
            alert_rule: judgement.alert_rule,
        });
    }
    if nodes.len() <= leds {
        // LEDs past the last node have nothing to say.
        if settings.otherwise == Otherwise::SeeThrough {
            out.see_through.extend((shown..leds).map(index));
        }
        return out;
    }
    // More nodes than LEDs: the first LEDs show nodes, the last one the worst of
    // the nodes that did not fit, blinking so it reads as "and more".
    let worst = nodes[shown..]
        .iter()
        .enumerate()
        .map(|(i, node)| (judge(node, settings), shown + i))
        .min_by_key(|(judgement, _)| judgement.rank);
    let Some((worst, worst_index)) = worst else {
        return out;
    };
    out.reasons.push(NodeReason {
        led: index(shown),
        nodes: vec![index(worst_index)],
        rule: format!(
            "{} more nodes than LEDs; the worst of them: {}",
            nodes.len() - shown,
            worst.rule
        ),
        alert_rule: worst.alert_rule,
    });
    let blink = u64::from(settings.cluster.overflow_blink_ms);
    if blink == 0 {
        out.leds[shown] = worst.colour;
        return out;
    }
    let lit = (now_ms / blink).is_multiple_of(2);
    out.leds[shown] = if lit { worst.colour } else { Rgb::OFF };
    let until_toggle = blink - now_ms % blink;
    out.again_after_ms = Some(u32::try_from(until_toggle).unwrap_or(u32::MAX));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(f: impl FnOnce(&mut NodeView)) -> NodeView {
        let mut n = NodeView {
            ready: true,
            ..NodeView::default()
        };
        f(&mut n);
        n
    }

    #[test]
    fn conditions_come_before_pods_and_cordoned_only_when_pods_are_fine() {
        let s = Settings::default();
        let c = ClusterSettings::default();
        let failing = node(|n| n.counts.failed = 1);
        assert_eq!(judge(&failing, &s).colour, Rgb::new(50, 0, 0));
        assert_eq!(
            judge(
                &node(|n| {
                    n.ready = false;
                    n.counts.failed = 1;
                }),
                &s
            )
            .colour,
            c.not_ready
        );
        assert_eq!(judge(&node(|n| n.pressure = true), &s).colour, c.pressure);
        let cordoned_ok = node(|n| {
            n.cordoned = true;
            n.counts.running = 3;
        });
        assert_eq!(judge(&cordoned_ok, &s).colour, c.cordoned);
        let cordoned_failing = node(|n| {
            n.cordoned = true;
            n.counts.failed = 1;
        });
        assert_eq!(judge(&cordoned_failing, &s).colour, Rgb::new(50, 0, 0));
        assert_eq!(
            judge(&node(|n| n.counts.running = 2), &s).colour,
            Rgb::new(0, 25, 0)
        );
        assert_eq!(judge(&node(|_| {}), &s).colour, c.idle);
        assert!(judge(&failing, &s).rank < judge(&cordoned_ok, &s).rank);
        assert!(judge(&cordoned_ok, &s).rank < judge(&node(|_| {}), &s).rank);
    }

    #[test]
    fn one_led_per_node_then_the_rest_off() {
        let s = Settings::default();
        let nodes = [
            node(|n| n.counts.running = 1),
            node(|n| n.counts.failed = 1),
        ];
        let (leds, again) = frame(&nodes, &s, 4, 0);
        assert_eq!(
            leds,
            vec![Rgb::new(0, 25, 0), Rgb::new(50, 0, 0), Rgb::OFF, Rgb::OFF]
        );
        assert_eq!(again, None);
    }

    #[test]
    fn overflow_marker_blinks_the_worst_hidden_node() {
        let s = Settings::default();
        let mut nodes = vec![node(|n| n.counts.running = 1); 5];
        nodes[4].counts.failed = 1;
        let (leds, again) = frame(&nodes, &s, 3, 0);
        assert_eq!(leds[..2], [Rgb::new(0, 25, 0), Rgb::new(0, 25, 0)]);
        assert_eq!(leds[2], Rgb::new(50, 0, 0), "the hidden failing node");
        assert_eq!(again, Some(500));
        let (dark, again) = frame(&nodes, &s, 3, 700);
        assert_eq!(dark[2], Rgb::OFF);
        assert_eq!(again, Some(300));
        let steady = Settings {
            cluster: ClusterSettings {
                overflow_blink_ms: 0,
                ..ClusterSettings::default()
            },
            ..Settings::default()
        };
        let (leds, again) = frame(&nodes, &steady, 3, 700);
        assert_eq!((leds[2], again), (Rgb::new(50, 0, 0), None));
    }

    #[test]
    fn a_nodes_alerts_light_its_led_and_idle_nodes_can_be_see_through() {
        let (s, problem) = crate::parse_settings(Some(
            r##"{"alerts": [{"severities": ["critical"], "color": "#300000"}], "otherwise": "see-through"}"##,
        ));
        assert_eq!(problem, None);
        let alerting = node(|n| {
            n.counts.running = 1;
            n.alerts = AlertsJudged::of(
                [crate::AlertView {
                    severity: "critical",
                    muted: false,
                }],
                &s,
            );
        });
        let idle = node(|_| {});
        let frame = explained_frame(&[idle, alerting], &s, 3, 0);
        assert_eq!(frame.leds[1], Rgb::new(48, 0, 0));
        assert_eq!(frame.reasons[1].alert_rule, Some((0, false)));
        assert!(judge(&alerting, &s).rank < judge(&node(|n| n.counts.failed = 1), &s).rank);
        assert_eq!(
            frame.see_through,
            [0, 2],
            "the idle node and the LED past the nodes"
        );
    }
}
