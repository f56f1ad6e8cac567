//! The node agent's memory: `podlight run` for a node with 110 pods on a real API
//! server, the default policy loaded from the compile cache (a second start with the
//! same `--cache-dir`). Once it has shown the pods: CPU over 30 s with nothing
//! changing, then 30 s of ordinary work (a pod's status changing every 2 s, /metrics
//! and the status page read every 5 s), then RSS (and of it, what is the process's
//! own memory and what is mapped from files: the binary, the cached policy code),
//! peak RSS and threads.
//!
//! `PODLIGHT_AGENT_BIN=path` measures that binary (e.g. the shipped static build)
//! instead of this build's; `PODLIGHT_BASELINE_BIN=path` measures that build of podlight too, in the same run
//! and the same cluster, for a before/after table. `PODLIGHT_HEAPTRACK=DIR` runs each
//! under heaptrack (Debian's `heaptrack`) and writes its profile there.
//! Run: `cargo bench -p podlight --bench node_memory`

use podlight_testsupport::cluster::{create_node, create_pod, set_status, status_for};
use podlight_testsupport::control_plane::ControlPlane;
use podlight_testsupport::http_client::{free_port, get};
use podlight_testsupport::process::cpu_ms;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// A number of /proc/PID/status (kB for sizes).
fn field(status: &str, name: &str) -> f64 {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn mib(status: &str, name: &str) -> f64 {
    field(status, name) / 1024.0
}

struct Measured {
    rss: f64,
    anon: f64,
    file: f64,
    peak: f64,
    threads: f64,
    idle_cpu_ms_per_min: f64,
}

/// One start of `binary` until it shows the node's pods, then the figures.
async fn measure(
    binary: &Path,
    plane: &ControlPlane,
    dir: &Path,
    heaptrack: Option<&Path>,
    label: &str,
) -> Measured {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "run",
        "--node",
        "mem-node",
        "--device",
        "virtual",
        "--fade-ms",
        "0",
        "--listen",
        &listen,
    ];
    let mut command = match heaptrack {
        Some(out) => {
            let mut c = Command::new("heaptrack");
            c.arg("-o").arg(out.join(label)).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let mut child = command
        .args(args)
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .arg("--policy-dir")
        .arg(dir.join("policies"))
        .arg("--cache-dir")
        .arg(dir.join(format!("cache-{label}")))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podlight run");
    let stderr = child.stderr.take().expect("stderr");
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("leds: ") && line.contains("#323200") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(300))
        .expect("the agent showed the pending pods");
    let first_frame = started.elapsed();
    // The agent's pid (heaptrack runs it as its child).
    let pid = if heaptrack.is_some() {
        let mut found = None;
        for _ in 0..50 {
            let children = std::fs::read_to_string(format!(
                "/proc/{}/task/{}/children",
                child.id(),
                child.id()
            ))
            .unwrap_or_default();
            found = children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .find(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.starts_with("podlight"))
                });
            if found.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        found.unwrap_or(child.id())
    } else {
        child.id()
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = cpu_ms(pid);
    let window = Duration::from_secs(30);
    tokio::time::sleep(window).await;
    let idle_cpu_ms_per_min = (cpu_ms(pid) - before) * 60.0 / window.as_secs_f64();
    let admin = plane.client().await;
    for tick in 0..15 {
        let state = if tick % 2 == 0 {
            "crashloop"
        } else {
            "running"
        };
        set_status(&admin, "mem", "app-0", status_for(state)).await;
        if tick % 3 == 0 {
            let _ = get(port, "/metrics");
            let _ = get(port, "/api/state");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Back to what the next start looks for: no failed pod, the rest pending.
    set_status(&admin, "mem", "app-0", status_for("running")).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let measured = Measured {
        rss: mib(&status, "VmRSS:"),
        anon: mib(&status, "RssAnon:"),
        file: mib(&status, "RssFile:") + mib(&status, "RssShmem:"),
        peak: mib(&status, "VmHWM:"),
        threads: field(&status, "Threads:"),
        idle_cpu_ms_per_min,
    };
    if std::env::var_os("PODLIGHT_SMAPS").is_some() {
        print_largest_mappings(pid);
    }
    // SIGTERM, so that heaptrack writes its profile.
    // SAFETY: kill only sends a signal to a child this function started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    println!(
        "{label}: first frame {:.1} s; RSS {:.1} MiB (own {:.1}, mapped files {:.1}), peak {:.1} MiB, {} threads, idle {:.0} ms of CPU per minute",
        first_frame.as_secs_f64(),
        measured.rss,
        measured.anon,
        measured.file,
        measured.peak,
        measured.threads,
        measured.idle_cpu_ms_per_min
    );
    measured
}

/// The mappings holding the most resident memory, by file (or kind) and permissions.
fn print_largest_mappings(pid: u32) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut sizes: std::collections::HashMap<String, f64> = Default::default();
    let mut current = String::new();
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields
            .first()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            let perms = fields.get(1).copied().unwrap_or("");
            let name = fields.get(5).copied().unwrap_or("[anon]");
            current = format!("{perms} {name}");
        } else if fields.first() == Some(&"Rss:") {
            let kb: f64 = fields.get(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            *sizes.entry(current.clone()).or_default() += kb / 1024.0;
        }
    }
    let mut sizes: Vec<(String, f64)> = sizes.into_iter().collect();
    sizes.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, size) in sizes.iter().take(12) {
        println!("    {size:6.1} MiB  {name}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    plane.namespace("mem").await;
    create_node(&admin, "mem-node").await;
    for i in 0..110 {
        create_pod(
            &admin,
            "mem",
            &format!("app-{i}"),
            "mem-node",
            json!({"app": "a"}),
        )
        .await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("policies")).expect("policies");
    std::fs::write(
        dir.path().join("policies/priority.wasm"),
        podlight::policy::BUILTIN_PRIORITY,
    )
    .expect("the default policy as a plugin");
    let heaptrack = std::env::var_os("PODLIGHT_HEAPTRACK").map(std::path::PathBuf::from);
    // What ships is the static `dist` build (scripts/build-static): give it as
    // PODLIGHT_AGENT_BIN to measure that rather than this build.
    let current = std::env::var_os("PODLIGHT_AGENT_BIN").map_or_else(
        || env!("CARGO_BIN_EXE_podlight").into(),
        std::path::PathBuf::from,
    );
    let mut builds = vec![("current".to_string(), current)];
    if let Some(baseline) = std::env::var_os("PODLIGHT_BASELINE_BIN") {
        builds.insert(0, ("baseline".to_string(), baseline.into()));
    }
    println!("node_memory: podlight run, 110 pods on its node, the default policy as a plugin");
    for (label, binary) in &builds {
        // The first start compiles the plugin into the cache; the second loads it.
        let cold = format!("{label}-cold");
        measure(binary, &plane, dir.path(), None, &cold).await;
        std::fs::rename(
            dir.path().join(format!("cache-{cold}")),
            dir.path().join(format!("cache-{label}")),
        )
        .expect("the cache");
        measure(binary, &plane, dir.path(), heaptrack.as_deref(), label).await;
    }
}
