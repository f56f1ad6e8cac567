//! Alerts as policy input: the active alerts about the node (in cluster scope, about
//! every node) read from Alertmanager's API v2 ([`poll`]), bounded and sanitised
//! ([`parse`]), and joined to the pod snapshots ([`with_alerts`]) that policies see
//! through contract 0.4's `alerts()`.

mod parse;
mod poll;

pub use parse::{MAX_ALERTS, MAX_LABELS, NodeLabel, ParsedAlerts, parse_alerts};
pub use poll::{
    AlertFeed, AlertmanagerAuth, AlertmanagerOptions, AlertsError, AlertsReport, AlertsStatus,
    MAX_ALERTS_BYTES,
};

use std::sync::Arc;

use tokio::sync::watch;

use crate::state::{Alert, Snapshot};

/// The snapshot with the alerts about its node (or, in cluster scope, its nodes); the
/// same `Arc` when that changes nothing, so a node without alerts costs no copy.
pub fn join(snapshot: &Arc<Snapshot>, alerts: &[Alert]) -> Arc<Snapshot> {
    let about: Vec<Alert> = if snapshot.scope.is_node() {
        alerts
            .iter()
            .filter(|a| a.node == snapshot.node.name)
            .cloned()
            .collect()
    } else {
        alerts
            .iter()
            .filter(|a| {
                snapshot
                    .nodes
                    .binary_search_by(|n| n.node.name.as_str().cmp(&a.node))
                    .is_ok()
            })
            .cloned()
            .collect()
    };
    if about == snapshot.alerts {
        return Arc::clone(snapshot);
    }
    Arc::new((**snapshot).clone().with_alerts(about))
}

/// Snapshots with alerts: each pod snapshot or alert change gives a new one. The
/// task ends when the pod snapshots end or nobody reads the result.
pub fn with_alerts(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut alerts: watch::Receiver<Arc<Vec<Alert>>>,
) -> (watch::Receiver<Arc<Snapshot>>, tokio::task::JoinHandle<()>) {
    let first = join(&snapshots.borrow_and_update(), &alerts.borrow_and_update());
    let (sender, joined) = watch::channel(first);
    let task = tokio::spawn(async move {
        let mut alerts_open = true;
        loop {
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return },
                changed = alerts.changed(), if alerts_open => alerts_open = changed.is_ok(),
                () = sender.closed() => return,
            }
            let snapshot = join(&snapshots.borrow_and_update(), &alerts.borrow_and_update());
            sender.send_replace(snapshot);
        }
    });
    (joined, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{NodeInfo, NodeSummary};

    fn alert(node: &str, name: &str) -> Alert {
        Alert {
            name: name.into(),
            node: node.into(),
            ..Alert::default()
        }
    }

    #[test]
    fn a_node_sees_its_own_alerts_and_the_cluster_its_nodes() {
        let node = Arc::new(Snapshot::new(
            NodeInfo {
                name: "n1".into(),
                ..NodeInfo::default()
            },
            Vec::new(),
            1,
        ));
        let alerts = [alert("n2", "B"), alert("n1", "A"), alert("gone", "C")];
        let joined = join(&node, &alerts);
        assert_eq!(joined.alerts, [alert("n1", "A")]);
        // Nothing about the node: the same snapshot, not a copy.
        assert!(Arc::ptr_eq(&join(&node, &alerts[..1]), &node));
        let summary = |name: &str| NodeSummary {
            node: NodeInfo {
                name: name.into(),
                ..NodeInfo::default()
            },
            ..NodeSummary::default()
        };
        let cluster = Arc::new(Snapshot::cluster(
            vec![summary("n2"), summary("n1")],
            Vec::new(),
            1,
        ));
        let names: Vec<_> = join(&cluster, &alerts)
            .alerts
            .iter()
            .map(|a| a.name.clone())
            .collect();
        assert_eq!(names, ["A", "B"]);
    }
}
