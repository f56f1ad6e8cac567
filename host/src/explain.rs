//! Why each LED has its colour: a frame's reasons resolved against the snapshot it
//! was evaluated on — the rule, the pods (with state, reason, restarts, since when
//! and any silence), the nodes and the alerts. Pure: the agent serves it
//! (`/api/explain`), `podlight explain` and `podlight eval --explain` print it.

use serde::{Deserialize, Serialize};

use crate::frame::{Frame, Rgb, ansi_blocks};
use crate::state::{Alert, AlertState, NodeSummary, PodInfo, PodState, Silence, Snapshot};

/// Shown for an LED whose policy named no reason.
pub const NO_REASON: &str = "the policy gave no reason";
/// Most pods shown per node in cluster scope (the worst first).
const WORST_PODS_PER_NODE: usize = 3;

/// The explanation of a whole frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The node (or `cluster`).
    pub node: String,
    pub scope: String,
    pub policy: String,
    pub policy_sha256: String,
    /// The time the frame was evaluated for.
    pub now_ms: u64,
    pub leds: Vec<LedExplanation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedExplanation {
    pub led: u32,
    /// The policy's colour, `#rrggbb`.
    pub colour: String,
    /// What the stick shows when it differs (quiet hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
    /// The rule, or [`NO_REASON`].
    pub rule: String,
    /// The layer that set the LED, in a stack of layers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub layer: String,
    /// The policy gave a reason for this LED.
    pub explained: bool,
    /// Left to the layer below.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub see_through: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodWhy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeWhy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertWhy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodWhy {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    pub state: PodState,
    /// e.g. CrashLoopBackOff, ImagePullBackOff, OOMKilled.
    pub reason: String,
    pub restarts: u32,
    /// Since when it has been in its current run: the running container's start,
    /// else the pod's start, else its creation (ms since the Unix epoch).
    pub since_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<Silence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeWhy {
    pub name: String,
    pub ready: bool,
    pub cordoned: bool,
    pub pressure: bool,
    pub failed: u32,
    pub pending: u32,
    pub deleting: u32,
    pub running: u32,
    pub total: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<Silence>,
    /// Its worst pods (cluster scope lists only pods that need attention).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worst_pods: Vec<PodWhy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertWhy {
    pub name: String,
    pub severity: String,
    pub state: AlertState,
    pub node: String,
    pub starts_at_ms: u64,
    pub summary: String,
}

/// The policy that made the frame, as the explanation names it.
pub struct PolicyName<'a> {
    pub name: &'a str,
    pub sha256: &'a str,
}

/// Explains `frame`, evaluated on `snapshot`; `shown` is what the stick shows when
/// the host changed the frame afterwards (quiet hours), else the frame's LEDs.
pub fn explain(
    snapshot: &Snapshot,
    frame: &Frame,
    shown: &[Rgb],
    policy: &PolicyName<'_>,
) -> Explanation {
    let summaries = snapshot.node_summaries();
    let leds = frame
        .leds
        .iter()
        .enumerate()
        .map(|(index, colour)| {
            let led = u32::try_from(index).unwrap_or(u32::MAX);
            let reason = frame.reason_for(led);
            let shown_colour = shown.get(index).filter(|c| *c != colour);
            LedExplanation {
                led,
                colour: colour.to_string(),
                shown: shown_colour.map(ToString::to_string),
                rule: reason
                    .map(|r| r.rule.clone())
                    .filter(|rule| !rule.is_empty())
                    .unwrap_or_else(|| NO_REASON.to_string()),
                layer: reason.map(|r| r.layer.clone()).unwrap_or_default(),
                explained: reason.is_some_and(|r| !r.rule.is_empty()),
                see_through: frame.see_through.contains(&led),
                pods: reason
                    .into_iter()
                    .flat_map(|r| &r.pods)
                    .filter_map(|&i| snapshot.pods.get(i as usize))
                    .map(pod_why)
                    .collect(),
                nodes: reason
                    .into_iter()
                    .flat_map(|r| &r.nodes)
                    .filter_map(|&i| summaries.get(i as usize))
                    .map(|n| node_why(n, snapshot))
                    .collect(),
                alerts: reason
                    .into_iter()
                    .flat_map(|r| &r.alerts)
                    .filter_map(|&i| snapshot.alerts.get(i as usize))
                    .map(alert_why)
                    .collect(),
            }
        })
        .collect();
    Explanation {
        node: snapshot.node.name.clone(),
        scope: if snapshot.scope.is_node() {
            "node"
        } else {
            "cluster"
        }
        .to_string(),
        policy: policy.name.to_string(),
        policy_sha256: policy.sha256.to_string(),
        now_ms: snapshot.now_ms,
        leds,
    }
}

fn pod_why(pod: &PodInfo) -> PodWhy {
    let running_since = pod.containers.iter().find_map(|c| match c.state {
        crate::state::ContainerState::Running { started_ms } => started_ms,
        _ => None,
    });
    PodWhy {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        node: pod.node.clone(),
        state: pod.state,
        reason: pod.reason.clone(),
        restarts: pod.restarts(),
        since_ms: running_since
            .or(pod.start_time_ms)
            .unwrap_or(pod.created_ms),
        silence: pod.silence.clone(),
    }
}

/// How bad a pod's state is, worst first, for choosing a node's worst pods.
fn severity(state: PodState) -> u8 {
    match state {
        PodState::Failed => 0,
        PodState::Unknown => 1,
        PodState::Deleting => 2,
        PodState::Pending => 3,
        PodState::Unready => 4,
        PodState::Running => 5,
        PodState::Succeeded => 6,
    }
}

fn node_why(summary: &NodeSummary, snapshot: &Snapshot) -> NodeWhy {
    let node = &summary.node;
    let mut pods: Vec<&PodInfo> = snapshot
        .pods
        .iter()
        .filter(|p| p.node == node.name)
        .collect();
    pods.sort_by_key(|p| (p.silence.is_some(), severity(p.state)));
    let c = &summary.counts;
    NodeWhy {
        name: node.name.clone(),
        ready: node.ready,
        cordoned: node.unschedulable,
        pressure: node.memory_pressure || node.disk_pressure || node.pid_pressure,
        failed: c.failed,
        pending: c.pending + c.unready,
        deleting: c.deleting,
        running: c.running,
        total: c.total,
        silence: node.silence.clone(),
        worst_pods: pods
            .into_iter()
            .take(WORST_PODS_PER_NODE)
            .map(pod_why)
            .collect(),
    }
}

fn alert_why(alert: &Alert) -> AlertWhy {
    AlertWhy {
        name: alert.name.clone(),
        severity: alert.severity.clone(),
        state: alert.state,
        node: alert.node.clone(),
        starts_at_ms: alert.starts_at_ms,
        summary: alert.summary.clone(),
    }
}

/// The explanation for people: a header, then per LED its colour as a block and hex,
/// the rule and what is behind it (the block only with `blocks`, for a terminal).
/// `only` picks one LED. Every text in it came
/// bounded and stripped from the agent or the API server; it is stripped again here
/// because a remote agent sent it.
pub fn render(explanation: &Explanation, only: Option<u32>, blocks: bool) -> String {
    use crate::policy::untrusted::sanitize;
    let clean = |text: &str| sanitize(text, 300);
    let sha = explanation
        .policy_sha256
        .get(..12)
        .unwrap_or(&explanation.policy_sha256);
    let mut out = format!(
        "{} ({} scope), policy {} sha256:{}, at {}\n",
        clean(&explanation.node),
        clean(&explanation.scope),
        clean(&explanation.policy),
        clean(sha),
        time(explanation.now_ms)
    );
    for led in explanation
        .leds
        .iter()
        .filter(|l| only.is_none_or(|n| n == l.led))
    {
        let colour = Rgb::parse(&led.colour).unwrap_or(Rgb::OFF);
        let block = if blocks {
            ansi_blocks(&[colour])
                .split("  ")
                .next()
                .map(|b| format!("{b} "))
                .unwrap_or_default()
        } else {
            String::new()
        };
        out.push_str(&format!("LED {} {block}{}", led.led, clean(&led.colour)));
        if let Some(shown) = &led.shown {
            out.push_str(&format!(" (shown {} by quiet hours)", clean(shown)));
        }
        if led.see_through {
            out.push_str(" (see-through: left to the layer below)");
        }
        if !led.layer.is_empty() {
            out.push_str(&format!(" [layer {}]", clean(&led.layer)));
        }
        out.push_str(&format!("  {}\n", clean(&led.rule)));
        for pod in &led.pods {
            out.push_str(&format!("    pod {}\n", pod_line(pod, &clean)));
        }
        for node in &led.nodes {
            let mut line = format!(
                "    node {}: {}{}{}{}{} failed, {} pending, {} deleting, {} running of {}",
                clean(&node.name),
                if node.ready { "ready" } else { "NOT READY" },
                if node.pressure {
                    ", under pressure"
                } else {
                    ""
                },
                if node.cordoned { ", cordoned" } else { "" },
                "; ",
                node.failed,
                node.pending,
                node.deleting,
                node.running,
                node.total
            );
            if let Some(silence) = &node.silence {
                line.push_str(&format!(", {}", silence_text(silence, &clean)));
            }
            out.push_str(&line);
            out.push('\n');
            for pod in &node.worst_pods {
                out.push_str(&format!("      pod {}\n", pod_line(pod, &clean)));
            }
        }
        for alert in &led.alerts {
            out.push_str(&format!(
                "    alert {} ({}, {:?}) on {} since {}: {}\n",
                clean(&alert.name),
                clean(&alert.severity),
                alert.state,
                clean(&alert.node),
                time(alert.starts_at_ms),
                clean(&alert.summary)
            ));
        }
    }
    out
}

fn pod_line(pod: &PodWhy, clean: &dyn Fn(&str) -> String) -> String {
    let mut line = format!(
        "{}/{}: {}, {}, {} restarts, since {}",
        clean(&pod.namespace),
        clean(&pod.name),
        pod.state.name(),
        clean(&pod.reason),
        pod.restarts,
        time(pod.since_ms)
    );
    if let Some(silence) = &pod.silence {
        line.push_str(&format!(", {}", silence_text(silence, clean)));
    }
    line
}

fn silence_text(silence: &Silence, clean: &dyn Fn(&str) -> String) -> String {
    let by = if silence.by.is_empty() {
        String::new()
    } else {
        format!(" by {}", clean(&silence.by))
    };
    format!(
        "silenced{by} until {}: {}",
        time(silence.until_ms),
        clean(&silence.reason)
    )
}

/// An RFC 3339 time for a millisecond timestamp.
pub fn time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| k8s_openapi::jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || ms.to_string(),
            |t| {
                t.round(k8s_openapi::jiff::Unit::Second)
                    .map_or_else(|_| t.to_string(), |t| t.to_string())
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::LedReason;

    fn snapshot() -> Snapshot {
        Snapshot::from_json(
            r#"{"nowMs": 1000, "node": {"name": "n1", "ready": true},
                "pods": [
                  {"namespace": "prod", "name": "api", "phase": "Running", "startTimeMs": 10,
                   "containers": [{"name": "c", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
                  {"namespace": "prod", "name": "web", "phase": "Running", "ready": true,
                   "silence": {"untilMs": 5000, "reason": "known", "by": "alice"},
                   "containers": [{"name": "c", "ready": true, "state": {"running": {"startedMs": 20}}}]}
                ]}"#,
        )
        .expect("valid")
    }

    #[test]
    fn names_the_rule_and_the_pods_and_says_when_there_is_no_reason() {
        let snapshot = snapshot();
        let frame = Frame {
            leds: vec![Rgb::new(50, 0, 0), Rgb::new(50, 0, 0), Rgb::OFF],
            again_after_ms: None,
            reasons: vec![LedReason {
                leds: vec![0, 1],
                rule: "failed pods → #320000".into(),
                pods: vec![0],
                ..LedReason::default()
            }],
            see_through: vec![2],
        };
        let shown = [Rgb::new(5, 0, 0), Rgb::new(50, 0, 0), Rgb::OFF];
        let policy = PolicyName {
            name: "priority",
            sha256: "abc",
        };
        let e = explain(&snapshot, &frame, &shown, &policy);
        assert_eq!(e.leds.len(), 3);
        assert_eq!(e.leds[0].rule, "failed pods → #320000");
        assert_eq!(e.leds[0].shown.as_deref(), Some("#050000"));
        assert_eq!(e.leds[1].shown, None);
        assert_eq!(e.leds[0].pods[0].name, "api");
        assert_eq!(e.leds[0].pods[0].reason, "CrashLoopBackOff");
        assert_eq!(e.leds[0].pods[0].restarts, 4);
        assert_eq!(e.leds[0].pods[0].since_ms, 10);
        assert_eq!(e.leds[0].pods[0].node, "n1");
        assert!(!e.leds[2].explained);
        assert_eq!(e.leds[2].rule, NO_REASON);
        assert!(e.leds[2].see_through);
        let text = render(&e, None, false);
        assert!(
            text.contains("prod/api: failed, CrashLoopBackOff, 4 restarts"),
            "{text}"
        );
        assert!(text.contains(NO_REASON), "{text}");
        let one = render(&e, Some(1), true);
        assert!(one.contains("LED 1") && !one.contains("LED 0"), "{one}");
        let round: Explanation =
            serde_json::from_str(&serde_json::to_string(&e).expect("json")).expect("reads back");
        assert_eq!(round, e);
    }

    #[test]
    fn a_silence_and_a_remote_text_are_shown_stripped() {
        let snapshot = snapshot();
        let frame = Frame {
            leds: vec![Rgb::new(1, 1, 1)],
            reasons: vec![LedReason {
                leds: vec![0],
                rule: "acknowledged".into(),
                pods: vec![1],
                ..LedReason::default()
            }],
            ..Frame::default()
        };
        let policy = PolicyName {
            name: "p",
            sha256: "",
        };
        let mut e = explain(&snapshot, &frame, &frame.leds, &policy);
        assert_eq!(
            e.leds[0].pods[0].silence.as_ref().map(|s| s.by.as_str()),
            Some("alice")
        );
        let text = render(&e, None, false);
        assert!(text.contains("silenced by alice until"), "{text}");
        e.leds[0].rule = "\u{1b}[2Jevil".into();
        assert!(!render(&e, None, false).contains("\u{1b}[2J"));
    }
}
