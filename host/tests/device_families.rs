//! Lights beyond BlinkStick through the real binary: a WLED controller (emulated on
//! loopback, faithful to its JSON API and realtime UDP protocol) listed, set, held and
//! driven by the cluster light from a real API server; hostile and unreachable
//! controllers refused fast, with a reason.

use podlight_testsupport as support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use podlight::device::sim::wled::{Behaviour, OWN_EFFECT, WledEmulator};
use podlight::frame::Rgb;
use serde_json::{Value, json};
use support::cluster::{create_node, create_pod, set_node_conditions, set_status, status_for};
use support::control_plane::ControlPlane;
use support::http_client::{free_port, get};

fn podlight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(args)
        .output()
        .expect("podlight")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits until `done` holds, for at most `limit`.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a child with SIGTERM, as the kubelet does, and waits for it.
fn terminate(mut child: Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn devices_and_set_reach_a_wled_controller_and_refuse_hostile_ones() {
    let strip = WledEmulator::start(60).expect("emulated WLED controller");
    let address = strip.address();

    // Listed with its family, identity (MAC), LED count from its JSON API.
    let out = podlight(&["devices", "--device", &address, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("devices --json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["family"], "wled");
    assert_eq!(listed[0]["serial"], "a8032a1b2c3d");
    assert_eq!(listed[0]["leds"], 60);
    assert_eq!(listed[0]["path"], address.as_str());
    assert_eq!(listed[0]["access"], "ok");
    let out = podlight(&["devices", "--device", &address, "--leds", "8", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).expect("devices --json");
    assert_eq!(listed[0]["leds"], 8, "fewer LEDs when told");
    let out = podlight(&["devices", "--device", &address]);
    assert!(
        text(&out.stdout).contains("family=wled  model=-  leds=60"),
        "{}",
        text(&out.stdout)
    );

    // `set` without --hold shows the colour and says the controller will not keep it.
    let before = strip.datagrams();
    let out = podlight(&["set", "#102030", "--fade", "0", "--device", &address]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("pass --hold"),
        "{}",
        text(&out.stderr)
    );
    assert!(strip.datagrams() > before, "frames reached the controller");

    // With --hold the frame stays up well past the controller's 2 s timeout; once
    // podlight stops, the controller shows its own effect again.
    let held = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(["set", "blue", "--fade", "0", "--hold", "--device", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("podlight set --hold");
    let blue = vec![Rgb::new(0, 0, 255); 60];
    wait_until(Duration::from_secs(30), "the strip turns blue", || {
        strip.leds() == blue
    });
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(strip.leds(), blue, "held past the controller's timeout");
        std::thread::sleep(Duration::from_millis(100));
    }
    terminate(held);
    wait_until(
        Duration::from_secs(30),
        "back to its own effect after podlight stops",
        || strip.leds() == vec![OWN_EFFECT; 60],
    );

    // Hostile or unreachable controllers: refused within the request deadline,
    // naming the address and why, with no control character from the answer.
    for (behaviour, says) in [
        (Behaviour::Garbage, "not JSON"),
        (Behaviour::ClaimsLeds(1 << 40), "claims 1099511627776 LEDs"),
        (Behaviour::Endless, "larger than"),
        (Behaviour::Silent, "did not answer within"),
    ] {
        strip.set_behaviour(behaviour.clone());
        let started = Instant::now();
        let out = podlight(&["devices", "--device", &address]);
        let took = started.elapsed();
        let error = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{behaviour:?}: {error}");
        assert!(
            error.contains(&address) && error.contains(says),
            "{behaviour:?}: {error}"
        );
        assert!(!error.contains('\u{1b}'), "{error}");
        // The deadline is 1.5 s; generous for a slow machine, far from hanging.
        assert!(
            took < Duration::from_secs(20),
            "{behaviour:?} took {took:?}"
        );
    }
    let out = podlight(&["set", "red", "--device", "wled://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("wled://127.0.0.1:1 did not answer"),
        "{}",
        text(&out.stderr)
    );
    let out = podlight(&["devices", "--device", "wled://"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed address is a usage error"
    );
}

/// The cluster light on a WLED strip: one LED per node from a real API server, the
/// frame held while nothing changes, its family in the report, and the strip back
/// after a power loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_light_drives_a_wled_strip_and_survives_its_power_loss() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    plane.namespace("web").await;
    for node in ["node-a", "node-b"] {
        create_node(&admin, node).await;
        set_node_conditions(&admin, node, &[("Ready", "True")]).await;
        create_pod(
            &admin,
            "web",
            &format!("app-{node}"),
            node,
            json!({"app": "web"}),
        )
        .await;
        set_status(&admin, "web", &format!("app-{node}"), status_for("running")).await;
    }
    let mut strip = WledEmulator::start(60).expect("emulated WLED controller");
    let port = free_port();
    let policies = tempfile::tempdir().expect("temp dir");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(["run", "--scope", "cluster", "--fade-ms", "0", "--device"])
        .arg(strip.address())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--kubeconfig"])
        .arg(&plane.kubeconfig)
        .arg("--policy-dir")
        .arg(policies.path())
        .env("POD_NAME", "podlight-cluster")
        .env("POD_NAMESPACE", "podlight")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podlight run");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    if let Some(stderr) = agent.stderr.take() {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        });
    }
    let shown = |strip: &WledEmulator| -> Vec<String> {
        strip.leds().iter().take(3).map(Rgb::to_string).collect()
    };
    const GREEN: &str = "#001900";
    const RED: &str = "#320000";
    const OFF: &str = "#000000";
    let wait_for = |strip: &WledEmulator, want: [&str; 3], what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while shown(strip) != want {
            assert!(
                Instant::now() < deadline,
                "{what}: the strip shows {:?}; log:\n{}",
                shown(strip),
                log.lock().map(|l| l.join("\n")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(&strip, [GREEN, GREEN, OFF], "one LED per node");
    set_status(&admin, "web", "app-node-b", status_for("crashloop")).await;
    wait_for(&strip, [GREEN, RED, OFF], "node-b's pod fails");
    // Nothing changes for longer than the controller's timeout: still shown.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert!(
            strip.live(),
            "the stream holds the strip while nothing changes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, state) = get(port, "/api/state").expect("state");
    let state: Value = serde_json::from_str(&state).expect("JSON");
    assert_eq!(
        state["report"]["device"],
        json!({"connected": 1, "leds": 60, "families": ["wled"]}),
        "{state}"
    );

    // Power loss: the agent notices, says why it is not ready, and shows the frame
    // again when the controller is back.
    strip.power_off();
    wait_until(Duration::from_secs(60), "the light is missed", || {
        get(port, "/api/state")
            .and_then(|(_, s)| serde_json::from_str::<Value>(&s).ok())
            .is_some_and(|s| s["report"]["device"]["connected"] == 0)
    });
    let (_, state) = get(port, "/api/state").expect("state");
    assert!(state.contains("no light connected"), "{state}");
    strip.power_on().expect("power on");
    wait_for(
        &strip,
        [GREEN, RED, OFF],
        "the frame again after power loss",
    );
    terminate(agent);
}
