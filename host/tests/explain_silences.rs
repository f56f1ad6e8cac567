//! Explain, silences and quiet hours against a real API server and authorizer, with a
//! local agent (`podlight run`, virtual stick): `podlight explain --agent` names the
//! failing pod; `podlight silence` turns its LED to the acknowledged colour and the
//! light returns to red on its own when the silence ends; a node in maintenance; a
//! malformed annotation reported as a Warning Event; refusals of the real authorizer
//! name the missing verb.

use podlight_testsupport as support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cluster::{
    crash_loop_status, create_node, create_pod, set_node_conditions, set_status, status_for,
};
use support::control_plane::ControlPlane;
use support::http_client::{agent_leds, free_port, get, wait_for_leds};

use crate::deploy::{podlight, spawn_agent};

const RED: &str = "#320000";
const ACKNOWLEDGED: &str = "#0c0400";
const MAINTENANCE: &str = "#08080c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_pods_and_a_silence_quiets_them_until_it_ends() {
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    plane.namespace("podlight").await;
    create_node(&client, "n1").await;
    set_node_conditions(&client, "n1", &[("Ready", "True")]).await;
    create_pod(&client, "default", "api", "n1", json!({"app": "api"})).await;
    set_status(
        &client,
        "default",
        "api",
        crash_loop_status("backoff", 4, Duration::ZERO),
    )
    .await;
    create_pod(&client, "default", "web", "n1", json!({"app": "web"})).await;
    set_status(&client, "default", "web", status_for("running")).await;

    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = plane.kubeconfig.to_string_lossy().into_owned();
    let (mut agent, _log) = spawn_agent(&plane.kubeconfig, "n1", port, dir.path(), &[]);
    wait_for_leds(port, "the crash loop", RED, Duration::from_secs(60));

    // Explain: straight at the agent (no pod proxy reaches a local process).
    let agent_url = format!("http://127.0.0.1:{port}");
    let asked = Instant::now();
    let (ok, text, err) = podlight(&["explain", "--agent", &agent_url]);
    let took = asked.elapsed();
    assert!(ok, "{err}");
    println!(
        "explain: CLI → answer {:.0} ms (local agent)",
        took.as_secs_f64() * 1000.0
    );
    assert!(text.contains("rule 1: failed pods → #320000"), "{text}");
    assert!(
        text.contains("pod default/api: failed, CrashLoopBackOff, 4 restarts"),
        "{text}"
    );
    assert!(
        !text.contains("default/web"),
        "only the pods behind the colour: {text}"
    );
    let (ok, json, err) = podlight(&["explain", "7", "--agent", &agent_url, "-o", "json"]);
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(json["leds"][0]["led"], 7, "{json}");
    assert_eq!(json["policy"], "builtin", "{json}");
    let (ok, _, err) = podlight(&["explain", "99", "--agent", &agent_url]);
    assert!(!ok && err.contains("LED 99 does not exist"), "{err}");
    let (ok, _, err) = podlight(&["explain", "--agent", "http://127.0.0.1:1"]);
    assert!(!ok && err.contains("cannot reach the agent"), "{err}");

    // The real authorizer refuses a user without rights, naming the verb.
    let viewer = plane.service_account_kubeconfig("default", "viewer").await;
    let viewer = viewer.to_string_lossy().into_owned();
    let (ok, _, err) = podlight(&["explain", "--node", "n1", "--kubeconfig", &viewer]);
    assert!(!ok);
    assert!(
        err.contains("you may not list pods in namespace podlight"),
        "{err}"
    );
    let (ok, _, err) = podlight(&["silence", "api", "--for", "1h", "--kubeconfig", &viewer]);
    assert!(!ok);
    assert!(err.contains("you may not patch pods -n default"), "{err}");

    // A silence for 6 s: acknowledged at once, red again at its end by the clock
    // (no watch event comes then).
    let set_at = Instant::now();
    let (ok, out, err) = podlight(&[
        "silence",
        "api",
        "--for",
        "6s",
        "--reason",
        "known \u{1b}[2Jbroken",
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("pod default/api silenced until"), "{out}");
    let to_ack = wait_for_leds(port, "acknowledged", ACKNOWLEDGED, Duration::from_secs(10));
    println!(
        "silence: CLI → LED {:.0} ms",
        (set_at.elapsed()).as_secs_f64() * 1000.0
    );
    let _ = to_ack;
    let (_, why, _) = podlight(&["explain", "0", "--agent", &agent_url]);
    assert!(why.contains("acknowledged: silenced failed pods"), "{why}");
    assert!(
        why.contains("silenced by system:admin until") || why.contains("silenced by "),
        "{why}"
    );
    assert!(!why.contains('\u{1b}'), "the reason is stripped: {why}");
    let (ok, listed, err) = podlight(&["silence", "--list", "--kubeconfig", &kubeconfig]);
    assert!(ok, "{err}");
    assert!(
        listed.contains("pod default/api  in force until"),
        "{listed}"
    );
    wait_for_leds(
        port,
        "red again when the silence ends",
        RED,
        Duration::from_secs(30),
    );
    let ended_after = set_at.elapsed();
    println!(
        "silence end → LED: red {:.2} s after the 6 s silence was set",
        ended_after.as_secs_f64()
    );
    assert!(
        ended_after >= Duration::from_millis(5900),
        "red again before the silence ended: {ended_after:?}"
    );

    // A malformed annotation: ignored, with a Warning Event naming the pod and format.
    let annotated = plane.kubectl(&[
        "annotate",
        "pod",
        "web",
        "podlight.dev/silence=2h",
        "--overwrite",
    ]);
    assert!(annotated.status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let note = loop {
        let events = plane.kubectl(&[
            "get",
            "events.events.k8s.io",
            "-n",
            "podlight",
            "-o",
            "json",
        ]);
        let events: Value = serde_json::from_slice(&events.stdout).unwrap_or(Value::Null);
        let found = events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|e| {
                (e["reason"] == "MalformedSilence")
                    .then(|| e["note"].as_str().unwrap_or("").to_string())
            });
        if let Some(note) = found {
            break note;
        }
        assert!(
            Instant::now() < deadline,
            "no Warning Event for the malformed silence"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(note.contains("pod default/web"), "{note}");
    assert!(note.contains(r#"{"until": "<RFC 3339 time>""#), "{note}");
    assert_eq!(
        agent_leds(port).first().map(String::as_str),
        Some(RED),
        "nothing else changed"
    );

    // The node in maintenance, then back.
    let (ok, _, err) = podlight(&[
        "silence",
        "node/n1",
        "--for",
        "1h",
        "--reason",
        "disk swap",
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert!(ok, "{err}");
    wait_for_leds(port, "maintenance", MAINTENANCE, Duration::from_secs(10));
    let (ok, _, err) = podlight(&["unsilence", "node/n1", "--kubeconfig", &kubeconfig]);
    assert!(ok, "{err}");
    wait_for_leds(port, "maintenance over", RED, Duration::from_secs(10));

    let _ = agent.kill();
    let _ = agent.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_dim_the_light_and_a_bad_schedule_is_refused_at_start() {
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    create_node(&client, "n1").await;
    set_node_conditions(&client, "n1", &[("Ready", "True")]).await;
    create_pod(&client, "default", "api", "n1", json!({"app": "api"})).await;
    set_status(
        &client,
        "default",
        "api",
        crash_loop_status("backoff", 4, Duration::ZERO),
    )
    .await;
    create_pod(&client, "default", "web", "n1", json!({"app": "web"})).await;
    set_status(&client, "default", "web", status_for("running")).await;
    let dir = tempfile::tempdir().expect("temp dir");

    // A window covering the whole day, at 10 %: every LED dimmed, the policy's colour
    // kept in the explanation.
    let port = free_port();
    let (mut agent, _log) = spawn_agent(
        &plane.kubeconfig,
        "n1",
        port,
        dir.path(),
        &[
            "--quiet-hours",
            "00:00-23:59@10%,23:59-00:00@10%",
            "--time-zone",
            "Europe/Berlin",
        ],
    );
    wait_for_leds(port, "dimmed to 10 %", "#050000", Duration::from_secs(60));
    let explained = get(port, "/api/explain").expect("explain").1;
    let explained: Value = serde_json::from_str(&explained).expect("JSON");
    assert_eq!(explained["leds"][0]["colour"], RED, "{explained}");
    assert_eq!(explained["leds"][0]["shown"], "#050000", "{explained}");
    let _ = agent.kill();
    let _ = agent.wait();

    // Failures kept bright.
    let port = free_port();
    let (mut agent, _log) = spawn_agent(
        &plane.kubeconfig,
        "n1",
        port,
        dir.path(),
        &[
            "--quiet-hours",
            "00:00-23:59@10%,23:59-00:00@10%",
            "--quiet-hours-keep-failures",
        ],
    );
    wait_for_leds(
        port,
        "failures at full brightness",
        RED,
        Duration::from_secs(60),
    );
    let _ = agent.kill();
    let _ = agent.wait();

    for (flags, says) in [
        (
            &["--quiet-hours", "22:00-07:00"][..],
            "HH:MM-HH:MM@PERCENT%",
        ),
        (
            &[
                "--quiet-hours",
                "22:00-07:00@10%",
                "--time-zone",
                "Mars/Olympus",
            ][..],
            "IANA",
        ),
    ] {
        let mut args = vec!["run", "--device", "virtual", "--node", "n1", "--kubeconfig"];
        let kubeconfig = plane.kubeconfig.to_string_lossy().into_owned();
        args.push(&kubeconfig);
        args.extend_from_slice(flags);
        let started = Instant::now();
        let (ok, _, err) = podlight(&args);
        assert!(!ok, "{flags:?} must be refused");
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "refused at once"
        );
    }
}
