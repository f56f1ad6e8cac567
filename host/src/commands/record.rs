//! `podlight record`: the node's snapshots over time, one JSON line each time the node
//! changes — a timeline for `podlight replay` and for `timeline =` in test files.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::args::ClusterArgs;

#[derive(Args)]
pub struct RecordArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The timeline file to write (JSON lines: one snapshot per change).
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many seconds (default: at Ctrl-C or SIGTERM).
    #[arg(long)]
    duration: Option<u64>,
    /// How long to wait for the API server to answer and the watch to list, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

pub fn record(args: RecordArgs) -> Result<()> {
    super::runtime()?.block_on(async {
        let watch = args
            .cluster
            .synced_watch(Duration::from_secs(args.timeout))
            .await?;
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("cannot create the timeline {}", args.out.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let mut snapshots = watch.snapshots();
        let stop = super::stop_signal(args.duration.map(Duration::from_secs))?;
        tokio::pin!(stop);
        let mut records = 0u64;
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            let line = serde_json::to_string(snapshot.as_ref())?;
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .with_context(|| format!("cannot write to the timeline {}", args.out.display()))?;
            records += 1;
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { break },
                () = &mut stop => break,
            }
        }
        eprintln!("recorded {records} snapshots to {}", args.out.display());
        Ok(())
    })
}
