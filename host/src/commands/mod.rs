/// `println!` that returns the write's error instead of panicking, so that a closed
/// pipe (`podlight snapshot | head`) ends the command quietly (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` the same way.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

// Shared by the subcommands:
pub mod agent;
pub mod args;
pub mod build;
// One per subcommand (the `plugin` group in one):
pub mod demo;
pub mod devices;
pub mod emulate;
pub mod eval;
pub mod explain;
pub mod off;
pub mod plugin;
pub mod plugin_new;
pub mod plugin_oci;
pub mod record;
pub mod replay;
pub mod run;
pub mod set;
pub mod silence;
pub mod snapshot;
pub mod status;
pub mod test;

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result};

/// An exit status a command has already explained on its output: `main` exits with
/// it and prints nothing more.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

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
    stop_signal(stop_after)?.await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (or after the given time); the handlers are in place
/// when this returns, so a signal that comes before anyone waits is not lost.
pub fn stop_signal(stop_after: Option<Duration>) -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
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
    })
}
