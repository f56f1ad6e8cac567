//! The wall clock stepped under a running agent, as NTP does after a suspend or an
//! operator does by hand: libfaketime (Debian's libfaketime) steps the realtime clock of
//! the agent's process alone, its monotonic clock untouched, as a real step does. A
//! silence must neither end early when the clock goes back nor hang on past its end
//! when it goes forward; an animation must keep moving either way.

use podlight_testsupport as support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::cluster::{crash_loop_status, create_node, create_pod, set_status};
use support::control_plane::ControlPlane;
use support::http_client::{agent_leds, free_port, wait_for_leds};

use crate::deploy::{podlight, spawn_agent_with_env};

const NODE: &str = "n1";
const RED: &str = "#320000";
const ACKNOWLEDGED: &str = "#0c0400";
/// The multi-threaded build of libfaketime: the agent's runtime has several threads.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Sets the agent's clock offset, in seconds from the real time.
fn step_clock(file: &Path, offset_seconds: i64) {
    std::fs::write(file, format!("{offset_seconds:+}\n")).expect("the faketime file");
}

/// Samples the agent's LEDs every 100 ms for `span`: the distinct frames seen.
fn frames_during(port: u16, span: Duration) -> Vec<Vec<String>> {
    let until = Instant::now() + span;
    let mut seen: Vec<Vec<String>> = Vec::new();
    while Instant::now() < until {
        let leds = agent_leds(port);
        if !seen.contains(&leds) {
            seen.push(leds);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stepped_clock_neither_ends_a_silence_early_nor_holds_it_nor_stops_an_animation() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} missing: run scripts/setup-test (Debian's libfaketime)"
    );
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    plane.namespace("podlight").await;
    create_node(&client, NODE).await;
    create_pod(&client, "default", "api", NODE, json!({"app": "api"})).await;
    set_status(
        &client,
        "default",
        "api",
        crash_loop_status("backoff", 4, Duration::ZERO),
    )
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let clock = dir.path().join("clock");
    step_clock(&clock, 0);
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).expect("policy dir");
    let port = free_port();
    let clock_file = clock.to_string_lossy().into_owned();
    let (mut agent, _log) = spawn_agent_with_env(
        &plane.kubeconfig,
        NODE,
        port,
        &policies,
        &[],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", &clock_file),
            // Read the offset again at most every second; the monotonic clock (every
            // timer and deadline) stays real.
            ("FAKETIME_CACHE_DURATION", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    wait_for_leds(port, "the crash loop", RED, Duration::from_secs(60));

    // A silence of 8 s (set by the CLI, on the real clock).
    let kubeconfig = plane.kubeconfig.to_string_lossy().into_owned();
    let (ok, _, err) = podlight(&["silence", "api", "--for", "8s", "--kubeconfig", &kubeconfig]);
    assert!(ok, "{err}");
    let silenced_at = Instant::now();
    wait_for_leds(port, "acknowledged", ACKNOWLEDGED, Duration::from_secs(10));

    // The agent's clock an hour back: by its clock the silence has an hour and 8 s
    // to go, so it holds past its real end.
    step_clock(&clock, -3600);
    let real_end = silenced_at + Duration::from_secs(8);
    let until = real_end + Duration::from_secs(4);
    while Instant::now() < until {
        let leds = agent_leds(port);
        assert!(
            leds.iter().all(|l| l == ACKNOWLEDGED),
            "the silence ended early with the clock an hour back: {leds:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // An hour forward of real time: the silence is over by the agent's clock; the
    // light turns red within the agent's wall-clock re-check, not an hour later.
    let stepped = Instant::now();
    step_clock(&clock, 3600);
    let took = wait_for_leds(
        port,
        "red once the stepped clock is past the silence",
        RED,
        Duration::from_secs(30),
    );
    println!(
        "clock: stepped forward an hour past a silence's end → red after {:.1} s",
        stepped.elapsed().as_secs_f64().max(took.as_secs_f64())
    );

    // An animation (the breathing example, while a pod is being deleted) keeps moving
    // through steps either way.
    std::fs::write(
        policies.join("priority.wasm"),
        std::fs::read(support::BREATHE_WASM).expect("the breathing example"),
    )
    .expect("policy");
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), "default");
    pods.delete("api", &kube::api::DeleteParams::default())
        .await
        .expect("a graceful delete: the pod stays, being deleted");
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames_during(port, Duration::from_millis(600)).len() < 3 {
        assert!(Instant::now() < deadline, "the breathing never started");
    }
    for offset in [-3600, 3600] {
        step_clock(&clock, offset);
        // The file is read again within a second; then two seconds of frames.
        std::thread::sleep(Duration::from_millis(1200));
        let frames = frames_during(port, Duration::from_secs(2));
        assert!(
            frames.len() >= 5,
            "the animation stalled with the clock at {offset:+} s: {frames:?}"
        );
    }
    let _ = agent.kill();
    let _ = agent.wait();
}
