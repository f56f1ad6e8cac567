/// `println!` that returns the write's error instead of panicking, so that a closed
/// pipe (`podlight snapshot | head`) ends the command quietly (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub mod agent;
pub mod cluster;
pub mod device;
pub mod policy;

use std::sync::OnceLock;

static JSON_LOGS: OnceLock<bool> = OnceLock::new();

/// Records the log format chosen on the command line (once, at start).
pub fn set_json_logs(json: bool) {
    let _ = JSON_LOGS.set(json);
}

/// Whether the log is JSON lines: then nothing else may write to stderr.
pub fn json_logs() -> bool {
    JSON_LOGS.get().copied().unwrap_or(false)
}
