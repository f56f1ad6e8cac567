//! `podlight snapshot`: the node's current state as the JSON `podlight eval` reads.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use podlight::cluster::{
    ClusterError, ConnectOptions, Connection, NodeWatch, WatchOptions, connect, node_name,
};

/// Which node and pods to watch, and how to reach the API server.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// The node to watch (default: $NODE_NAME, or $NODE_HOSTNAME).
    #[arg(long)]
    pub node: Option<String>,
    /// A kubeconfig file (default: in a pod, the in-cluster config; else $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Only pods in these namespaces (repeat or comma-separate); default: all.
    #[arg(long = "namespace", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Only pods matching this label selector, e.g. `tier=web`.
    #[arg(long)]
    pub selector: Option<String>,
}

impl ClusterArgs {
    /// The node's name and a connection to the API server (nothing sent yet).
    pub async fn connect(&self) -> Result<(String, Connection)> {
        let node = node_name(self.node.as_deref())?;
        let connection = connect(&ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        })
        .await?;
        Ok((node, connection))
    }

    /// Starts watching `node`'s pods and the node.
    pub fn watch(&self, node: String, connection: &Connection) -> NodeWatch {
        let options = WatchOptions {
            node,
            namespaces: self.namespaces.clone(),
            label_selector: self.selector.clone(),
        };
        NodeWatch::start(connection.client.clone(), options)
    }
}

#[derive(Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// How long to wait for the API server to answer and the watch to list, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

pub fn snapshot(args: SnapshotArgs) -> Result<()> {
    super::runtime()?.block_on(async {
        let timeout = Duration::from_secs(args.timeout);
        let (node, connection) = args.cluster.connect().await?;
        // Wrong credentials, missing permissions, a closed port or an unknown node:
        // said at once, not after the watch has retried until the timeout.
        connection.check_node(&node, timeout).await?;
        let watch = args.cluster.watch(node, &connection);
        if !watch.wait_synced(timeout).await {
            let errors = watch
                .status()
                .watch_errors
                .load(std::sync::atomic::Ordering::Relaxed);
            bail!(ClusterError::Unreachable {
                url: connection.url,
                seconds: args.timeout,
                reason: format!(
                    "{errors} failed attempts to list pods and the node (see the log above)"
                ),
            });
        }
        let snapshot = watch.snapshots().borrow().clone();
        outln!("{}", snapshot.to_json_pretty())?;
        Ok(())
    })
}
