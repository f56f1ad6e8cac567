//! `podlight snapshot`: the node's current state as the JSON `podlight eval` reads.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use super::args::ClusterArgs;
use podlight::cluster::{ClusterError, StateWatch};

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
        let watch = synced_watch(&args.cluster, Duration::from_secs(args.timeout)).await?;
        let snapshot = watch.snapshots().borrow().clone();
        outln!("{}", snapshot.to_json_pretty())?;
        Ok(())
    })
}

/// A watch of the node's pods that has listed them, or why not: wrong credentials,
/// missing permissions, a closed port or an unknown node said at once, not after the
/// watch has retried until the timeout.
pub async fn synced_watch(cluster: &ClusterArgs, timeout: Duration) -> Result<StateWatch> {
    let (node, connection) = cluster.connect().await?;
    cluster.check(&node, &connection, timeout).await?;
    let watch = cluster.watch(node, &connection);
    if !watch.wait_synced(timeout).await {
        let errors = watch.status().watch_errors();
        bail!(ClusterError::Unreachable {
            url: connection.url,
            seconds: timeout.as_secs(),
            reason: format!(
                "{errors} failed attempts to list pods and the node (see the log above)"
            ),
        });
    }
    Ok(watch)
}
