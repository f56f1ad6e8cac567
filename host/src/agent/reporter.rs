//! Publishes the agent's report of itself (policy, last reload, sticks) to its node's
//! Lease, so `podlight status` can show every node and `status --wait` can tell when a
//! policy has reached them all. A change is published within a quarter second (one
//! server-side apply); the Lease is renewed every [`RENEW_EVERY`] so a silent agent
//! shows. Publishing never holds up the agent: failures are logged (once per distinct
//! error) and retried.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::AgentStatus;
use crate::cluster::ReportLeases;
use crate::report::{NodeReport, REPORT_VALID_SECONDS, lease_name};
use crate::state::wall_clock_ms;

/// A third of the report's validity: two renewals may fail before it goes stale.
const RENEW_EVERY: Duration = Duration::from_secs(REPORT_VALID_SECONDS.unsigned_abs() as u64 / 3);
/// Changes closer together than this are published as one.
const COALESCE: Duration = Duration::from_millis(250);
const RETRY_AFTER: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the reports go.
pub struct StatusReporter {
    pub leases: ReportLeases,
    /// The agent's pod, when it runs in one.
    pub pod: Option<String>,
}

/// How publishing goes, for the status page.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Publishing {
    /// `namespace/lease`.
    pub lease: String,
    pub published_ms: Option<u64>,
    pub error: Option<String>,
}

pub(super) async fn run(
    reporter: StatusReporter,
    status: Arc<AgentStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = status.changes.subscribe();
    let mut last: Option<NodeReport> = None;
    let mut node_uid: Option<String> = None;
    let mut next_publish = Instant::now();
    loop {
        tokio::select! {
            // (The `Ref` that `wait_for` returns must not live across the arms' awaits.)
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                tokio::time::sleep(COALESCE).await;
                changes.borrow_and_update();
            }
            () = tokio::time::sleep_until(next_publish) => {}
        }
        let report = status.report(reporter.pod.as_deref());
        let due = Instant::now() >= next_publish;
        if !due && last.as_ref() == Some(&report) {
            continue;
        }
        if node_uid.is_none() {
            // Owned by its node, the report goes when the node does; without the UID
            // (node not there yet) it is published unowned and owned later.
            node_uid = reporter.leases.node_uid(&report.node).await.ok().flatten();
        }
        let published = tokio::time::timeout(
            REQUEST_TIMEOUT,
            reporter
                .leases
                .publish(&report, wall_clock_ms(), node_uid.as_deref()),
        )
        .await;
        let lease = format!(
            "{}/{}",
            reporter.leases.namespace(),
            lease_name(&report.node)
        );
        let previous = status.publishing();
        let outcome = match published {
            Ok(Ok(())) => {
                if previous.as_ref().is_some_and(|p| p.error.is_some()) {
                    tracing::info!(%lease, "publishing this node's status works again");
                }
                last = Some(report);
                next_publish = Instant::now() + RENEW_EVERY;
                Publishing {
                    lease,
                    published_ms: Some(wall_clock_ms()),
                    error: None,
                }
            }
            failed => {
                let error = match failed {
                    Ok(Err(error)) => reporter.leases.error(error).to_string(),
                    _ => format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
                };
                if previous.as_ref().and_then(|p| p.error.as_ref()) != Some(&error) {
                    tracing::warn!(%lease, %error, "cannot publish this node's status; retrying (the lights are not affected)");
                }
                next_publish = Instant::now() + RETRY_AFTER;
                Publishing {
                    lease,
                    published_ms: previous.and_then(|p| p.published_ms),
                    error: Some(error),
                }
            }
        };
        status.set_publishing(outcome);
    }
    // Stopping cleanly: the node no longer reports, rather than going silent.
    if let Some(report) = last {
        let removed =
            tokio::time::timeout(Duration::from_secs(2), reporter.leases.remove(&report.node))
                .await;
        if !matches!(removed, Ok(Ok(()))) {
            tracing::warn!(
                "cannot remove this node's status Lease; it goes stale in {REPORT_VALID_SECONDS} s"
            );
        }
    }
}
