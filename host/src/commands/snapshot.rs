//! `podlight snapshot`: the node's current state as the JSON `podlight eval` reads.

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::args::ClusterArgs;

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
        let watch = args
            .cluster
            .synced_watch(Duration::from_secs(args.timeout))
            .await?;
        let snapshot = watch.snapshots().borrow().clone();
        outln!("{}", snapshot.to_json_pretty())?;
        Ok(())
    })
}
