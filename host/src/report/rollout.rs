//! Whether a policy has reached every node: the pure core of `podlight status
//! --wait` (what `kubectl rollout status` is for a Deployment).

use super::Published;
use crate::policy::untrusted::sanitize;

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
    // With layers, the policy may be any layer's.
    if report.policies().any(|(policy, _)| policy.is(sha256)) {
        return NodeVerdict::Runs;
    }
    if let Some(reload) = report
        .policies()
        .filter_map(|(_, reload)| reload)
        .find(|reload| !reload.ok && reload.tried(sha256))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ActivePolicy, NodeReport, ReloadOutcome};

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
    fn ages_read_like_kubectl() {
        assert_eq!(human_age(42_000), "42s");
        assert_eq!(human_age(300_000), "5m");
        assert_eq!(human_age(3 * 3_600_000), "3h");
        assert_eq!(human_age(2 * 86_400_000), "2d");
    }
}
