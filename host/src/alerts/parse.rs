//! Alertmanager's API v2 answer (`GET /api/v2/alerts`, a JSON array of
//! `gettableAlert`) read into the snapshot's [`Alert`]s: only what a policy sees,
//! every text bounded and stripped of control characters, resolved alerts dropped.
//! Pure: the poller hands it the bytes it read.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::policy::untrusted::sanitize;
use crate::state::{Alert, AlertState};

/// Most alerts a snapshot carries; more are counted and dropped (by node, then name).
pub const MAX_ALERTS: usize = 512;
/// Most labels kept per alert (the contract's bound).
pub const MAX_LABELS: usize = 32;
/// Characters kept of an alert's name, a label's name and value, and its summary.
const MAX_NAME: usize = 200;
const MAX_LABEL_NAME: usize = 100;
const MAX_LABEL_VALUE: usize = 200;
const MAX_SEVERITY: usize = 40;
const MAX_SUMMARY: usize = 300;

/// The label that names the node an alert is about (`node`, `instance`,
/// `kubernetes_node`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLabel(pub String);

impl NodeLabel {
    /// The node a label value names: the value, or its host when it is `host:port`
    /// (node exporter's `instance`).
    pub fn node_of(value: &str) -> &str {
        match value.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                host
            }
            _ => value,
        }
    }

    /// Alertmanager's `filter` matcher for alerts about `node`, or about any node. A
    /// node name is a DNS subdomain; one that is not gets the any-node filter, and the
    /// alerts are matched here.
    pub fn filter(&self, node: Option<&str>) -> String {
        let label = &self.0;
        match node.filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }) {
            // `.` in the name matches any character: the exact check is `node_of`.
            Some(node) => format!("{label}=~\"{node}(:[0-9]+)?\""),
            None => format!("{label}=~\".+\""),
        }
    }
}

/// Alerts read from one answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedAlerts {
    /// About `node` (or, without one, about any node), ordered by node then name.
    pub alerts: Vec<Alert>,
    /// Alerts past [`MAX_ALERTS`], not kept.
    pub dropped: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Gettable {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
    #[serde(default)]
    status: GettableStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GettableStatus {
    #[serde(default)]
    silenced_by: Vec<String>,
    #[serde(default)]
    inhibited_by: Vec<String>,
    /// Muted by a time interval (Alertmanager 0.27 and later): silenced by the clock.
    #[serde(default)]
    muted_by: Vec<String>,
}

/// Milliseconds since the Unix epoch of an RFC 3339 time; none when it is not one.
fn epoch_ms(text: &str) -> Option<u64> {
    let timestamp: jiff::Timestamp = text.parse().ok()?;
    u64::try_from(timestamp.as_millisecond()).ok()
}

/// Reads Alertmanager's answer: the alerts whose `label` names `node` (any node
/// without one) and that have not ended by `now_ms`.
pub fn parse_alerts(
    body: &[u8],
    label: &NodeLabel,
    node: Option<&str>,
    now_ms: u64,
) -> Result<ParsedAlerts, String> {
    let gettable: Vec<Gettable> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut alerts: Vec<Alert> = gettable
        .into_iter()
        .filter_map(|g| {
            let value = g.labels.get(&label.0)?;
            let about = NodeLabel::node_of(value);
            if node.is_some_and(|n| n != about) {
                return None;
            }
            let ends_at_ms = epoch_ms(&g.ends_at).unwrap_or(0);
            // Alertmanager keeps a resolved alert until it is collected.
            if ends_at_ms != 0 && ends_at_ms <= now_ms {
                return None;
            }
            Some(alert_of(&g, about, ends_at_ms))
        })
        .collect();
    alerts.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
    let dropped = alerts.len().saturating_sub(MAX_ALERTS);
    alerts.truncate(MAX_ALERTS);
    Ok(ParsedAlerts { alerts, dropped })
}

fn alert_of(g: &Gettable, node: &str, ends_at_ms: u64) -> Alert {
    let state = if !g.status.silenced_by.is_empty() || !g.status.muted_by.is_empty() {
        AlertState::Silenced
    } else if !g.status.inhibited_by.is_empty() {
        AlertState::Inhibited
    } else {
        AlertState::Firing
    };
    let text = |key: &str, max: usize| {
        g.labels
            .get(key)
            .map_or(String::new(), |v| sanitize(v, max))
    };
    let summary = g
        .annotations
        .get("summary")
        .or_else(|| g.annotations.get("description"))
        .map_or(String::new(), |s| sanitize(s, MAX_SUMMARY));
    Alert {
        name: text("alertname", MAX_NAME),
        severity: text("severity", MAX_SEVERITY),
        state,
        starts_at_ms: epoch_ms(&g.starts_at).unwrap_or(0),
        ends_at_ms,
        node: sanitize(node, MAX_LABEL_VALUE),
        labels: g
            .labels
            .iter()
            .take(MAX_LABELS)
            .map(|(k, v)| (sanitize(k, MAX_LABEL_NAME), sanitize(v, MAX_LABEL_VALUE)))
            .collect(),
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_780_000_000_000;

    fn answer(alerts: &[serde_json::Value]) -> Vec<u8> {
        serde_json::to_vec(alerts).unwrap_or_default()
    }

    fn alert(labels: serde_json::Value, silenced: bool, ends_at: &str) -> serde_json::Value {
        let (state, silenced_by) = if silenced {
            ("suppressed", vec!["s1"])
        } else {
            ("active", Vec::new())
        };
        serde_json::json!({
            "labels": labels,
            "annotations": {"summary": "disk \u{1b}[2J almost full"},
            "startsAt": "2026-05-28T20:00:00Z",
            "endsAt": ends_at,
            "fingerprint": "abc",
            "receivers": [{"name": "null"}],
            "updatedAt": "2026-05-28T20:00:00Z",
            "status": {"state": state, "silencedBy": silenced_by, "inhibitedBy": []},
        })
    }

    #[test]
    fn keeps_the_nodes_unended_alerts_bounded_and_stripped() {
        let label = NodeLabel("instance".into());
        let later = "2026-05-28T22:00:00Z";
        let body = answer(&[
            alert(
                serde_json::json!({"alertname": "DiskFull", "severity": "critical", "instance": "n1:9100"}),
                false,
                later,
            ),
            alert(
                serde_json::json!({"alertname": "Quiet", "instance": "n1"}),
                true,
                later,
            ),
            alert(
                serde_json::json!({"alertname": "Other", "instance": "n2:9100"}),
                false,
                later,
            ),
            alert(
                serde_json::json!({"alertname": "Over", "instance": "n1"}),
                false,
                "2026-05-28T19:00:00Z",
            ),
            alert(serde_json::json!({"alertname": "NoNode"}), false, later),
        ]);
        let parsed = parse_alerts(&body, &label, Some("n1"), NOW).unwrap_or_default();
        let names: Vec<_> = parsed.alerts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["DiskFull", "Quiet"]);
        let disk = &parsed.alerts[0];
        assert_eq!(
            (disk.severity.as_str(), disk.state, disk.node.as_str()),
            ("critical", AlertState::Firing, "n1")
        );
        assert!(!disk.summary.contains('\u{1b}'), "{}", disk.summary);
        assert_eq!(parsed.alerts[1].state, AlertState::Silenced);
        let everywhere = parse_alerts(&body, &label, None, NOW).unwrap_or_default();
        assert_eq!(everywhere.alerts.len(), 3);
        assert!(parse_alerts(b"{\"not\": 1}", &label, None, NOW).is_err());
    }

    #[test]
    fn many_labels_and_alerts_are_cut_to_their_bounds() {
        let label = NodeLabel("node".into());
        let mut labels = serde_json::Map::new();
        labels.insert("node".into(), "n1".into());
        for i in 0..100 {
            labels.insert(format!("l{i:03}"), "x".repeat(5_000).into());
        }
        let one = alert(serde_json::Value::Object(labels), false, "");
        let body = answer(&vec![one; MAX_ALERTS + 7]);
        let parsed = parse_alerts(&body, &label, Some("n1"), NOW).unwrap_or_default();
        assert_eq!((parsed.alerts.len(), parsed.dropped), (MAX_ALERTS, 7));
        let first = &parsed.alerts[0];
        assert_eq!(first.labels.len(), MAX_LABELS);
        assert!(first.labels.values().all(|v| v.chars().count() < 260));
    }

    #[test]
    fn the_filter_names_the_node_or_any() {
        let label = NodeLabel("node".into());
        assert_eq!(label.filter(Some("n-1.lab")), "node=~\"n-1.lab(:[0-9]+)?\"");
        assert_eq!(label.filter(Some("bad\"name")), "node=~\".+\"");
        assert_eq!(label.filter(None), "node=~\".+\"");
        assert_eq!(NodeLabel::node_of("10.0.0.1:9100"), "10.0.0.1");
        assert_eq!(NodeLabel::node_of("n1"), "n1");
        assert_eq!(NodeLabel::node_of("n1:"), "n1:");
    }
}
