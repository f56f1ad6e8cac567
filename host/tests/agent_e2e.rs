//! The agent end to end: a real API server, the emulated stick, real plugins, policy
//! swaps through a kubelet-style ConfigMap volume.

use podlight_testsupport as support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event as CoreEvent;
use podlight::agent::{
    AgentConfig, AgentStatus, ApiPolicies, EventSink, PolicySource, RunningAgent, StatusReporter,
};
use podlight::cluster::{
    ConnectOptions, PolicyConfigMapWatch, ReportLeases, StateWatch, WatchOptions, client,
};
use podlight::device::sim::emulator::{EmulatorBus, Firmware};
use podlight::device::{Model, WriterOptions};
use podlight::frame::Rgb;
use podlight::policy::{BUILTIN_PRIORITY, EngineOptions, PolicyEngine};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::TESTKIT_WASM;
use support::atomic_writer::AtomicDir;
use support::cluster::{
    apply_policies, crash_loop_status, create_node, create_pod, delete_pod, set_status, status_for,
};
use support::control_plane::ControlPlane;

const SERIAL: &str = "BS000001-3.0";
const NODE: &str = "node-e2e";
const NS: &str = "apps";
const RED: Rgb = Rgb::new(50, 0, 0);
const GREEN: Rgb = Rgb::new(0, 25, 0);
const YELLOW: Rgb = Rgb::new(50, 50, 0);
const BLUE: Rgb = Rgb::new(0, 0, 50);

struct Running {
    plane: ControlPlane,
    bus: EmulatorBus,
    state: Arc<AgentStatus>,
    agent: Option<RunningAgent>,
    _watch: StateWatch,
    _policies: Option<PolicyConfigMapWatch>,
    _dirs: tempfile::TempDir,
}

impl Running {
    async fn start(policies: &Path, dirs: tempfile::TempDir, agent_pod: bool) -> Running {
        Running::start_on(
            ControlPlane::start().await,
            policies,
            dirs,
            agent_pod,
            false,
        )
        .await
    }

    /// The agent on `plane`, also watching the policies ConfigMap through the API
    /// when `api` (the plane's API server may be down at start).
    async fn start_on(
        plane: ControlPlane,
        policies: &Path,
        dirs: tempfile::TempDir,
        agent_pod: bool,
        api: bool,
    ) -> Running {
        let admin = plane.client().await;
        create_node(&admin, NODE).await;
        plane.namespace(NS).await;
        plane.namespace("podlight").await;
        let agent_client = client(&ConnectOptions {
            kubeconfig: Some(plane.kubeconfig.clone()),
            context: None,
        })
        .await
        .expect("client");
        let watch = StateWatch::start(
            agent_client.clone(),
            WatchOptions {
                node: NODE.into(),
                ..WatchOptions::default()
            },
        );
        assert!(watch.wait_synced(Duration::from_secs(20)).await);
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Strip, SERIAL));
        let events = if agent_pod {
            create_pod(
                &admin,
                "podlight",
                "podlight-agent",
                "node-other", // not this node: its own pending state must not colour it
                json!({"app": "podlight"}),
            )
            .await;
            EventSink::new(agent_client.clone(), "podlight", "podlight-agent", None)
        } else {
            EventSink::none()
        };
        let engine = Arc::new(
            PolicyEngine::new(EngineOptions {
                cache_dir: Some(dirs.path().join("cache")),
                ..EngineOptions::default()
            })
            .expect("engine"),
        );
        let policy_watch = api.then(|| {
            PolicyConfigMapWatch::start(agent_client.clone(), "podlight", "podlight-policies")
        });
        let source = PolicySource {
            dir: Some(policies.to_path_buf()),
            name: "priority".into(),
            api: policy_watch.as_ref().map(|w| ApiPolicies {
                configmap: "podlight/podlight-policies".into(),
                files: w.files(),
            }),
            trust: Default::default(),
        };
        let agent = AgentConfig {
            writer: no_fade(),
            cluster: Some(watch.status()),
            events,
            reporter: Some(StatusReporter {
                leases: ReportLeases::new(agent_client.clone(), "test", "podlight"),
                pod: Some("podlight-agent".into()),
            }),
            ..AgentConfig::new(Arc::new(bus.clone()), watch.snapshots(), engine, source)
        }
        .start()
        .await
        .expect("the agent starts");
        Running {
            plane,
            bus,
            state: Arc::clone(agent.status()),
            agent: Some(agent),
            _watch: watch,
            _policies: policy_watch,
            _dirs: dirs,
        }
    }

    /// Waits until the stick shows `leds`.
    async fn shows(&self, what: &str, leds: &[Rgb]) {
        self.shows_within(what, leds, Duration::from_secs(20)).await;
    }

    /// Waits up to `limit` until the stick shows `leds`.
    async fn shows_within(&self, what: &str, leds: &[Rgb], limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.bus.leds(SERIAL).unwrap_or_default();
            if now == leds {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: the stick shows {now:?}, want {leds:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn shows_all(&self, what: &str, colour: Rgb) {
        self.shows(what, &[colour; 8]).await;
    }
}

/// Frames written as they are: the tests compare exact colours.
fn no_fade() -> WriterOptions {
    WriterOptions {
        fade: Duration::ZERO,
        ..WriterOptions::default()
    }
}

fn temp_policies() -> (tempfile::TempDir, std::path::PathBuf) {
    let dirs = tempfile::tempdir().expect("temp dir");
    let policies = dirs.path().join("policies");
    (dirs, policies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_lifecycle_reaches_the_stick_in_the_right_colours() {
    let (dirs, policies) = temp_policies();
    std::fs::create_dir_all(&policies).expect("dir");
    let run = Running::start(&policies, dirs, false).await;
    let admin = run.plane.client().await;
    run.shows_all("an empty node: off", Rgb::OFF).await;
    create_pod(&admin, NS, "web", NODE, json!({"app": "web"})).await;
    run.shows_all("pending: yellow", YELLOW).await;
    set_status(&admin, NS, "web", status_for("running")).await;
    run.shows_all("running: green", GREEN).await;
    create_pod(&admin, NS, "api", NODE, json!({"app": "api"})).await;
    set_status(&admin, NS, "api", status_for("crashloop")).await;
    run.shows_all("crash loop: red", RED).await;
    delete_pod(&admin, NS, "api", Some(0)).await;
    run.shows_all("recovered: green", GREEN).await;
    delete_pod(&admin, NS, "web", None).await;
    run.shows_all("terminating: blue", BLUE).await;
    delete_pod(&admin, NS, "web", Some(0)).await;
    run.shows_all("gone: off", Rgb::OFF).await;
    assert!(run.state.ready().0, "{}", run.state.ready().1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_stays_red_through_its_restarts_and_a_recovery_turns_green() {
    let (dirs, policies) = temp_policies();
    std::fs::create_dir_all(&policies).expect("dir");
    let run = Running::start(&policies, dirs, false).await;
    let admin = run.plane.client().await;
    create_pod(&admin, NS, "flaky", NODE, json!({"app": "flaky"})).await;
    set_status(&admin, NS, "flaky", status_for("running")).await;
    run.shows_all("running before the first crash: green", GREEN)
        .await;
    let writes = || {
        run.bus
            .stick(SERIAL)
            .map_or(0, |s| s.lock().map(|f| f.received().len()).unwrap_or(0))
    };
    let mut snapshots = run.state.snapshot.clone();
    let mut timeline = Vec::new();
    let started = Instant::now();
    let mut red_writes = None;
    for restarts in 0..3 {
        for phase in ["terminated", "backoff", "running"] {
            let restarts = if phase == "running" {
                restarts + 1
            } else {
                restarts
            };
            set_status(
                &admin,
                NS,
                "flaky",
                crash_loop_status(phase, restarts, Duration::from_secs(1)),
            )
            .await;
            // The agent has seen this phase: the container state in its snapshot.
            support::cluster::wait_for_snapshot(
                &mut snapshots,
                Duration::from_secs(20),
                phase,
                |s| {
                    s.pods.iter().any(|p| {
                        p.restarts() == restarts
                            && match &p.containers[0].state {
                                podlight::state::ContainerState::Terminated { .. } => {
                                    phase == "terminated"
                                }
                                podlight::state::ContainerState::Waiting { .. } => {
                                    phase == "backoff"
                                }
                                podlight::state::ContainerState::Running { .. } => {
                                    phase == "running"
                                }
                            }
                    })
                },
            )
            .await;
            run.shows_all(&format!("cycle {restarts}, {phase}: red"), RED)
                .await;
            let shown = run.bus.leds(SERIAL).unwrap_or_default();
            timeline.push(format!(
                "{:>6.2} s  cycle {restarts} {phase:<10} {}",
                started.elapsed().as_secs_f64(),
                shown.first().map(Rgb::to_string).unwrap_or_default()
            ));
            // Red once, then no write at all: no flicker through yellow or green.
            let now = writes();
            assert_eq!(
                *red_writes.get_or_insert(now),
                now,
                "the stick was written again during the crash loop:\n{}",
                timeline.join("\n")
            );
        }
    }
    println!("crash-loop frame timeline:\n{}", timeline.join("\n"));
    // Recovered: running since just under the recovery time, then green on time
    // alone, with no further change from the API.
    let recovery = Duration::from_millis(podlight::state::CRASH_RECOVERY_MS);
    set_status(
        &admin,
        NS,
        "flaky",
        crash_loop_status("running", 3, recovery - Duration::from_secs(3)),
    )
    .await;
    run.shows_all("still red just before the recovery time", RED)
        .await;
    run.shows_all("green once running for the recovery time", GREEN)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_swaps_change_colours_and_bad_plugins_are_refused() {
    let (dirs, policies) = temp_policies();
    let mut volume = AtomicDir::new(&policies);
    volume.publish(&[("priority.wasm", BUILTIN_PRIORITY)]);
    let run = Running::start(&policies, dirs, true).await;
    let admin = run.plane.client().await;
    create_pod(&admin, NS, "web", NODE, json!({"app": "web"})).await;
    set_status(&admin, NS, "web", status_for("running")).await;
    run.shows_all("the priority plugin from the volume: green", GREEN)
        .await;
    assert!(run.state.policy().origin.ends_with("priority.wasm"));

    // Another policy under the same key: the testkit shows counts on LED 0.
    let testkit = std::fs::read(TESTKIT_WASM).expect("testkit built");
    volume.publish(&[("priority.wasm", &testkit)]);
    let mut counts = vec![Rgb::OFF; 8];
    counts[0] = Rgb::new(0, 1, 0);
    run.shows("the swapped-in policy's frame", &counts).await;
    assert_eq!(run.state.policy().name, "priority");

    // A broken plugin: the colours stay, the failure shows in metrics, state, Event.
    volume.publish(&[("priority.wasm", b"\0asm\x0d\0\x01\0garbage")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.state.policy().last_error.is_none() {
        assert!(Instant::now() < deadline, "the failure is reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.shows("the last good policy's frame, still", &counts)
        .await;
    let metrics = run.state.metrics.render(&run.state);
    assert!(
        metrics.contains(r#"podlight_policy_reloads_total{result="failed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"podlight_policy_reloads_total{result="ok"} 1"#),
        "{metrics}"
    );
    let events: kube::Api<CoreEvent> = kube::Api::namespaced(admin.clone(), "podlight");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = events.list(&Default::default()).await.expect("events");
        if let Some(e) = list
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("PolicyReloadFailed"))
        {
            assert_eq!(e.involved_object.name.as_deref(), Some("podlight-agent"));
            assert_eq!(e.type_.as_deref(), Some("Warning"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a Warning Event on the agent's pod"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Settings only: applied without recompiling (the builtin rule via priority.wasm).
    let settings = br##"{"rules": [{"states": ["running"], "color": "#0000ff"}]}"##;
    volume.publish(&[
        ("priority.wasm", BUILTIN_PRIORITY),
        ("priority.json", settings),
    ]);
    run.shows_all("the new settings' colour", Rgb::new(0, 0, 255))
        .await;
    volume.publish(&[
        ("priority.wasm", BUILTIN_PRIORITY),
        (
            "priority.json",
            br##"{"rules": [{"states": ["running"], "color": "#00ffff"}]}"##,
        ),
    ]);
    run.shows_all("settings-only change", Rgb::new(0, 255, 255))
        .await;
    assert_eq!(
        run.state.policy().last_error,
        None,
        "a good reload clears the error"
    );

    // Twenty swaps in quick succession end on the last good one.
    for i in 0..20 {
        if i % 2 == 0 {
            volume.publish(&[("priority.wasm", &testkit)]);
        } else {
            volume.publish(&[("priority.wasm", BUILTIN_PRIORITY)]);
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    run.shows_all("the last swap: the builtin rule, defaults", GREEN)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_file_replacement_and_half_written_files() {
    let (dirs, policies) = temp_policies();
    std::fs::create_dir_all(&policies).expect("dir");
    let run = Running::start(&policies, dirs, false).await;
    let admin = run.plane.client().await;
    create_pod(&admin, NS, "web", NODE, json!({"app": "web"})).await;
    set_status(&admin, NS, "web", status_for("running")).await;
    run.shows_all("builtin: green", GREEN).await;
    // A plugin written in two halves, the second a moment later (a slow `cp`).
    let testkit = std::fs::read(TESTKIT_WASM).expect("testkit built");
    let path = policies.join("priority.wasm");
    std::fs::write(&path, &testkit[..testkit.len() / 2]).expect("first half");
    tokio::time::sleep(Duration::from_millis(100)).await;
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open")
        .write_all(&testkit[testkit.len() / 2..])
        .expect("second half");
    let mut counts = vec![Rgb::OFF; 8];
    counts[0] = Rgb::new(0, 1, 0);
    run.shows("the copied plugin", &counts).await;
    // Removing the plugin falls back to the built-in policy.
    std::fs::remove_file(&path).expect("remove");
    run.shows_all("builtin again", GREEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_turns_the_leds_off() {
    let (dirs, policies) = temp_policies();
    std::fs::create_dir_all(&policies).expect("dir");
    let mut run = Running::start(&policies, dirs, false).await;
    let admin = run.plane.client().await;
    create_pod(&admin, NS, "web", NODE, json!({"app": "web"})).await;
    run.shows_all("pending", YELLOW).await;
    let started = Instant::now();
    run.agent.take().expect("running").stop(false).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(run.bus.leds(SERIAL), Some(vec![Rgb::OFF; 8]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stick_plugged_in_later_gets_a_frame_sized_for_it() {
    let bus = EmulatorBus::new();
    let (_agent, state, _snapshots) =
        agent_without_cluster(&bus, "crash-loop", None, "priority", None).await;
    assert!(!state.ready().0, "no stick yet: not ready");
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let deadline = Instant::now() + Duration::from_secs(5);
    while bus.leds(SERIAL) != Some(vec![RED; 8]) {
        assert!(
            Instant::now() < deadline,
            "all 8 LEDs red once the stick is there: {:?}",
            bus.leds(SERIAL)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(state.ready().0, "{}", state.ready().1);
}

/// The agent on a fixed sample snapshot (no cluster) and the stick(s) on `bus`,
/// without fades, running policy `name` from `dir` (or the built-in one). The
/// snapshot's sender is returned too: the agent stops evaluating when it is dropped.
async fn agent_without_cluster(
    bus: &EmulatorBus,
    sample_name: &str,
    dir: Option<&Path>,
    name: &str,
    api: Option<ApiPolicies>,
) -> (RunningAgent, Arc<AgentStatus>, SnapshotSender) {
    let (tx, rx) = tokio::sync::watch::channel(support::sample(sample_name));
    let engine = Arc::new(PolicyEngine::new(EngineOptions::default()).expect("engine"));
    let source = PolicySource {
        dir: dir.map(Path::to_path_buf),
        name: name.into(),
        api,
        trust: Default::default(),
    };
    let agent = AgentConfig {
        writer: no_fade(),
        ..AgentConfig::new(Arc::new(bus.clone()), rx, engine, source)
    }
    .start()
    .await
    .expect("the agent starts");
    let state = Arc::clone(agent.status());
    (agent, state, tx)
}

type SnapshotSender = tokio::sync::watch::Sender<Arc<podlight::state::Snapshot>>;

/// Runs `plugin` as the agent's policy on the sample snapshot `sample_name`, which
/// never changes, on an emulated strip without fades; returns the intervals between
/// the first `frames` frames written after the first one.
async fn animation_intervals(plugin: &Path, sample_name: &str, frames: usize) -> Vec<Duration> {
    let bus = EmulatorBus::new();
    let stick = bus.plug(Firmware::new(Model::Strip, SERIAL));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(plugin, dir.path().join("animated.wasm")).expect("copy plugin");
    let (agent, state, _snapshots) =
        agent_without_cluster(&bus, sample_name, Some(dir.path()), "animated", None).await;
    assert_eq!(state.policy().name, "animated", "{:?}", state.policy());
    let received = || {
        stick
            .lock()
            .map(|s| s.received().iter().map(|(at, _)| *at).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while received().len() < frames + 1 {
        assert!(
            Instant::now() < deadline,
            "the frame must keep changing on an unchanged snapshot; {} writes: {:?}",
            received().len(),
            bus.leds(SERIAL)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.stop(true).await;
    let times = received();
    times[1..=frames]
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect()
}

/// The policies ask to be evaluated again every 40 ms; the agent evaluates at most
/// once per 20 ms frame tick and writes only changed frames.
fn assert_animation_cadence(name: &str, mut intervals: Vec<Duration>) {
    intervals.sort();
    let median = intervals[intervals.len() / 2];
    let shortest = intervals[0];
    println!(
        "{name}: {} frame changes, median interval {median:?}, shortest {shortest:?}",
        intervals.len() + 1
    );
    assert!(
        shortest >= Duration::from_millis(15),
        "{name}: no faster than the frame tick: {intervals:?}"
    );
    assert!(
        median <= Duration::from_millis(250),
        "{name}: animates at about the 40 ms asked for: {intervals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn animated_policies_move_on_an_unchanged_node() {
    let breathe = animation_intervals(Path::new(support::BREATHE_WASM), "deleting", 20).await;
    assert_animation_cadence("rust-breathe", breathe);
    let heat = support::example_policies::example("go-restart-heat");
    let pulse = animation_intervals(&heat.wasm, "crash-loop", 20).await;
    assert_animation_cadence("go-restart-heat", pulse);
}

/// An agent on the crash-loop sample, given the testkit with `settings` as a plain
/// copy into its policy directory, once its first refusal says what `says` accepts.
async fn refused_testkit(
    settings: &str,
    says: impl Fn(&str) -> bool,
) -> (
    RunningAgent,
    Arc<AgentStatus>,
    SnapshotSender,
    EmulatorBus,
    tempfile::TempDir,
) {
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let dir = tempfile::tempdir().expect("temp dir");
    let (agent, state, snapshots) =
        agent_without_cluster(&bus, "crash-loop", Some(dir.path()), "priority", None).await;
    std::fs::write(dir.path().join("priority.json"), settings).expect("settings");
    std::fs::copy(TESTKIT_WASM, dir.path().join("priority.wasm")).expect("plugin");
    wait_for_failed_reloads(&state, 1).await;
    assert!(
        state.policy().last_error.is_some_and(|e| says(&e)),
        "{:?}",
        state.policy()
    );
    (agent, state, snapshots, bus, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_plugin_is_reported_once_and_retried_only_when_it_changes() {
    // A plain copy (not a kubelet-style swap) of a plugin whose trial evaluation traps.
    let (_agent, state, _snapshots, bus, dir) =
        refused_testkit("trap", |e| e.contains("unreachable") || e.contains("trap")).await;
    // Reading the file again must not count as a change: no retry, no new report.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        failed_reloads(&state, 1),
        "retried: {}",
        state.metrics.render(&state)
    );
    assert_eq!(
        bus.leds(SERIAL),
        Some(vec![RED; 8]),
        "the built-in policy runs on"
    );
    // A new version of the file is tried again.
    std::fs::write(
        dir.path().join("priority.wasm"),
        b"\0asm\x0d\0\x01\0garbage",
    )
    .expect("write");
    wait_for_failed_reloads(&state, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_past_its_deadline_is_tried_again_until_the_node_lets_it_run() {
    // A policy whose evaluation cannot finish while the node has a failed pod: as on
    // a node too slow or busy for it for a while.
    let (_agent, state, snapshots, bus, _dir) =
        refused_testkit("loop-while-failed", |e| e.contains("deadline")).await;
    assert_eq!(
        bus.leds(SERIAL),
        Some(vec![RED; 8]),
        "the built-in policy runs on"
    );
    // The policy does not change; the node does. The background retry takes it, and
    // the failure was reported once.
    snapshots.send_replace(support::sample("all-running"));
    let testkit = hex::encode(Sha256::digest(
        std::fs::read(TESTKIT_WASM).expect("testkit"),
    ));
    eventually("the policy tried again and taken", || {
        state.policy().sha256 == testkit
    })
    .await;
    assert!(
        failed_reloads(&state, 1),
        "reported once: {}",
        state.metrics.render(&state)
    );
}

/// The testkit's `counts` frame for a snapshot, on the 8-LED strip.
fn counts_frame(snapshot: &podlight::state::Snapshot) -> Vec<Rgb> {
    let c = &snapshot.counts;
    let byte = |n: u32| n.min(255) as u8;
    let mut leds = vec![Rgb::OFF; 8];
    leds[0] = Rgb::new(byte(c.failed), byte(c.running), byte(c.deleting));
    leds
}

fn evaluation_errors(state: &AgentStatus) -> u64 {
    support::metric(state, "podlight_evaluation_errors_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_turns_bad_after_some_evaluations_is_contained() {
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let dir = tempfile::tempdir().expect("temp dir");
    // Good for five evaluations (the trial one included), then busy-waiting until the
    // deadline stops it. Each failure restarts the sandbox, which is good for five
    // more: a plugin that degrades as it runs.
    std::fs::write(dir.path().join("priority.json"), "after 5 loop").expect("settings");
    std::fs::copy(TESTKIT_WASM, dir.path().join("priority.wasm")).expect("plugin");
    let (_agent, state, snapshots) =
        agent_without_cluster(&bus, "crash-loop", Some(dir.path()), "priority", None).await;
    let (crash, deleting) = (support::sample("crash-loop"), support::sample("deleting"));
    let good = [counts_frame(&crash), counts_frame(&deleting)];
    assert_ne!(good[0], good[1]);
    eventually("the plugin's first frame", || {
        bus.leds(SERIAL).as_ref() == Some(&good[0])
    })
    .await;
    // A node that changes fifty times a second for three seconds.
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let _ = snapshots.send(Arc::clone(if sent % 2 == 0 { &deleting } else { &crash }));
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let shown = bus.leds(SERIAL).unwrap_or_default();
        assert!(
            good.contains(&shown),
            "only good frames are ever shown: {shown:?}"
        );
    }
    let _ = snapshots.send(Arc::clone(&deleting));
    let failed = evaluation_errors(&state);
    println!(
        "a plugin that busy-waits after 5 evaluations, {sent} node changes in 3 s: \
         {failed} evaluations stopped at the deadline"
    );
    assert!(failed >= 2, "it does misbehave: {failed}");
    // Without a pause after a failure, one change in six would run into the deadline.
    assert!(
        failed * 10 <= sent,
        "failures are spaced out: {failed} for {sent} changes"
    );
    eventually(
        "the frame of the latest node state, between failures",
        || bus.leds(SERIAL).as_ref() == Some(&good[1]),
    )
    .await;
    // The agent serves on: fixed settings apply.
    std::fs::write(dir.path().join("priority.json"), "counts").expect("settings");
    eventually("the fixed settings to be read", || {
        state.policy().settings.as_deref() == Some("counts")
    })
    .await;
    // The evaluator takes them before its next evaluation; one still running with the
    // old ones ends at its 50 ms deadline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fixed_at = evaluation_errors(&state);
    for _ in 0..20 {
        let _ = snapshots.send(Arc::clone(&crash));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = snapshots.send(Arc::clone(&deleting));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually("the fixed plugin's frame", || {
        bus.leds(SERIAL).as_ref() == Some(&good[1])
    })
    .await;
    assert_eq!(
        evaluation_errors(&state),
        fixed_at,
        "no failures once fixed"
    );
}

fn failed_reloads(state: &AgentStatus, n: u32) -> bool {
    state.metrics.render(state).contains(&format!(
        r#"podlight_policy_reloads_total{{result="failed"}} {n}"#
    ))
}

async fn wait_for_failed_reloads(state: &AgentStatus, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !failed_reloads(state, n) {
        assert!(
            Instant::now() < deadline,
            "{n} failed reloads: {}",
            state.metrics.render(state)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_fails_at_start_shows_its_error() {
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("priority.wasm"),
        b"\0asm\x0d\0\x01\0garbage",
    )
    .expect("write");
    let (_agent, state, _snapshots) =
        agent_without_cluster(&bus, "crash-loop", Some(dir.path()), "priority", None).await;
    let policy = state.policy();
    assert_eq!(policy.origin, "builtin", "{policy:?}");
    assert!(policy.last_error.is_some(), "{policy:?}");
}

/// Waits until `f` holds, polling; panics with `what` after 20 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_swap_through_the_api_without_waiting_for_the_mount() {
    let (dirs, policies) = temp_policies();
    let mut volume = AtomicDir::new(&policies);
    volume.publish(&[("priority.wasm", BUILTIN_PRIORITY)]);
    let run = Running::start_on(ControlPlane::start().await, &policies, dirs, true, true).await;
    let admin = run.plane.client().await;
    create_pod(&admin, NS, "web", NODE, json!({"app": "web"})).await;
    set_status(&admin, NS, "web", status_for("running")).await;
    run.shows_all("the mounted builtin: green", GREEN).await;
    let testkit = std::fs::read(TESTKIT_WASM).expect("testkit built");
    let mut counts = vec![Rgb::OFF; 8];
    counts[0] = Rgb::new(0, 1, 0);
    let blue_settings = br##"{"rules": [{"states": ["running"], "color": "#0000ff"}]}"##;
    // Twenty swaps through the API alone; the mounted files never change.
    let files = |testkit_now: bool| -> Vec<(&str, &[u8])> {
        if testkit_now {
            vec![("priority.wasm", &testkit[..])]
        } else {
            vec![
                ("priority.wasm", BUILTIN_PRIORITY),
                ("priority.json", &blue_settings[..]),
            ]
        }
    };
    time_twenty_swaps(
        &run,
        "ConfigMap apply → new frame through the API",
        &counts,
        async |testkit_now| apply_policies(&admin, &files(testkit_now)).await,
    )
    .await;
    assert!(
        run.state
            .policy()
            .origin
            .contains("configmap podlight/podlight-policies"),
        "{:?}",
        run.state.policy()
    );
    // The kubelet's later copy of the same content changes nothing.
    let ok_before = run.state.metrics.render(&run.state);
    volume.publish(&[
        ("priority.wasm", BUILTIN_PRIORITY),
        ("priority.json", blue_settings),
    ]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ok_after = run.state.metrics.render(&run.state);
    let reloads = |m: &str| {
        m.lines()
            .find(|l| l.starts_with(r#"podlight_policy_reloads_total{result="ok"}"#))
            .map(str::to_string)
    };
    assert_eq!(
        reloads(&ok_before),
        reloads(&ok_after),
        "no reload for the same content"
    );
    // A broken plugin through the API: the colours stay, the error shows — in the
    // agent and in the node's published report.
    let broken = b"\0asm\x0d\0\x01\0garbage";
    apply_policies(&admin, &[("priority.wasm", broken)]).await;
    eventually("the failure to be reported", || {
        run.state.policy().last_error.is_some()
    })
    .await;
    run.shows_all("the last good policy, still", Rgb::new(0, 0, 255))
        .await;
    let leases = ReportLeases::new(admin.clone(), "test", "podlight");
    let broken_sha = hex::encode(Sha256::digest(broken));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reports = leases.list().await.expect("list the reports");
        let reload = reports
            .iter()
            .find(|p| p.report.node == NODE)
            .and_then(|p| p.report.last_reload.clone());
        if let Some(reload) = reload
            && !reload.ok
        {
            assert_eq!(reload.file_sha256.as_deref(), Some(broken_sha.as_str()));
            assert!(
                reload.error.is_some_and(|e| e.contains("priority")),
                "the error names the plugin"
            );
            assert_eq!(
                reports[0].report.policy.sha256,
                hex::encode(Sha256::digest(BUILTIN_PRIORITY))
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node's report never showed the refusal: {reports:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The same swaps through the mounted directory alone (no ConfigMap in the API),
    // written the way the kubelet writes it: the agent's own share of a mount swap,
    // beside the API's above. (Through a real kubelet, its sync period comes first:
    // see the real-node test.)
    use k8s_openapi::api::core::v1::ConfigMap;
    let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(admin.clone(), "podlight");
    configmaps
        .delete("podlight-policies", &Default::default())
        .await
        .expect("delete the policies ConfigMap");
    run.shows_all(
        "the mounted builtin with blue settings",
        Rgb::new(0, 0, 255),
    )
    .await;
    time_twenty_swaps(
        &run,
        "mounted files replaced → new frame",
        &counts,
        async |testkit_now| volume.publish(&files(testkit_now)),
    )
    .await;
}

/// Twenty swaps, alternating between the testkit (`counts` on the stick) and the
/// built-in policy with blue settings, each made by `swap(testkit_now)` and waited for
/// on the stick; prints p50, p95 and max as `what`.
async fn time_twenty_swaps(
    run: &Running,
    what: &str,
    counts: &[Rgb],
    mut swap: impl AsyncFnMut(bool),
) {
    let mut took = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let testkit_now = i % 2 == 0;
        swap(testkit_now).await;
        if testkit_now {
            run.shows("the testkit", counts).await;
        } else {
            run.shows_all("the builtin with blue settings", Rgb::new(0, 0, 255))
                .await;
        }
        took.push(started.elapsed());
    }
    took.sort();
    println!(
        "{what}, 20 swaps: p50 {:?}, p95 {:?}, max {:?}",
        took[10], took[18], took[19]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mount_applies_until_the_api_answers_then_the_api_wins() {
    let mut plane = ControlPlane::start().await;
    let admin = plane.client().await;
    plane.namespace("podlight").await;
    let testkit = std::fs::read(TESTKIT_WASM).expect("testkit built");
    apply_policies(&admin, &[("priority.wasm", &testkit)]).await;
    let agent_client = client(&ConnectOptions {
        kubeconfig: Some(plane.kubeconfig.clone()),
        context: None,
    })
    .await
    .expect("client");
    plane.stop_apiserver();
    // The mount holds the builtin; the API (down) holds the testkit.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut volume = AtomicDir::new(dir.path());
    volume.publish(&[("priority.wasm", BUILTIN_PRIORITY)]);
    let policy_watch = PolicyConfigMapWatch::start(agent_client, "podlight", "podlight-policies");
    let api = ApiPolicies {
        configmap: "podlight/podlight-policies".into(),
        files: policy_watch.files(),
    };
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let (_agent, state, _snapshots) =
        agent_without_cluster(&bus, "crash-loop", Some(dir.path()), "priority", Some(api)).await;
    eventually("the mounted builtin: red for the crash loop", || {
        bus.leds(SERIAL) == Some(vec![RED; 8])
    })
    .await;
    assert!(
        state.policy().origin.ends_with("priority.wasm"),
        "{:?}",
        state.policy()
    );
    plane.start_apiserver().await;
    // failed=1 running=3 deleting=0 on LED 0: the API's testkit.
    let mut counts = vec![Rgb::OFF; 8];
    counts[0] = Rgb::new(1, 3, 0);
    eventually("the API's policy once it answers", || {
        bus.leds(SERIAL) == Some(counts.clone())
    })
    .await;
}

/// The frame the built-in policy gives for the node's true state, read from the API.
async fn expected_frame(client: &kube::Client, leds: u32) -> Vec<Rgb> {
    use k8s_openapi::api::core::v1::{Node, Pod};
    let pods: kube::Api<Pod> = kube::Api::all(client.clone());
    let listed = pods
        .list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={NODE}")))
        .await
        .expect("list pods");
    let node = kube::Api::<Node>::all(client.clone())
        .get_opt(NODE)
        .await
        .expect("get node");
    let snapshot = Arc::new(podlight::state::Snapshot::new(
        podlight::cluster::node_info(NODE, node.as_ref()),
        listed
            .items
            .iter()
            .map(podlight::cluster::pod_info)
            .collect(),
        podlight::state::wall_clock_ms(),
    ));
    let engine = PolicyEngine::new(EngineOptions::default()).expect("engine");
    let policy = Arc::new(engine.builtin().expect("builtin"));
    let mut instance = policy.instantiate(None).expect("starts");
    instance.evaluate(&snapshot, leds).expect("evaluates").leds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_converges_after_ten_api_server_restarts_during_churn() {
    let (dirs, policies) = temp_policies();
    std::fs::create_dir_all(&policies).expect("dir");
    let mut run = Running::start(&policies, dirs, false).await;
    let admin = run.plane.client().await;
    let names: Vec<String> = (0..6).map(|i| format!("churn-{i}")).collect();
    for name in &names {
        create_pod(&admin, NS, name, NODE, json!({"app": "churn"})).await;
        set_status(&admin, NS, name, status_for("running")).await;
    }
    run.shows_all("all running", GREEN).await;
    // Each round leaves the node's worst state somewhere else, so the frames differ.
    let rounds = ["crashloop", "pending", "running", "unready", "imagepull"];
    // 10 in the suite; more for figures (PODLIGHT_RESTART_ROUNDS=30).
    let count: usize = std::env::var("PODLIGHT_RESTART_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let mut took_each = Vec::new();
    for round in 0..count {
        let state = rounds[round % rounds.len()];
        // Churn while the server is up…
        for (i, name) in names.iter().enumerate() {
            let each = if i == round % names.len() {
                state
            } else {
                "running"
            };
            set_status(&admin, NS, name, status_for(each)).await;
        }
        // …then the server goes away, and the cluster keeps changing behind its back
        // (through a second API server on the same etcd).
        run.plane.stop_apiserver();
        {
            let (_second, other) = run.plane.second_apiserver().await;
            let name = &names[(round + 1) % names.len()];
            set_status(
                &other,
                NS,
                name,
                status_for(rounds[(round + 1) % rounds.len()]),
            )
            .await;
            if round % 2 == 1 {
                delete_pod(&other, NS, &names[round % names.len()], Some(0)).await;
            }
        }
        if round % 3 == 2 {
            // The history the agent's watch would resume from is gone: it must relist.
            run.plane.compact_etcd();
        }
        run.plane.start_apiserver().await;
        let admin = run.plane.client().await;
        let started = Instant::now();
        let want = expected_frame(&admin, 8).await;
        // The watch retries at most 2 s apart while the server is away (a generous
        // bound here; the median is checked below).
        run.shows_within(
            &format!("round {round}: the true state's frame"),
            &want,
            Duration::from_secs(60),
        )
        .await;
        let took = started.elapsed();
        took_each.push(took);
        println!(
            "restart {}: converged in {took:?} to {}",
            round + 1,
            want[0]
        );
        // Deleted pods come back for the next round.
        for name in &names {
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(admin.clone(), NS);
            if pods.get_opt(name).await.expect("get").is_none() {
                create_pod(&admin, NS, name, NODE, json!({"app": "churn"})).await;
            }
        }
    }
    took_each.sort();
    let at = |q: f64| took_each[((took_each.len() - 1) as f64 * q).round() as usize];
    println!(
        "{count}/{count} restarts converged after the API server answered: p50 {:?}, p95 {:?}, max {:?}",
        at(0.5),
        at(0.95),
        at(1.0)
    );
    // The truth within 3 s of the server's return: the watch's pauses are at most 2 s.
    assert!(at(0.5) <= Duration::from_secs(3), "median {:?}", at(0.5));
    assert!(at(1.0) <= Duration::from_secs(10), "worst {:?}", at(1.0));
}

fn shadow_frames(state: &AgentStatus, result: &str) -> u64 {
    support::metric(
        state,
        &format!("podlight_shadow_frames_total{{result=\"{result}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_policy_is_compared_on_every_change_and_never_shown() {
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("candidate.wasm"),
        std::fs::read(TESTKIT_WASM).expect("testkit"),
    )
    .expect("write");
    let (tx, rx) = tokio::sync::watch::channel(support::sample("crash-loop"));
    let engine = Arc::new(PolicyEngine::new(EngineOptions::default()).expect("engine"));
    let source = PolicySource {
        dir: Some(dir.path().to_path_buf()),
        name: "priority".into(),
        api: None,
        trust: Default::default(),
    };
    let agent = AgentConfig {
        writer: no_fade(),
        shadow: Some("candidate".into()),
        ..AgentConfig::new(Arc::new(bus.clone()), rx, engine, source)
    }
    .start()
    .await
    .expect("the agent starts");
    let state = Arc::clone(agent.status());

    // The built-in policy drives the stick; the candidate's frame is only reported.
    let hex = |leds: &[Rgb]| leds.iter().map(ToString::to_string).collect::<Vec<_>>();
    let crash = support::sample("crash-loop");
    eventually("the shadow's first comparison", || {
        state.shadow().is_some_and(|s| s.compared >= 1)
    })
    .await;
    let shadow = state.shadow().expect("a shadow");
    assert_eq!(
        shadow.policy.origin,
        dir.path().join("candidate.wasm").display().to_string()
    );
    assert_eq!(shadow.leds, hex(&counts_frame(&crash)), "{shadow:?}");
    assert_eq!(shadow.differs, Some(true), "{shadow:?}");
    eventually("the stick shows the active policy", || {
        bus.leds(SERIAL) == Some(vec![RED; 8])
    })
    .await;
    // Every change is compared again.
    let before = shadow.compared;
    tx.send(support::sample("all-running")).expect("send");
    eventually("a comparison of the new snapshot", || {
        state.shadow().is_some_and(|s| {
            s.compared > before && s.leds == hex(&counts_frame(&support::sample("all-running")))
        })
    })
    .await;
    assert!(shadow_frames(&state, "differs") >= 2, "counted in metrics");
    assert_eq!(
        bus.leds(SERIAL),
        Some(vec![GREEN; 8]),
        "the stick still shows the active policy"
    );

    // A broken candidate is refused like any policy; the last good shadow stays.
    std::fs::write(
        dir.path().join("candidate.wasm"),
        b"\0asm\x0d\0\x01\0garbage",
    )
    .expect("write");
    eventually("the shadow's refusal", || {
        state
            .shadow()
            .is_some_and(|s| s.policy.last_error.is_some())
    })
    .await;
    assert_eq!(
        state.policy().last_error,
        None,
        "the active policy is untouched"
    );
    assert_eq!(
        state.shadow().map(|s| s.policy.origin),
        Some(dir.path().join("candidate.wasm").display().to_string())
    );

    // Swapping the candidate in is an ordinary change: then the two agree.
    std::fs::write(
        dir.path().join("priority.wasm"),
        std::fs::read(TESTKIT_WASM).expect("testkit"),
    )
    .expect("write");
    eventually("the active policy swapped and the frames agree", || {
        state.shadow().is_some_and(|s| s.differs == Some(false))
    })
    .await;
    assert!(shadow_frames(&state, "same") >= 1);
    assert_eq!(
        bus.leds(SERIAL),
        Some(counts_frame(&support::sample("all-running"))),
        "the stick now shows the candidate, as the active policy"
    );
    agent.stop(false).await;
}

/// `podlight_evaluation_seconds_sum`: the time spent evaluating so far.
fn evaluation_seconds(state: &AgentStatus) -> f64 {
    state
        .metrics
        .render(state)
        .lines()
        .find_map(|l| l.strip_prefix("podlight_evaluation_seconds_sum "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_plugin_gets_at_most_a_quarter_of_a_core_and_says_so() {
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let dir = tempfile::tempdir().expect("temp dir");
    // 40 ms of work per evaluation (inside the 50 ms deadline), and "again at once".
    std::fs::write(dir.path().join("priority.json"), "busy 40").expect("settings");
    std::fs::copy(TESTKIT_WASM, dir.path().join("priority.wasm")).expect("plugin");
    let (agent, state, _snapshots) =
        agent_without_cluster(&bus, "all-running", Some(dir.path()), "priority", None).await;
    assert!(state.policy().last_error.is_none(), "{:?}", state.policy());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (evaluations, spent, started) = (
        support::metric(&state, "podlight_evaluations_total"),
        evaluation_seconds(&state),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let wall = started.elapsed().as_secs_f64();
    let share = (evaluation_seconds(&state) - spent) / wall;
    let count = support::metric(&state, "podlight_evaluations_total") - evaluations;
    println!(
        "a busy plugin (40 ms per call, again at once): {count} evaluations in {wall:.1} s, \
         {:.0} % of a core evaluating",
        share * 100.0
    );
    assert!(count > 0, "it is still evaluated");
    // The bound is a quarter, plus one evaluation's worth at either end of the window.
    assert!(share < 0.30, "{:.0} % of a core", share * 100.0);
    assert!(
        support::metric(&state, "podlight_evaluations_throttled_total") > 0,
        "counted as throttled"
    );
    let spacing = state.policy().throttled_spacing_ms;
    assert!(spacing.is_some_and(|ms| ms >= 160), "{spacing:?}");
    agent.stop(false).await;
}

/// A small tmpfs mounted for a test and unmounted however the test ends.
struct TinyDisk {
    path: std::path::PathBuf,
}

impl TinyDisk {
    /// A 256 KiB tmpfs at `path`, filled to the last byte. Needs root (the suite runs
    /// as root for the real node).
    fn full(path: &Path) -> TinyDisk {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=256k",
                "podlight-test",
                &path.to_string_lossy(),
            ])
            .status()
            .expect("mount runs");
        assert!(mounted.success(), "mount a tmpfs (the test needs root)");
        let disk = TinyDisk {
            path: path.to_path_buf(),
        };
        let filler = vec![0u8; 4096];
        let mut file = std::fs::File::create(path.join("filler")).expect("filler");
        use std::io::Write as _;
        while file.write_all(&filler).is_ok() {}
        disk
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_compile_cache_is_said_and_the_policy_runs() {
    let (dirs, policies) = temp_policies();
    let _disk = TinyDisk::full(&dirs.path().join("cache"));
    let mut volume = AtomicDir::new(&policies);
    let testkit = std::fs::read(TESTKIT_WASM).expect("testkit built");
    volume.publish(&[("priority.wasm", &testkit)]);
    let run = Running::start(&policies, dirs, false).await;
    let admin = run.plane.client().await;
    create_pod(&admin, NS, "web", NODE, json!({"app": "web"})).await;
    set_status(&admin, NS, "web", status_for("running")).await;
    // The testkit's frame (running pods on LED 0): the policy runs without a cache.
    let mut counts = vec![Rgb::OFF; 8];
    counts[0] = Rgb::new(0, 1, 0);
    run.shows("the policy, compiled but not cached", &counts)
        .await;
    let policy = run.state.policy();
    assert_eq!(
        policy.sha256,
        hex::encode(Sha256::digest(&testkit)),
        "{policy:?}"
    );
    let problem = policy.cache_problem.unwrap_or_default();
    assert!(
        problem.contains("cannot write the compile cache") && problem.contains("No space left"),
        "the status says why nothing is cached: {problem:?}"
    );
    assert!(run.state.ready().0, "{}", run.state.ready().1);
    // The agent keeps working: a change still reaches the stick.
    set_status(&admin, NS, "web", status_for("crashloop")).await;
    let mut failed = vec![Rgb::OFF; 8];
    failed[0] = Rgb::new(1, 0, 0);
    run.shows("a change after the failed cache write", &failed)
        .await;
}
