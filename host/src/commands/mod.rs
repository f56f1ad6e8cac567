/// `println!` that returns the write's error instead of panicking, so that a closed
/// pipe (`podlight snapshot | head`) ends the command quietly (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub mod agent;
pub mod args;
pub mod cluster;
pub mod device;
pub mod policy;
pub mod status;

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result};

static JSON_LOGS: OnceLock<bool> = OnceLock::new();

/// Records the log format chosen on the command line (once, at start).
pub fn set_json_logs(json: bool) {
    let _ = JSON_LOGS.set(json);
}

/// Whether the log is JSON lines: then nothing else may write to stderr.
pub fn json_logs() -> bool {
    JSON_LOGS.get().copied().unwrap_or(false)
}

/// The async runtime every command that talks to a cluster runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Waits for SIGTERM or SIGINT (or the given time).
pub async fn wait_for_stop(stop_after: Option<Duration>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let timer = async {
        match stop_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = timer => {}
    }
    Ok(())
}
