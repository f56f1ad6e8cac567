//! Compiling a plugin, the one step whose cost the plugin's author controls before any
//! deadline applies: a small component can take gigabytes and minutes to compile. So
//! the agent (and the CLI) compile in a child process — this same binary, run as
//! `podlight plugin compile` — under a memory budget (`RLIMIT_DATA`), a CPU budget
//! (`RLIMIT_CPU`) and a wall-clock deadline, and load only the artifact that child
//! wrote. A plugin over a budget is refused with a message naming the budget, and the
//! agent's own memory never sees the compile.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::PolicyError;
use super::config::Backend;
use super::untrusted::{MAX_PLUGIN_TEXT, sanitize};

/// Where plugins are compiled.
#[derive(Debug, Clone, Default)]
pub enum Compiler {
    /// In this process: for library users and tests that trust their plugins.
    #[default]
    InProcess,
    /// In a child process under budgets (what the `podlight` binary uses).
    Child(ChildCompiler),
}

/// A child process that compiles: `PROGRAM plugin compile [--pulley]
/// --memory-budget-mib M --cpu-budget-seconds C IN OUT`.
#[derive(Debug, Clone)]
pub struct ChildCompiler {
    /// The `podlight` binary (normally this very process's executable).
    pub program: PathBuf,
    pub budget: CompileBudget,
}

/// What one compile may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileBudget {
    /// Heap and other private writable memory, in bytes (`RLIMIT_DATA`).
    pub memory: usize,
    /// CPU time (`RLIMIT_CPU`).
    pub cpu: Duration,
    /// Wall-clock time, after which the child is killed.
    pub wall: Duration,
}

impl Default for CompileBudget {
    /// Sized for the DaemonSet's 160 MiB memory limit, which the child shares with
    /// the agent (see deploy/base/daemonset.yaml): 96 MiB of data plus the compiler's
    /// code pages, next to the agent's 20–35 MB. Measured single-threaded compile
    /// peaks (RSS): built-in 25 MB, JavaScript example 61 MB, Go 89 MB — all fit;
    /// Python 324 MB does not and is refused with this message.
    fn default() -> Self {
        CompileBudget {
            memory: 96 << 20,
            cpu: Duration::from_secs(60),
            wall: Duration::from_secs(120),
        }
    }
}

/// Exit code of `podlight plugin compile` when the plugin is not a valid component
/// (its message is on stderr); anything else unexpected exits 1.
pub const EXIT_INVALID: i32 = 3;

impl ChildCompiler {
    /// Compiles `bytes` (a component) in the child; returns the serialized artifact.
    /// `work` is a directory for the two files exchanged with the child.
    pub fn compile(
        &self,
        backend: Backend,
        name: &str,
        bytes: &[u8],
        work: &Path,
    ) -> Result<Vec<u8>, PolicyError> {
        let io_error = |source: std::io::Error| PolicyError::Compiler {
            name: name.to_string(),
            reason: source.to_string(),
        };
        std::fs::create_dir_all(work).map_err(io_error)?;
        let stem = format!("compile-{}-{}", std::process::id(), unique());
        let input = work.join(format!("{stem}.wasm"));
        let output = work.join(format!("{stem}.cwasm"));
        let _cleanup = RemoveOnDrop(vec![input.clone(), output.clone()]);
        std::fs::write(&input, bytes).map_err(io_error)?;
        let mut command = Command::new(&self.program);
        command
            .args(["plugin", "compile", "--memory-budget-mib"])
            .arg((self.budget.memory >> 20).to_string())
            .arg("--cpu-budget-seconds")
            .arg(self.budget.cpu.as_secs().max(1).to_string());
        if backend == Backend::Pulley {
            command.arg("--pulley");
        }
        let mut child = command
            .arg(&input)
            .arg(&output)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PolicyError::Compiler {
                name: name.to_string(),
                reason: format!("cannot start {}: {e}", self.program.display()),
            })?;
        // Read stderr as it comes, so a chatty child never blocks on a full pipe.
        let stderr_reader = child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let _ = pipe.by_ref().take(64 * 1024).read_to_end(&mut kept);
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
                String::from_utf8_lossy(&kept).into_owned()
            })
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait().map_err(io_error)? {
                Some(status) => break status,
                None if started.elapsed() >= self.budget.wall => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(PolicyError::CompileBudget {
                        name: name.to_string(),
                        budget: format!(
                            "{} s wall-clock time (it was still compiling)",
                            self.budget.wall.as_secs()
                        ),
                    });
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let stderr = stderr_reader
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        if status.success() {
            return std::fs::read(&output).map_err(io_error);
        }
        use std::os::unix::process::ExitStatusExt;
        let over = |budget: String| PolicyError::CompileBudget {
            name: name.to_string(),
            budget,
        };
        let memory = format!("{} MiB of memory", self.budget.memory >> 20);
        Err(match (status.code(), status.signal()) {
            // Rust aborts when an allocation fails: the memory budget was hit.
            (_, Some(libc::SIGABRT)) | (_, Some(libc::SIGSEGV))
                if stderr.contains("memory allocation") || stderr.is_empty() =>
            {
                over(memory)
            }
            (_, Some(libc::SIGXCPU)) => {
                over(format!("{} s of CPU time", self.budget.cpu.as_secs()))
            }
            // The hard CPU limit, or the kernel's OOM killer when the container's
            // memory limit is below the budget.
            (_, Some(libc::SIGKILL)) => over(format!(
                "{} s of CPU time or the container's memory limit (it was killed)",
                self.budget.cpu.as_secs()
            )),
            (Some(EXIT_INVALID), _) => PolicyError::Invalid {
                name: name.to_string(),
                reason: sanitize(stderr.trim(), MAX_PLUGIN_TEXT),
            },
            _ if stderr.contains("memory allocation") => over(memory),
            _ => PolicyError::Compiler {
                name: name.to_string(),
                reason: format!("{status}: {}", sanitize(stderr.trim(), MAX_PLUGIN_TEXT)),
            },
        })
    }
}

/// Applies the budget to this process (the compiling child, before it reads the
/// plugin), and makes it die with its parent so no compile outlives the agent.
pub fn limit_this_process(memory: usize, cpu: Duration) -> std::io::Result<()> {
    let set = |resource, value: u64| {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: setrlimit reads a valid rlimit struct and changes only this process.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_DATA, memory as u64)?;
    // The soft limit sends SIGXCPU; the hard one a second later, SIGKILL.
    let cpu = cpu.as_secs().max(1);
    let limit = libc::rlimit {
        rlim_cur: cpu as libc::rlim_t,
        rlim_max: (cpu + 1) as libc::rlim_t,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_CPU, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and changes only this process.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}
