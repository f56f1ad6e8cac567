//! `podlight snapshot` against a real API server, replayed through `podlight eval`.

use podlight_testsupport as support;

use std::process::Command;

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
