//! The built-in policy in cluster scope: one LED per node, in the order the host
//! gives them (by name), each the colour of the node's worst trouble; when there are
//! more nodes than LEDs, the last LED is an overflow marker.

use serde::Deserialize;

use crate::{Counts, Judged, Rgb, Settings, Why, decide, parse_hex_color};

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

/// How bad a node is (lower is worse), its colour, and why. A node in maintenance
/// (silenced) shows so whatever its state. Then worst first: not ready, under
/// pressure, then the node's pods by the priority rules for anything but running
/// (silenced pods as acknowledged) — except that a cordoned node whose pods are all
/// fine shows as cordoned — then idle.
pub fn judge(node: &NodeView, settings: &Settings) -> (usize, Rgb, String) {
    let brightness = settings.brightness;
    let rules = settings.rules.len();
    let judged = Judged {
        counts: node.counts,
        silenced: node.silenced,
        node_silenced: node.node_silenced,
    };
    let decision = decide(&judged, settings);
    let described =
        |rank: usize, colour: Rgb, text: &str| (rank, colour, format!("{text} → {colour}"));
    if decision.why == Why::Maintenance {
        return (4 + rules, decision.color, decision.rule_text(settings));
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
    let troubled = c.failed + c.deleting + c.pending + c.unready + c.unknown > 0;
    if node.cordoned && !troubled {
        return described(
            3 + rules,
            settings.cluster.cordoned.scaled(brightness),
            "node cordoned",
        );
    }
    match decision.why {
        Why::Rule(index) => (2 + index, decision.color, decision.rule_text(settings)),
        Why::Acknowledged(_) => (2 + rules, decision.color, decision.rule_text(settings)),
        Why::Maintenance | Why::Nothing => described(
            5 + rules,
            settings.cluster.idle.scaled(brightness),
            "node ready, no pod in any rule's states",
        ),
    }
}

/// Why an LED of the cluster frame has its colour: the nodes behind it (indices
/// into the list given) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReason {
    pub led: u32,
    pub nodes: Vec<u32>,
    pub rule: String,
}

/// The cluster frame and when to evaluate again (the marker's next blink).
pub fn frame(
    nodes: &[NodeView],
    settings: &Settings,
    led_count: u32,
    now_ms: u64,
) -> (Vec<Rgb>, Option<u32>) {
    let (leds, again, _) = explained_frame(nodes, settings, led_count, now_ms);
    (leds, again)
}

/// The cluster frame, when to evaluate again, and why each lit LED is lit.
pub fn explained_frame(
    nodes: &[NodeView],
    settings: &Settings,
    led_count: u32,
    now_ms: u64,
) -> (Vec<Rgb>, Option<u32>, Vec<NodeReason>) {
    let leds = led_count as usize;
    let mut frame = vec![Rgb::OFF; leds];
    let mut reasons = Vec::new();
    if leds == 0 {
        return (frame, None, reasons);
    }
    let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    let shown = if nodes.len() <= leds {
        nodes.len()
    } else {
        leds - 1
    };
    for (i, (slot, node)) in frame.iter_mut().zip(&nodes[..shown]).enumerate() {
        let (_, colour, rule) = judge(node, settings);
        *slot = colour;
        reasons.push(NodeReason {
            led: index(i),
            nodes: vec![index(i)],
            rule,
        });
    }
    if nodes.len() <= leds {
        return (frame, None, reasons);
    }
    // More nodes than LEDs: the first LEDs show nodes, the last one the worst of
    // the nodes that did not fit, blinking so it reads as "and more".
    let worst = nodes[shown..]
        .iter()
        .enumerate()
        .map(|(i, node)| (judge(node, settings), shown + i))
        .min_by_key(|((rank, _, _), _)| *rank);
    let Some(((_, worst, rule), worst_index)) = worst else {
        return (frame, None, reasons);
    };
    reasons.push(NodeReason {
        led: index(shown),
        nodes: vec![index(worst_index)],
        rule: format!(
            "{} more nodes than LEDs; the worst of them: {rule}",
            nodes.len() - shown
        ),
    });
    let blink = u64::from(settings.cluster.overflow_blink_ms);
    if blink == 0 {
        frame[shown] = worst;
        return (frame, None, reasons);
    }
    let lit = (now_ms / blink).is_multiple_of(2);
    frame[shown] = if lit { worst } else { Rgb::OFF };
    let until_toggle = blink - now_ms % blink;
    (
        frame,
        Some(u32::try_from(until_toggle).unwrap_or(u32::MAX)),
        reasons,
    )
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
        assert_eq!(judge(&failing, &s).1, Rgb::new(50, 0, 0));
        assert_eq!(
            judge(
                &node(|n| {
                    n.ready = false;
                    n.counts.failed = 1;
                }),
                &s
            )
            .1,
            c.not_ready
        );
        assert_eq!(judge(&node(|n| n.pressure = true), &s).1, c.pressure);
        let cordoned_ok = node(|n| {
            n.cordoned = true;
            n.counts.running = 3;
        });
        assert_eq!(judge(&cordoned_ok, &s).1, c.cordoned);
        let cordoned_failing = node(|n| {
            n.cordoned = true;
            n.counts.failed = 1;
        });
        assert_eq!(judge(&cordoned_failing, &s).1, Rgb::new(50, 0, 0));
        assert_eq!(
            judge(&node(|n| n.counts.running = 2), &s).1,
            Rgb::new(0, 25, 0)
        );
        assert_eq!(judge(&node(|_| {}), &s).1, c.idle);
        assert!(judge(&failing, &s).0 < judge(&cordoned_ok, &s).0);
        assert!(judge(&cordoned_ok, &s).0 < judge(&node(|_| {}), &s).0);
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
}
