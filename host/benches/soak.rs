//! Soak: one agent for an hour (or `PODLIGHT_SOAK_MINUTES`) on a real API server and
//! etcd, with everything a node lives through, checked every 10 seconds.
//!
//! - pod churn at a steady rate (a pod created, run, sometimes crash-looped or failed,
//!   deleted gracefully and then for good: two API writes a second);
//! - a policy change every minute, in turn: the default policy (signed), a broken
//!   plugin (signed), the breathing example (signed; it animates while a pod is being
//!   deleted), the default policy signed by a key the agent does not trust — so the
//!   agent runs an animating policy half of the time and refuses every other change;
//! - the API server stopped and started again every 10 minutes;
//! - the stick unplugged and plugged back every 5 minutes (the emulated bus).
//!
//! Every sample records the process's RSS, open fds, threads, live tokio tasks and CPU,
//! and checks the stick against the truth: the pods as the API server has them, shown
//! by the policy that should be in force, within the convergence budget.
//!
//! Pass criteria (checked; the run fails otherwise): every sample's frame right within
//! [`CONVERGENCE_BUDGET`] and the agent ready; no panic; and no upward trend after
//! the first 10 minutes — the least-squares line through RSS rises by at most
//! max(2 MiB, 3 % of its mean) over the window, through fds, threads and tasks by less
//! than 2.
//!
//! Writes `samples.csv`, `summary.json` and `soak.svg` (RSS, fds/threads/tasks and CPU
//! over time, events marked) to `PODLIGHT_SOAK_OUT` (default
//! `$PODLIGHT_CACHE/soak`). Run: `scripts/soak [MINUTES]`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use podlight::agent::{AgentConfig, PolicySource, PolicyTrust};
use podlight::cluster::{ConnectOptions, StateWatch, WatchOptions, client, node_info, pod_info};
use podlight::device::sim::emulator::{EmulatorBus, Firmware};
use podlight::device::{Model, WriterOptions};
use podlight::frame::Rgb;
use podlight::policy::signature::TrustedKeys;
use podlight::policy::{BUILTIN_PRIORITY, EngineOptions, PolicyEngine, native};
use podlight::state::{PodState, Snapshot};
use podlight::test_plugins::BREATHE_WASM;
use podlight_testsupport::atomic_writer::AtomicDir;
use podlight_testsupport::cluster::{create_node, status_for};
use podlight_testsupport::control_plane::ControlPlane;
use serde_json::json;

const NODE: &str = "node-soak";
const NS: &str = "soak";
const SERIAL: &str = "BS000001-3.0";
const LEDS: usize = 8;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const SWAP_EVERY: Duration = Duration::from_secs(60);
const API_RESTART_EVERY: Duration = Duration::from_secs(600);
const REPLUG_EVERY: Duration = Duration::from_secs(300);
/// One churn step (an API write) this often.
const CHURN_EVERY: Duration = Duration::from_millis(500);
/// A sample's frame must be right within this; the API server's restarts are not
/// counted in it (the truth cannot be read while it is away).
const CONVERGENCE_BUDGET: Duration = Duration::from_secs(5);
/// Samples before this are the warm-up: caches fill, the first compile, pools grow.
const WARM_UP: Duration = Duration::from_secs(600);
const POD_POOL: usize = 24;

/// What the policies directory holds after each minute's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Priority,
    Broken,
    Breathe,
    WrongKey,
}

impl Change {
    fn of_minute(minute: u64) -> Change {
        [
            Change::Priority,
            Change::Broken,
            Change::Breathe,
            Change::WrongKey,
        ][(minute % 4) as usize]
    }

    /// The policy the agent should run after this change.
    fn in_force(self) -> Policy {
        match self {
            Change::Priority | Change::Broken => Policy::Priority,
            Change::Breathe | Change::WrongKey => Policy::Breathe,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Priority,
    Breathe,
}

struct Sample {
    at_s: f64,
    rss_kib: u64,
    fds: usize,
    threads: usize,
    tasks: usize,
    cpu_percent: f64,
    converged_ms: Option<u64>,
    policy: Policy,
    api_away: bool,
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn main() {
    let minutes: u64 = std::env::var("PODLIGHT_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(60);
    let out = std::env::var_os("PODLIGHT_SOAK_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("PODLIGHT_CACHE").unwrap_or_else(|_| ".".into()))
                .join("soak")
        });
    std::fs::create_dir_all(&out).expect("the output directory");
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let passed = runtime.block_on(soak(Duration::from_secs(minutes * 60), &out));
    println!("soak: results in {}", out.display());
    if !passed {
        std::process::exit(1);
    }
}

async fn soak(duration: Duration, out: &Path) -> bool {
    let mut plane = ControlPlane::start().await;
    let admin = plane.client().await;
    create_node(&admin, NODE).await;
    plane.namespace(NS).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let mut volume = AtomicDir::new(&dirs.path().join("policies"));
    let ours = SigningKey::from_slice(&[7; 32]).expect("a key");
    let theirs = SigningKey::from_slice(&[9; 32]).expect("a key");
    let mut trusted = TrustedKeys::default();
    trusted
        .add_pem(
            "cosign.pub",
            &ours
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .expect("PEM"),
        )
        .expect("the key");
    let breathe = std::fs::read(BREATHE_WASM).expect("the breathing example");
    let publish = |volume: &mut AtomicDir, change: Change| {
        let (plugin, key): (&[u8], &SigningKey) = match change {
            Change::Priority => (BUILTIN_PRIORITY, &ours),
            Change::Broken => (b"\0asm\x0d\0\x01\0 a component cut short", &ours),
            Change::Breathe => (&breathe, &ours),
            Change::WrongKey => (BUILTIN_PRIORITY, &theirs),
        };
        let signature: DerSignature = key.sign(plugin);
        let signature = base64::engine::general_purpose::STANDARD.encode(signature.as_bytes());
        volume.publish(&[
            ("priority.wasm", plugin),
            ("priority.sig", signature.as_bytes()),
        ]);
    };
    publish(&mut volume, Change::Priority);

    let agent_client = client(&ConnectOptions {
        kubeconfig: Some(plane.kubeconfig.clone()),
        context: None,
    })
    .await
    .expect("client");
    let watch = StateWatch::start(
        agent_client,
        WatchOptions {
            node: NODE.into(),
            ..WatchOptions::default()
        },
    );
    assert!(watch.wait_synced(Duration::from_secs(60)).await);
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let engine = Arc::new(
        PolicyEngine::new(EngineOptions {
            cache_dir: Some(dirs.path().join("cache")),
            ..EngineOptions::default()
        })
        .expect("engine"),
    );
    let source = PolicySource {
        dir: Some(dirs.path().join("policies")),
        name: "priority".into(),
        api: None,
        trust: PolicyTrust {
            keys: Arc::new(trusted),
            ..PolicyTrust::default()
        },
    };
    let agent = AgentConfig {
        writer: WriterOptions::default(),
        cluster: Some(watch.status()),
        ..AgentConfig::new(Arc::new(bus.clone()), watch.snapshots(), engine, source)
    }
    .start()
    .await
    .expect("the agent starts");
    let status = Arc::clone(agent.status());

    let stop = Arc::new(AtomicBool::new(false));
    let api_away = Arc::new(AtomicBool::new(false));
    let churn = tokio::spawn(churn(admin.clone(), Arc::clone(&stop)));
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut events: Vec<(f64, &'static str)> = Vec::new();
    let mut counts = EventCounts::default();
    let mut next_sample = started + SAMPLE_EVERY;
    let mut next_swap = started + SWAP_EVERY;
    let mut next_restart = started + API_RESTART_EVERY;
    let mut next_replug = started + REPLUG_EVERY;
    let mut minute = 0;
    let mut in_force = Policy::Priority;
    let mut cpu = CpuClock::now();
    let mut failures: Vec<String> = Vec::new();
    while started.elapsed() < duration {
        let now = Instant::now();
        let at_s = started.elapsed().as_secs_f64();
        if now >= next_swap {
            next_swap += SWAP_EVERY;
            minute += 1;
            let change = Change::of_minute(minute);
            publish(&mut volume, change);
            in_force = change.in_force();
            counts.swaps += 1;
            if matches!(change, Change::Broken | Change::WrongKey) {
                counts.refused_swaps += 1;
            }
            events.push((at_s, "swap"));
        }
        if now >= next_restart {
            next_restart += API_RESTART_EVERY;
            api_away.store(true, Ordering::SeqCst);
            events.push((at_s, "API server restart"));
            plane.stop_apiserver();
            tokio::time::sleep(Duration::from_secs(2)).await;
            plane.start_apiserver().await;
            api_away.store(false, Ordering::SeqCst);
            counts.api_restarts += 1;
        }
        if now >= next_replug {
            next_replug += REPLUG_EVERY;
            events.push((at_s, "replug"));
            bus.unplug(SERIAL);
            tokio::time::sleep(Duration::from_secs(2)).await;
            bus.plug(Firmware::new(Model::Strip, SERIAL));
            counts.replugs += 1;
        }
        if now >= next_sample {
            next_sample += SAMPLE_EVERY;
            let converged = converge(&admin, &bus, in_force).await;
            let (rss_kib, threads) = proc_status();
            let sample = Sample {
                at_s,
                rss_kib,
                fds: open_fds(),
                threads,
                tasks: tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks(),
                cpu_percent: cpu.percent_since(),
                converged_ms: converged.as_ref().ok().map(|d| d.as_millis() as u64),
                policy: in_force,
                api_away: api_away.load(Ordering::SeqCst),
            };
            if let Err(why) = converged {
                let running = status.policy();
                let why = format!(
                    "{why}; the agent runs {} ({}), last reload error: {}",
                    running.name,
                    running.origin,
                    running.last_error.as_deref().unwrap_or("none")
                );
                println!("soak: {at_s:.0} s: wrong: {why}");
                failures.push(format!("at {at_s:.0} s: {why}"));
            }
            // Ready within the same budget: right after a replug the agent says, for
            // a moment, that no stick is connected — true until it has found it again.
            let ready_by = Instant::now() + CONVERGENCE_BUDGET;
            while !status.ready().0 && Instant::now() < ready_by {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !status.ready().0 {
                failures.push(format!("at {at_s:.0} s: not ready: {}", status.ready().1));
            }
            println!(
                "soak: {:>5.0} s  rss {:>6.1} MiB  fds {:>3}  threads {:>3}  tasks {:>4}  cpu {:>5.1} %  converged {:>5} ms  {:?}",
                sample.at_s,
                sample.rss_kib as f64 / 1024.0,
                sample.fds,
                sample.threads,
                sample.tasks,
                sample.cpu_percent,
                sample
                    .converged_ms
                    .map_or("-".to_string(), |ms| ms.to_string()),
                sample.policy
            );
            samples.push(sample);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    counts.churn_writes = churn.await.unwrap_or_default();
    // Every sample checked the agent's frame and readiness: an agent task that had
    // stopped would have failed them (and a panic is counted by the hook).
    agent.stop(false).await;

    let verdict = Verdict::of(&samples, &failures);
    write_outputs(out, &samples, &events, &counts, &verdict, duration);
    print!("{}", verdict.text);
    verdict.passed
}

#[derive(Debug, Default, serde::Serialize)]
struct EventCounts {
    swaps: usize,
    refused_swaps: usize,
    api_restarts: usize,
    replugs: usize,
    churn_writes: ChurnWrites,
}

#[derive(Debug, Default, serde::Serialize)]
struct ChurnWrites {
    created: usize,
    status_changes: usize,
    deletions: usize,
    refused: usize,
}

/// Pod churn until `stop`: each pod of a small pool goes created → pending → running
/// → (every third: crash loop; every seventh: failed) → deleted gracefully → deleted
/// for good, one API write per step. Writes the API server refuses (it restarts every
/// 10 minutes) are counted and the step is tried again later.
async fn churn(client: kube::Client, stop: Arc<AtomicBool>) -> ChurnWrites {
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let mut writes = ChurnWrites::default();
    let mut steps = [0usize; POD_POOL];
    let mut cycle = [0usize; POD_POOL];
    let mut turn = 0usize;
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(CHURN_EVERY).await;
        let i = turn % POD_POOL;
        turn += 1;
        let name = format!("pod-{i}");
        // Lifecycles of different lengths, shifted per pod, so the pods drift apart
        // instead of changing state in step.
        let lifecycle: &[&str] = match (cycle[i] + i) % 7 {
            0 => &[
                "create",
                "pending",
                "running",
                "crashloop",
                "delete",
                "gone",
            ],
            3 => &["create", "running", "failed", "delete", "gone"],
            _ => &["create", "pending", "running", "delete", "gone"],
        };
        let step = lifecycle[steps[i] % lifecycle.len()];
        let result = match step {
            "create" => {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"app": name}},
                    "spec": {"nodeName": NODE, "restartPolicy": "Always",
                             "containers": [{"name": "main", "image": "registry.invalid/app:1"}]}
                }))
                .expect("a pod");
                let created = pods.create(&PostParams::default(), &pod).await.map(|_| ());
                writes.created += usize::from(created.is_ok());
                created
            }
            "delete" | "gone" => {
                let params = DeleteParams {
                    grace_period_seconds: (step == "gone").then_some(0),
                    ..DeleteParams::default()
                };
                let deleted = match pods.delete(&name, &params).await {
                    Ok(_) => Ok(()),
                    // Already gone: the step is done.
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e),
                };
                writes.deletions += usize::from(deleted.is_ok());
                deleted
            }
            state => {
                let changed = pods
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": status_for(state)})),
                    )
                    .await
                    .map(|_| ());
                writes.status_changes += usize::from(changed.is_ok());
                changed
            }
        };
        match result {
            Ok(()) => {
                steps[i] += 1;
                if steps[i].is_multiple_of(lifecycle.len()) {
                    cycle[i] += 1;
                    steps[i] = 0;
                }
            }
            Err(kube::Error::Api(e)) if e.code == 409 && step == "create" => {
                // Still there from before a restart: delete it first.
                steps[i] = lifecycle.len() - 2;
            }
            Err(_) => writes.refused += 1,
        }
    }
    writes
}

/// Waits until the stick shows what the policy in force gives for the pods as the
/// API server has them now (re-read on every try: the churn goes on); how long that
/// took, or what it showed instead when the budget ran out.
async fn converge(
    admin: &kube::Client,
    bus: &EmulatorBus,
    policy: Policy,
) -> Result<Duration, String> {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NS);
    let started = Instant::now();
    // While the API server restarts the truth cannot be read: the budget starts when
    // it answers.
    let mut answered: Option<Instant> = None;
    loop {
        match pods.list(&ListParams::default()).await {
            Ok(list) => {
                let since = *answered.get_or_insert_with(Instant::now);
                let infos = list.items.iter().map(pod_info).collect();
                let truth = Snapshot::new(
                    node_info(NODE, None),
                    infos,
                    podlight::state::wall_clock_ms(),
                );
                let shown = bus.leds(SERIAL).unwrap_or_default();
                match right(policy, &truth, &shown) {
                    Ok(()) => return Ok(since.elapsed()),
                    Err(why) if since.elapsed() > CONVERGENCE_BUDGET => {
                        return Err(format!(
                            "not right within {CONVERGENCE_BUDGET:?} ({policy:?}): {why}"
                        ));
                    }
                    Err(_) => {}
                }
            }
            Err(e) if started.elapsed() > Duration::from_secs(120) => {
                return Err(format!("the API server has not answered for 2 min: {e}"));
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The default policy's frame exactly (its native twin); the breathing example by its
/// rule: breathing blue (any level up to its peak) while a pod is being deleted, else
/// red for failed pods, dim green for running ones, off.
fn right(policy: Policy, truth: &Snapshot, shown: &[Rgb]) -> Result<(), String> {
    let counts = truth.counts;
    match policy {
        Policy::Priority => {
            let want = native::priority_frame(truth, &Default::default(), LEDS as u32);
            if shown == want.as_slice() {
                Ok(())
            } else {
                Err(format!("shows {shown:?}, want {want:?} for {counts:?}"))
            }
        }
        Policy::Breathe => {
            let fits = |c: &Rgb| {
                if counts.deleting > 0 {
                    c.r == 0 && c.g == 0 && c.b <= 80
                } else if counts.failed > 0 {
                    *c == Rgb::new(60, 0, 0)
                } else if counts.running > 0 {
                    *c == Rgb::new(0, 20, 0)
                } else {
                    *c == Rgb::OFF
                }
            };
            if shown.len() == LEDS && shown.iter().all(fits) {
                Ok(())
            } else {
                Err(format!(
                    "shows {shown:?}, not breathe's colour for {counts:?} ({} deleting)",
                    truth
                        .pods
                        .iter()
                        .filter(|p| p.state == PodState::Deleting)
                        .count()
                ))
            }
        }
    }
}

/// VmRSS (KiB) and Threads of this process.
fn proc_status() -> (u64, usize) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:") as usize)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// This process's CPU time (utime + stime, in the kernel's fixed 100 Hz ticks).
struct CpuClock {
    ticks: u64,
    at: Instant,
}

impl CpuClock {
    fn now() -> CpuClock {
        let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command's closing parenthesis: state is field 3, utime 14.
        let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        CpuClock {
            ticks: tick(11) + tick(12),
            at: Instant::now(),
        }
    }

    fn percent_since(&mut self) -> f64 {
        let now = CpuClock::now();
        let cpu_s = (now.ticks - self.ticks.min(now.ticks)) as f64 / 100.0;
        let wall_s = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        *self = now;
        100.0 * cpu_s / wall_s
    }
}

struct Verdict {
    passed: bool,
    text: String,
    trends: Vec<Trend>,
    worst_convergence_ms: u64,
}

#[derive(serde::Serialize)]
struct Trend {
    what: &'static str,
    start: f64,
    end: f64,
    mean: f64,
    /// Least-squares slope over the samples after the warm-up, per hour.
    slope_per_hour: f64,
    /// The fitted line's rise over that window.
    fitted_rise: f64,
    allowed_rise: f64,
    passed: bool,
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

impl Verdict {
    fn of(samples: &[Sample], failures: &[String]) -> Verdict {
        let after: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at_s >= WARM_UP.as_secs_f64())
            .collect();
        let window_s = after
            .last()
            .zip(after.first())
            .map_or(0.0, |(l, f)| l.at_s - f.at_s);
        let trend =
            |what: &'static str, value: &dyn Fn(&Sample) -> f64, allowed: &dyn Fn(f64) -> f64| {
                let points: Vec<(f64, f64)> = after.iter().map(|s| (s.at_s, value(s))).collect();
                let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len().max(1) as f64;
                let k = slope(&points);
                let allowed_rise = allowed(mean);
                Trend {
                    what,
                    start: samples.first().map_or(0.0, value),
                    end: samples.last().map_or(0.0, value),
                    mean,
                    slope_per_hour: k * 3600.0,
                    fitted_rise: k * window_s,
                    allowed_rise,
                    passed: after.len() < 3 || k * window_s <= allowed_rise,
                }
            };
        let trends = vec![
            trend("rss_mib", &|s| s.rss_kib as f64 / 1024.0, &|mean| {
                (mean * 0.03).max(2.0)
            }),
            trend("fds", &|s| s.fds as f64, &|_| 2.0),
            trend("threads", &|s| s.threads as f64, &|_| 2.0),
            trend("tasks", &|s| s.tasks as f64, &|_| 2.0),
        ];
        let panics = PANICS.load(Ordering::SeqCst);
        let worst_convergence_ms = samples
            .iter()
            .filter_map(|s| s.converged_ms)
            .max()
            .unwrap_or(0);
        let mut text = String::new();
        let _ = writeln!(
            text,
            "soak: {} samples; worst convergence {worst_convergence_ms} ms (budget {} ms); {} wrong; {panics} panics",
            samples.len(),
            CONVERGENCE_BUDGET.as_millis(),
            failures.len(),
        );
        for t in &trends {
            let _ = writeln!(
                text,
                "soak: {:<8} start {:>8.1}  end {:>8.1}  mean {:>8.1}  slope {:>+8.3}/h  fitted rise {:>+7.2} (allowed {:.2}) {}",
                t.what,
                t.start,
                t.end,
                t.mean,
                t.slope_per_hour,
                t.fitted_rise,
                t.allowed_rise,
                if t.passed { "ok" } else { "RISING" }
            );
        }
        for f in failures.iter().take(20) {
            let _ = writeln!(text, "soak: wrong {f}");
        }
        let passed = failures.is_empty() && panics == 0 && trends.iter().all(|t| t.passed);
        let _ = writeln!(text, "soak: {}", if passed { "PASSED" } else { "FAILED" });
        Verdict {
            passed,
            text,
            trends,
            worst_convergence_ms,
        }
    }
}

fn write_outputs(
    out: &Path,
    samples: &[Sample],
    events: &[(f64, &'static str)],
    counts: &EventCounts,
    verdict: &Verdict,
    duration: Duration,
) {
    let mut csv = String::from(
        "seconds,rss_kib,fds,threads,tasks,cpu_percent,converged_ms,policy,api_restarting\n",
    );
    for s in samples {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{},{:.2},{},{:?},{}",
            s.at_s,
            s.rss_kib,
            s.fds,
            s.threads,
            s.tasks,
            s.cpu_percent,
            s.converged_ms.map_or(String::new(), |m| m.to_string()),
            s.policy,
            s.api_away
        );
    }
    let _ = std::fs::write(out.join("samples.csv"), csv);
    let convergence: Vec<u64> = samples.iter().filter_map(|s| s.converged_ms).collect();
    let summary = json!({
        "minutes": duration.as_secs() / 60,
        "samples": samples.len(),
        "events": counts,
        "passed": verdict.passed,
        "worst_convergence_ms": verdict.worst_convergence_ms,
        "median_convergence_ms": median(&convergence),
        "panics": PANICS.load(Ordering::SeqCst),
        "trends": verdict.trends,
        "cpu_percent_mean": samples.iter().map(|s| s.cpu_percent).sum::<f64>() / samples.len().max(1) as f64,
    });
    let _ = std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    );
    let _ = std::fs::write(out.join("soak.svg"), plot(samples, events));
}

fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Three panels over time: RSS; fds, threads and tasks; CPU. API server restarts
/// are marked red, replugs grey.
fn plot(samples: &[Sample], events: &[(f64, &'static str)]) -> String {
    const W: f64 = 900.0;
    const PANEL: f64 = 200.0;
    const LEFT: f64 = 70.0;
    const TOP: f64 = 30.0;
    let end_s = samples.last().map_or(1.0, |s| s.at_s.max(1.0));
    let x = |t: f64| LEFT + (W - LEFT - 20.0) * t / end_s;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" font-family="sans-serif" font-size="12">"#,
        TOP + 3.0 * (PANEL + 40.0)
    );
    let _ = write!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="18" font-size="14">podlight soak: {:.0} min, a sample every {} s</text>"#,
        end_s / 60.0,
        SAMPLE_EVERY.as_secs()
    );
    type Series<'a> = (&'a str, &'a str, Box<dyn Fn(&Sample) -> f64 + 'a>);
    let panels: Vec<(&str, Vec<Series<'_>>)> = vec![
        (
            "RSS (MiB)",
            vec![(
                "rss",
                "#1f77b4",
                Box::new(|s: &Sample| s.rss_kib as f64 / 1024.0),
            )],
        ),
        (
            "open fds / threads / tokio tasks",
            vec![
                ("fds", "#2ca02c", Box::new(|s: &Sample| s.fds as f64)),
                (
                    "threads",
                    "#9467bd",
                    Box::new(|s: &Sample| s.threads as f64),
                ),
                ("tasks", "#8c564b", Box::new(|s: &Sample| s.tasks as f64)),
            ],
        ),
        (
            "CPU (% of a core)",
            vec![("cpu", "#d62728", Box::new(|s: &Sample| s.cpu_percent))],
        ),
    ];
    for (index, (title, series)) in panels.iter().enumerate() {
        let top = TOP + index as f64 * (PANEL + 40.0) + 20.0;
        let max = series
            .iter()
            .flat_map(|(_, _, f)| samples.iter().map(f))
            .fold(1.0_f64, f64::max)
            * 1.1;
        let y = |v: f64| top + PANEL - PANEL * v / max;
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{}">{title}</text><rect x="{LEFT}" y="{top}" width="{}" height="{PANEL}" fill="none" stroke="#999"/><text x="{}" y="{}" text-anchor="end">{max:.1}</text><text x="{}" y="{}" text-anchor="end">0</text>"##,
            top - 4.0,
            W - LEFT - 20.0,
            LEFT - 4.0,
            top + 10.0,
            LEFT - 4.0,
            top + PANEL
        );
        for (at, kind) in events {
            let colour = if kind.starts_with("API") {
                "#d62728"
            } else if *kind == "replug" {
                "#bbbbbb"
            } else {
                continue;
            };
            let _ = write!(
                svg,
                r#"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{1}" stroke="{colour}" stroke-dasharray="3,3"/>"#,
                x(*at),
                top + PANEL
            );
        }
        for (n, (name, colour, value)) in series.iter().enumerate() {
            let points: String = samples
                .iter()
                .map(|s| format!("{:.1},{:.1} ", x(s.at_s), y(value(s))))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/><text x="{}" y="{}" fill="{colour}">{name}</text>"#,
                W - 20.0 - 70.0 * (series.len() - n) as f64,
                top - 4.0
            );
        }
    }
    let bottom = TOP + 3.0 * (PANEL + 40.0) - 5.0;
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{bottom}">minutes 0 … {:.0}; dashed: API server restart (red), stick replugged (grey)</text></svg>"##,
        end_s / 60.0
    );
    svg
}
