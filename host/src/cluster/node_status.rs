//! Publishing and reading the agents' reports (their schema and Lease encoding are
//! [`report`](crate::report)'s): one server-side apply per change, a list to read them.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

use super::ClusterError;
use crate::report::{NodeReport, Published, STATUS_SELECTOR, lease_name, lease_of, published_of};

/// The report Leases of one namespace.
#[derive(Clone)]
pub struct ReportLeases {
    leases: Api<Lease>,
    nodes: Api<Node>,
    namespace: String,
    url: String,
}

impl ReportLeases {
    /// The reports in `namespace` of the API server at `url` (for messages).
    pub fn new(client: kube::Client, url: &str, namespace: &str) -> ReportLeases {
        ReportLeases {
            leases: Api::namespaced(client.clone(), namespace),
            nodes: Api::all(client),
            namespace: namespace.to_string(),
            url: url.to_string(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A failed request of these, said the way people can act on.
    pub fn error(&self, error: kube::Error) -> ClusterError {
        ClusterError::of_request(self.url.clone(), error)
    }

    /// Creates or replaces the node's report (server-side apply: one request).
    pub async fn publish(
        &self,
        report: &NodeReport,
        now_ms: u64,
        node_uid: Option<&str>,
    ) -> Result<(), kube::Error> {
        let lease = lease_of(report, now_ms, node_uid);
        let params = PatchParams::apply("podlight").force();
        self.leases
            .patch(&lease_name(&report.node), &params, &Patch::Apply(&lease))
            .await?;
        Ok(())
    }

    /// The node's UID, for owning its report; none when the node is not there (yet).
    pub async fn node_uid(&self, node: &str) -> Result<Option<String>, kube::Error> {
        Ok(self.nodes.get_opt(node).await?.and_then(|n| n.metadata.uid))
    }

    /// Removes the node's report (an agent that stops cleanly).
    pub async fn remove(&self, node: &str) -> Result<(), kube::Error> {
        match self
            .leases
            .delete(&lease_name(node), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Every node's report, by node name.
    pub async fn list(&self) -> Result<Vec<Published>, kube::Error> {
        let leases = self
            .leases
            .list(&ListParams::default().labels(STATUS_SELECTOR))
            .await?;
        let mut published: Vec<Published> = leases.items.iter().filter_map(published_of).collect();
        published.sort_by(|a, b| a.report.node.cmp(&b.report.node));
        Ok(published)
    }
}
