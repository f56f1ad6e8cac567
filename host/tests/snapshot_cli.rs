//! `podlight snapshot` against a real API server, replayed through `podlight eval`;
//! `podlight record` of a changing node, replayed and tested.

use podlight_testsupport as support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podlight::state::Snapshot;
use serde_json::json;
use support::cluster::{create_node, create_pod, set_status, status_for};
use support::control_plane::ControlPlane;

fn podlight(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_podlight"));
    command
        .args(args)
        .env_remove("NODE_NAME")
        .env_remove("NODE_HOSTNAME")
        .env_remove("KUBECONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("podlight runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_prints_the_nodes_state_for_eval() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    create_node(&admin, "node-s").await;
    create_node(&admin, "node-t").await;
    plane.namespace("app").await;
    create_pod(&admin, "app", "ok", "node-s", json!({"app": "ok"})).await;
    create_pod(&admin, "app", "broken", "node-s", json!({"app": "broken"})).await;
    create_pod(&admin, "app", "other-node", "node-t", json!({"app": "x"})).await;
    set_status(&admin, "app", "ok", status_for("running")).await;
    set_status(&admin, "app", "broken", status_for("imagepull")).await;

    let kubeconfig = plane.kubeconfig.to_string_lossy().into_owned();
    // The node name from NODE_NAME, as in the DaemonSet.
    let out = podlight(
        &["snapshot", "--kubeconfig", &kubeconfig],
        &[("NODE_NAME", "node-s")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let snapshot = Snapshot::from_json(&text).expect("eval-readable JSON");
    let names: Vec<&str> = snapshot.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["broken", "ok"]);
    assert_eq!(snapshot.node.name, "node-s");
    assert_eq!((snapshot.counts.failed, snapshot.counts.running), (1, 1));

    let file = plane.dir().join("node-s.json");
    std::fs::write(&file, &text).expect("write");
    let eval = podlight(
        &[
            "eval",
            "builtin",
            &file.to_string_lossy(),
            "--leds",
            "1",
            "--json",
        ],
        &[],
    );
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    assert!(
        String::from_utf8_lossy(&eval.stdout).contains(r#"{"r":50,"g":0,"b":0}"#),
        "image pull error is red"
    );

    // Each way the cluster can refuse us, said at once with the server's URL.
    let url = format!("https://127.0.0.1:{}", plane.port);
    let refused = |args: &[&str], want: &[&str]| {
        let started = std::time::Instant::now();
        let out = podlight(args, &[]);
        let message = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {message}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{args:?} answered at once, not after retrying: {message}"
        );
        for part in want {
            assert!(message.contains(part), "{args:?} says {part:?}: {message}");
        }
    };
    refused(
        &[
            "snapshot",
            "--kubeconfig",
            &kubeconfig,
            "--node",
            "no-such-node",
        ],
        &["no node named no-such-node", &url],
    );
    let wrong_token = plane.dir().join("wrong-token.kubeconfig");
    std::fs::write(
        &wrong_token,
        std::fs::read_to_string(&kubeconfig)
            .expect("kubeconfig")
            .replace("token: ", "token: wrong"),
    )
    .expect("write");
    refused(
        &[
            "snapshot",
            "--kubeconfig",
            &wrong_token.to_string_lossy(),
            "--node",
            "node-s",
        ],
        &["401 Unauthorized", &url],
    );
    let nobody = plane.service_account_kubeconfig("default", "nobody").await;
    refused(
        &[
            "snapshot",
            "--kubeconfig",
            &nobody.to_string_lossy(),
            "--node",
            "node-s",
        ],
        &[
            "403 Forbidden",
            "system:serviceaccount:default:nobody",
            "nodes",
            &url,
        ],
    );

    // The prototype's variable still works.
    let out = podlight(
        &["snapshot", "--kubeconfig", &kubeconfig],
        &[("NODE_HOSTNAME", "node-t")],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("other-node"));
}

#[test]
fn snapshot_without_a_node_name_or_cluster_says_what_to_do() {
    let out = podlight(&["snapshot"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("no node name") && message.contains("NODE_NAME"),
        "{message}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("kubeconfig");
    std::fs::write(&bad, "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: c\n").expect("write");
    let out = podlight(
        &[
            "snapshot",
            "--node",
            "n",
            "--kubeconfig",
            &bad.to_string_lossy(),
            "--timeout",
            "2",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("https://127.0.0.1:1/") && message.contains("os error 111"),
        "the URL and the OS error: {message}"
    );

    let out = podlight(
        &[
            "snapshot",
            "--node",
            "n",
            "--kubeconfig",
            "/no/such/kubeconfig",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read kubeconfig /no/such/kubeconfig")
    );
}

/// Timeline records (lines) in `file` so far.
fn records(file: &std::path::Path) -> Vec<Snapshot> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| Snapshot::from_json(line).ok())
        .collect()
}

fn wait_for_records(file: &std::path::Path, what: &str, check: impl Fn(&[Snapshot]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check(&records(file)) {
        assert!(
            Instant::now() < deadline,
            "no record {what}: {:?}",
            records(file)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_timeline_replays_and_is_a_test_input() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    create_node(&admin, "node-r").await;
    plane.namespace("app").await;
    create_pod(&admin, "app", "web", "node-r", json!({"app": "web"})).await;
    set_status(&admin, "app", "web", status_for("running")).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let timeline = dir.path().join("node-r.timeline.jsonl");
    let timeline_arg = timeline.to_string_lossy().into_owned();
    let kubeconfig = plane.kubeconfig.to_string_lossy().into_owned();
    let recorder = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(["record", "--node", "node-r", "--kubeconfig", &kubeconfig])
        .args(["--out", &timeline_arg, "--duration", "300"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("podlight record");
    wait_for_records(&timeline, "of the running pod", |r| {
        r.last().is_some_and(|s| s.counts.running == 1)
    });
    // The node changes twice: a pod that cannot pull its image, then it is gone.
    create_pod(&admin, "app", "broken", "node-r", json!({"app": "broken"})).await;
    set_status(&admin, "app", "broken", status_for("imagepull")).await;
    wait_for_records(&timeline, "of the failing pod", |r| {
        r.last().is_some_and(|s| s.counts.failed == 1)
    });
    // SIGTERM ends the recording cleanly, every record on disk.
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGTERM) };
    let out = recorder.wait_with_output().expect("record ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = records(&timeline);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("recorded {} snapshots", recorded.len())),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        recorded.windows(2).all(|w| w[0].now_ms <= w[1].now_ms),
        "records in time order"
    );

    // Replayed as fast as it evaluates: green first, red last, times from the recording.
    let replay = podlight(
        &[
            "replay",
            &timeline_arg,
            "builtin",
            "--speed",
            "0",
            "--json",
            "--leds",
            "2",
        ],
        &[],
    );
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let frames: Vec<serde_json::Value> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON frame"))
        .collect();
    assert_eq!(
        frames.len(),
        recorded.len(),
        "one frame per record (no animation)"
    );
    let green = json!({"r": 0, "g": 25, "b": 0});
    let red = json!({"r": 50, "g": 0, "b": 0});
    assert_eq!(frames[0]["leds"], json!([green, green]));
    assert_eq!(frames[0]["atMs"], 0);
    let last = frames.last().expect("frames");
    assert_eq!(last["leds"], json!([red, red]));
    assert_eq!(
        last["atMs"],
        recorded
            .last()
            .map(|s| s.now_ms - recorded[0].now_ms)
            .unwrap_or(0)
    );
    // On the virtual stick too.
    let shown = podlight(
        &[
            "replay",
            &timeline_arg,
            "builtin",
            "--speed",
            "0",
            "--show",
            "--device",
            "virtual",
        ],
        &[],
    );
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );

    // The timeline as a test input: the frame after its last record.
    let test = dir.path().join("recorded.test.toml");
    std::fs::write(
        &test,
        "plugin = \"builtin\"\nleds = 3\n\n[[step]]\nname = \"the recorded image pull error\"\ntimeline = \"node-r.timeline.jsonl\"\nexpect = \"all #320000\"\n",
    )
    .expect("write");
    let tested = podlight(&["test", &test.to_string_lossy()], &[]);
    assert!(
        tested.status.success(),
        "{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(String::from_utf8_lossy(&tested.stdout).contains("1 passed"));
}
