//! Alerts from a real Alertmanager: what polling costs Alertmanager with 1, 10 and 100
//! agents (each an in-process poller asking for its own node's alerts, as
//! `podlight run --alertmanager` does), and what it costs each agent — requests per
//! second and bytes per poll — against the baseline of the same Alertmanager idle for
//! the same time. Alertmanager holds one alert for each of 100 nodes. Polls run every
//! second so a short run measures enough of them; the figures at the default 15 s
//! interval are derived (CPU per request × requests per second).
//!
//! Run: `cargo bench -p podlight --bench alerts` (needs scripts/build-control-plane's
//! alertmanager).

use std::time::{Duration, Instant};

use podlight::alerts::{AlertFeed, AlertmanagerAuth, AlertmanagerOptions, NodeLabel};
use podlight_testsupport::alertmanager::Alertmanager;

const RUN: Duration = Duration::from_secs(20);
const INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_INTERVAL_S: f64 = 15.0;

/// CPU seconds (user + system) and RSS in MiB of a process, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (ticks(11) + ticks(12)) / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, rss_kib / 1024.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let alertmanager = Alertmanager::start();
    let alerts: Vec<_> = (0..100)
        .map(|i| Alertmanager::alert("DiskFull", "critical", "node", &format!("n{i}"), 3600))
        .collect();
    alertmanager.post(&alerts);
    let pid = alertmanager.pid().expect("running");
    std::thread::sleep(Duration::from_secs(2));

    println!("== Alertmanager under polling agents ({RUN:?} at one poll per {INTERVAL:?} each) ==");
    println!(
        "{:>7} | {:>10} | {:>9} | {:>12} | {:>13} | {:>12} | {:>16}",
        "agents",
        "requests/s",
        "AM CPU %",
        "AM RSS MiB",
        "bytes/poll",
        "CPU/request",
        "AM CPU % at 15 s"
    );
    let (cpu0, _) = usage(pid);
    std::thread::sleep(RUN);
    let (cpu1, rss_idle) = usage(pid);
    let idle = (cpu1 - cpu0) / RUN.as_secs_f64() * 100.0;
    println!(
        "{:>7} | {:>10} | {:>8.2}% | {:>12.1} | {:>13} | {:>12} | {:>16}",
        "0 (idle)", "-", idle, rss_idle, "-", "-", "-"
    );
    for agents in [1usize, 10, 100] {
        let _guard = runtime.enter();
        let feeds: Vec<AlertFeed> = (0..agents)
            .map(|i| {
                AlertFeed::start(
                    AlertmanagerOptions {
                        url: alertmanager.url().parse().expect("url"),
                        node_label: NodeLabel("node".into()),
                        interval: INTERVAL,
                        deadline: Duration::from_secs(10),
                        extra_ca_pem: Vec::new(),
                        auth: AlertmanagerAuth::None,
                    },
                    Some(format!("n{i}")),
                )
                .expect("feed")
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        let before: u64 = feeds.iter().map(|f| f.status.report().polls).sum();
        let (cpu_start, _) = usage(pid);
        let started = Instant::now();
        std::thread::sleep(RUN);
        let (cpu_end, rss) = usage(pid);
        let seconds = started.elapsed().as_secs_f64();
        let reports: Vec<_> = feeds.iter().map(|f| f.status.report()).collect();
        let polls: u64 = reports.iter().map(|r| r.polls).sum::<u64>() - before;
        let failures: u64 = reports.iter().map(|r| r.failures).sum();
        let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
        let total_polls: u64 = reports.iter().map(|r| r.polls).sum();
        let cpu = cpu_end - cpu_start;
        let per_request = (cpu - idle / 100.0 * seconds).max(0.0) / polls.max(1) as f64;
        let at_default = per_request * agents as f64 / DEFAULT_INTERVAL_S * 100.0 + idle;
        if let Some(error) = reports.iter().find_map(|r| r.last_error.clone()) {
            println!("        {failures} polls failed, e.g.: {error}");
        }
        println!(
            "{agents:>7} | {:>10.1} | {:>8.2}% | {:>12.1} | {:>13} | {:>9.0} µs | {:>15.2}%",
            polls as f64 / seconds,
            cpu / seconds * 100.0,
            rss,
            bytes / total_polls.max(1),
            per_request * 1e6,
            at_default,
        );
        drop(feeds);
    }
    println!(
        "\nper agent at the default interval: {:.3} requests/s (one filtered GET /api/v2/alerts every 15 s ± 10 %)",
        1.0 / DEFAULT_INTERVAL_S
    );
}
