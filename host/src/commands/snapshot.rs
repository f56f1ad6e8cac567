//! `podlight snapshot`: the node's current state as the JSON `podlight eval` reads.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use super::args::ClusterArgs;
use podlight::cluster::ClusterError;

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
            let errors = watch.status().watch_errors();
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
