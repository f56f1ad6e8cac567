//! What each node's agent runs, as it reports it, and whether a policy has reached
//! every node: the pure core behind the per-node status objects, `podlight status`
//! and `podlight status --wait` (what `kubectl rollout status` is for a Deployment).
//! Times are wall-clock milliseconds since the Unix epoch, passed in.

use serde::{Deserialize, Serialize};

use crate::policy::untrusted::{MAX_PLUGIN_TEXT, sanitize};

/// One agent's account of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    pub node: String,
    /// The agent's pod, when it runs in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub policy: ActivePolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload: Option<ReloadOutcome>,
    pub device: DeviceReport,
    /// The agent's version.
    #[serde(default)]
    pub version: String,
}

/// The policy the agent runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivePolicy {
    pub name: String,
    /// Of the component (after decompressing a `.wasm.gz`).
    pub sha256: String,
    /// Of the file as delivered, when it differs from `sha256` (a `.wasm.gz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_sha256: Option<String>,
    /// `builtin`, a file path, or the ConfigMap and key.
    pub origin: String,
    /// When it became active.
    pub since_ms: u64,
}

/// How the last reload attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadOutcome {
    pub at_ms: u64,
    pub ok: bool,
    /// The sha256 of the plugin file it tried (or of the layer it pulled; none for the
    /// built-in policy or an unreadable directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_sha256: Option<String>,
    /// The sha256 of the component inside, when it differs from the file's (a
    /// `.wasm.gz`): a refusal is found by either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReloadOutcome {
    /// Whether this attempt was at the policy with `sha256` (of its file or component).
    pub fn tried(&self, sha256: &str) -> bool {
        let wanted = sha256.trim().to_ascii_lowercase();
        self.file_sha256.as_deref() == Some(wanted.as_str())
            || self.sha256.as_deref() == Some(wanted.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceReport {
    /// Sticks connected.
    pub connected: usize,
    pub leds: usize,
}

/// A report as read back from the cluster, with its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub report: NodeReport,
    /// When the agent last renewed it.
    pub renewed_ms: u64,
    /// How long a report stays fresh without renewal.
    pub valid_for_ms: u64,
}

impl Published {
    /// Renewed within its validity.
    pub fn fresh(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.renewed_ms) <= self.valid_for_ms
    }
}

impl ActivePolicy {
    /// Whether this is the policy with `sha256` (of the component or of its file).
    pub fn is(&self, sha256: &str) -> bool {
        let wanted = sha256.trim().to_ascii_lowercase();
        self.sha256 == wanted || self.file_sha256.as_deref() == Some(wanted.as_str())
    }
}

impl NodeReport {
    /// The report as safe to show: it was read from the cluster, where anyone allowed
    /// to write the agents' Leases could have written it, and its errors quote plugins.
    pub fn sanitized(self) -> NodeReport {
        let clean = |text: String| sanitize(&text, MAX_PLUGIN_TEXT);
        let clean_opt = |text: Option<String>| text.map(clean);
        NodeReport {
            node: clean(self.node),
            pod: clean_opt(self.pod),
            policy: ActivePolicy {
                name: clean(self.policy.name),
                sha256: clean(self.policy.sha256),
                file_sha256: clean_opt(self.policy.file_sha256),
                origin: clean(self.policy.origin),
                since_ms: self.policy.since_ms,
            },
            last_reload: self.last_reload.map(|r| ReloadOutcome {
                file_sha256: clean_opt(r.file_sha256),
                sha256: clean_opt(r.sha256),
                error: clean_opt(r.error),
                ..r
            }),
            device: self.device,
            version: clean(self.version),
        }
    }
}

/// Where one node stands with a wanted policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeVerdict {
    Runs,
    /// The agent tried it and kept its last good policy: the error.
    Refused(String),
    /// Not yet: what it runs instead.
    Pending(String),
    /// No heartbeat within the report's validity.
    Silent {
        for_ms: u64,
    },
}

pub fn node_verdict(published: &Published, sha256: &str, now_ms: u64) -> NodeVerdict {
    let report = &published.report;
    if !published.fresh(now_ms) {
        return NodeVerdict::Silent {
            for_ms: now_ms.saturating_sub(published.renewed_ms),
        };
    }
    if report.policy.is(sha256) {
        return NodeVerdict::Runs;
    }
    if let Some(reload) = &report.last_reload
        && !reload.ok
        && reload.tried(sha256)
    {
        return NodeVerdict::Refused(reload.error.clone().unwrap_or_default());
    }
    NodeVerdict::Pending(format!(
        "runs {} ({})",
        short_sha(&report.policy.sha256),
        report.policy.name
    ))
}

/// The agents the cluster's podlight workloads should run, as read from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub agents: Vec<ExpectedAgent>,
    /// Workloads short of pods, in words ("daemonset podlight should run on 4 nodes
    /// but has pods on 3").
    pub shortfall: Vec<String>,
}

/// One agent that should be running: its node, its pod and the pod's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedAgent {
    pub node: String,
    pub pod: String,
    /// `Running`, `Pending (ImagePullBackOff)`, …
    pub state: String,
}

/// The rollout of one policy over every reporting node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every node runs it.
    Complete { nodes: usize },
    /// At least one node refused it: no point waiting.
    Refused(Vec<(String, String)>),
    /// Still waiting for these nodes (none reported at all: empty).
    InProgress(Vec<(String, String)>),
}

/// Where `sha256` stands on every node that reports and, with `expected`, on every
/// node that should run an agent — one that never reported is waited for, named with
/// its pod's state, and so is a workload short of pods.
pub fn rollout(
    published: &[Published],
    expected: Option<&Expected>,
    sha256: &str,
    now_ms: u64,
) -> Rollout {
    let mut refused = Vec::new();
    let mut waiting = Vec::new();
    for agent in expected.map(|e| e.agents.as_slice()).unwrap_or_default() {
        if !published.iter().any(|p| p.report.node == agent.node) {
            waiting.push((
                agent.node.clone(),
                format!(
                    "no report yet; its pod {} is {}",
                    sanitize(&agent.pod, 253),
                    sanitize(&agent.state, 120)
                ),
            ));
        }
    }
    for shortfall in expected.map(|e| e.shortfall.as_slice()).unwrap_or_default() {
        waiting.push(("(unscheduled)".to_string(), shortfall.clone()));
    }
    for entry in published {
        let node = entry.report.node.clone();
        match node_verdict(entry, sha256, now_ms) {
            NodeVerdict::Runs => {}
            NodeVerdict::Refused(error) => refused.push((node, error)),
            NodeVerdict::Pending(what) => waiting.push((node, what)),
            NodeVerdict::Silent { for_ms } => waiting.push((
                node,
                format!(
                    "no report for {} (is its agent running?)",
                    human_age(for_ms)
                ),
            )),
        }
    }
    if !refused.is_empty() {
        Rollout::Refused(refused)
    } else if waiting.is_empty() && !published.is_empty() {
        Rollout::Complete {
            nodes: published.len(),
        }
    } else {
        Rollout::InProgress(waiting)
    }
}

/// The first 12 hex digits, as people compare them.
pub fn short_sha(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// `42s`, `5m`, `3h`, `2d`.
pub fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// The table `podlight status` prints: a row per node, then each node's last error.
pub fn table(published: &[Published], now_ms: u64) -> String {
    let header = [
        "NODE",
        "POLICY",
        "SHA256",
        "SINCE",
        "LAST RELOAD",
        "STICKS",
        "LEDS",
        "REPORTED",
    ];
    let mut rows: Vec<[String; 8]> = vec![header.map(str::to_string)];
    let mut errors = Vec::new();
    for entry in published {
        let report = &entry.report;
        let age = |ms: u64| human_age(now_ms.saturating_sub(ms));
        let reload = match &report.last_reload {
            None => "-".to_string(),
            Some(r) if r.ok => format!("ok {} ago", age(r.at_ms)),
            Some(r) => {
                errors.push(format!(
                    "{}: the last reload failed {} ago: {}",
                    report.node,
                    age(r.at_ms),
                    r.error.as_deref().unwrap_or("(no message)")
                ));
                format!("FAILED {} ago", age(r.at_ms))
            }
        };
        let reported = if entry.fresh(now_ms) {
            format!("{} ago", age(entry.renewed_ms))
        } else {
            format!("SILENT {}", age(entry.renewed_ms))
        };
        rows.push([
            report.node.clone(),
            report.policy.name.clone(),
            short_sha(&report.policy.sha256).to_string(),
            age(report.policy.since_ms),
            reload,
            report.device.connected.to_string(),
            report.device.leds.to_string(),
            reported,
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for error in errors {
        out.push_str(&error);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    const NOW: u64 = 1_000_000;

    fn published(node: &str, sha: &str, reload: Option<ReloadOutcome>) -> Published {
        Published {
            report: NodeReport {
                node: node.into(),
                policy: ActivePolicy {
                    name: "priority".into(),
                    sha256: sha.into(),
                    origin: "builtin".into(),
                    since_ms: NOW - 5_000,
                    ..ActivePolicy::default()
                },
                last_reload: reload,
                ..NodeReport::default()
            },
            renewed_ms: NOW - 1_000,
            valid_for_ms: 60_000,
        }
    }

    fn failed(sha: &str) -> Option<ReloadOutcome> {
        Some(ReloadOutcome {
            at_ms: NOW - 2_000,
            ok: false,
            file_sha256: Some(sha.into()),
            sha256: None,
            error: Some("not a component".into()),
        })
    }

    #[test]
    fn complete_only_when_every_node_runs_it() {
        let all = [published("a", A, None), published("b", A, None)];
        assert_eq!(rollout(&all, None, A, NOW), Rollout::Complete { nodes: 2 });
        let upper = A.to_ascii_uppercase();
        assert_eq!(
            rollout(&all, None, &upper, NOW),
            Rollout::Complete { nodes: 2 }
        );
        let mixed = [published("a", A, None), published("b", B, None)];
        assert_eq!(
            rollout(&mixed, None, A, NOW),
            Rollout::InProgress(vec![("b".into(), "runs bbbbbbbbbbbb (priority)".into())])
        );
        assert_eq!(rollout(&[], None, A, NOW), Rollout::InProgress(vec![]));
    }

    #[test]
    fn a_refusal_of_the_wanted_policy_ends_the_wait_naming_the_node() {
        let all = [published("a", A, None), published("b", B, failed(A))];
        assert_eq!(
            rollout(&all, None, A, NOW),
            Rollout::Refused(vec![("b".into(), "not a component".into())])
        );
        // A refusal of some other policy is not a refusal of this one.
        let other = [published("a", A, None), published("b", B, failed(B))];
        assert!(matches!(
            rollout(&other, None, A, NOW),
            Rollout::InProgress(_)
        ));
    }

    #[test]
    fn a_node_that_should_run_an_agent_but_never_reported_is_waited_for() {
        let all = [published("a", A, None), published("b", A, None)];
        let expected = Expected {
            agents: ["a", "b", "c"]
                .map(|node| ExpectedAgent {
                    node: node.into(),
                    pod: format!("podlight-{node}"),
                    state: if node == "c" {
                        "Pending (ImagePullBackOff)".into()
                    } else {
                        "Running".into()
                    },
                })
                .to_vec(),
            shortfall: vec![],
        };
        assert_eq!(
            rollout(&all, Some(&expected), A, NOW),
            Rollout::InProgress(vec![(
                "c".into(),
                "no report yet; its pod podlight-c is Pending (ImagePullBackOff)".into()
            )])
        );
        let short = Expected {
            agents: vec![],
            shortfall: vec!["daemonset podlight should run on 3 nodes but has pods on 2".into()],
        };
        assert!(matches!(
            rollout(&all, Some(&short), A, NOW),
            Rollout::InProgress(waiting) if waiting.len() == 1
        ));
        assert_eq!(
            rollout(&all, Some(&Expected::default()), A, NOW),
            Rollout::Complete { nodes: 2 }
        );
    }

    #[test]
    fn a_compressed_plugins_refusal_is_found_by_the_components_sha256_too() {
        let refused = Some(ReloadOutcome {
            sha256: Some(A.into()),
            ..failed(B).expect("an outcome")
        });
        let all = [published("a", C, refused)];
        assert!(matches!(rollout(&all, None, A, NOW), Rollout::Refused(_)));
        assert!(matches!(rollout(&all, None, B, NOW), Rollout::Refused(_)));
    }

    #[test]
    fn a_silent_node_is_waited_for_not_counted() {
        let mut silent = published("b", A, None);
        silent.renewed_ms = NOW - 120_000;
        let all = [published("a", A, None), silent];
        assert_eq!(
            rollout(&all, None, A, NOW),
            Rollout::InProgress(vec![(
                "b".into(),
                "no report for 2m (is its agent running?)".into()
            )])
        );
    }

    #[test]
    fn a_compressed_plugin_is_known_by_its_file_too() {
        let mut gz = published("a", A, None);
        gz.report.policy.file_sha256 = Some(B.into());
        assert_eq!(node_verdict(&gz, B, NOW), NodeVerdict::Runs);
        assert_eq!(node_verdict(&gz, A, NOW), NodeVerdict::Runs);
    }

    #[test]
    fn the_table_has_a_row_per_node_and_lists_errors() {
        let all = [
            published("node-a", A, None),
            published("node-b", B, failed(A)),
        ];
        let text = table(&all, NOW);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NODE"), "{text}");
        assert!(
            lines[1].starts_with("node-a  priority  aaaaaaaaaaaa  5s"),
            "{text}"
        );
        assert!(lines[2].contains("FAILED 2s ago"), "{text}");
        assert_eq!(
            lines[3],
            "node-b: the last reload failed 2s ago: not a component"
        );
    }

    #[test]
    fn reports_read_back_are_made_safe_to_show() {
        let mut entry = published("node-a\u{1b}[2J", A, failed(A));
        entry.report.last_reload = entry.report.last_reload.map(|r| ReloadOutcome {
            error: Some(format!("bad\nforged line{}", "x".repeat(5000))),
            ..r
        });
        let report = entry.report.sanitized();
        assert_eq!(report.node, "node-a\\u{1b}[2J");
        let error = report.last_reload.and_then(|r| r.error).unwrap_or_default();
        assert!(!error.contains('\n') && error.len() < 1200, "{error}");
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_age(42_000), "42s");
        assert_eq!(human_age(300_000), "5m");
        assert_eq!(human_age(3 * 3_600_000), "3h");
        assert_eq!(human_age(2 * 86_400_000), "2d");
    }
}
