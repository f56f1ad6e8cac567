//! The kustomize manifests against a real API server: accepted by server-side dry
//! run, least privilege asked of the real authorizer, and `podlight run` working as
//! the ServiceAccount they create.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::cluster::{create_node, create_pod};
use support::control_plane::ControlPlane;
use support::http_client::{free_port, get};
use support::repo_root;

fn ok(output: &std::process::Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_are_accepted_and_least_privilege() {
    let plane = ControlPlane::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // The manifests as cloned: no build step before an install.
    let deploy = repo_root().join("deploy");
    let render = |dir: &str| {
        ok(
            &plane.kubectl(&["kustomize", &deploy.join(dir).to_string_lossy()]),
            &format!("kustomize {dir}"),
        )
    };
    let rendered = render("base");
    assert!(
        rendered.contains("priority.json") && !rendered.contains("binaryData:"),
        "the base ships settings; the binary embeds the default policy"
    );
    assert!(
        rendered.contains("startupProbe:"),
        "the first compile is covered"
    );
    assert!(!rendered.contains("subPath"), "subPath mounts never update");
    let file = dir.path().join("base.yaml");
    std::fs::write(&file, &rendered).expect("write");

    // The namespace first (a dry run does not create it), then everything else.
    ok(
        &plane.kubectl(&[
            "apply",
            "-f",
            &deploy.join("base/namespace.yaml").to_string_lossy(),
        ]),
        "namespace",
    );
    ok(
        &plane.kubectl(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()]),
        "server-side dry run",
    );
    // Each overlay, as the API server would store it.
    for overlay in ["privileged", "device-plugin", "large-policy"] {
        let rendered = render(&format!("overlays/{overlay}"));
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, &rendered).expect("write");
        ok(
            &plane.kubectl(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()]),
            &format!("server-side dry run of overlays/{overlay}"),
        );
        match overlay {
            "device-plugin" => {
                assert!(rendered.contains("squat.ai/blinkstick"), "{rendered}");
                assert!(
                    rendered.contains("path: /dev/blinkstick/hidraw*"),
                    "only the udev rule's BlinkStick links are offered"
                );
            }
            "large-policy" => {
                assert!(rendered.contains("initContainers:") && rendered.contains("emptyDir:"));
                assert!(rendered.contains("--policy=namespaces"));
            }
            _ => assert!(rendered.contains("privileged: true")),
        }
    }

    ok(
        &plane.kubectl(&[
            "apply",
            "-f",
            &deploy.join("base/rbac.yaml").to_string_lossy(),
        ]),
        "rbac",
    );
    let sa = "--as=system:serviceaccount:podlight:podlight";
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i", sa];
        all.extend_from_slice(args);
        let out = plane.kubectl(&all);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    for allowed in [
        &["list", "pods"][..],
        &["watch", "pods"],
        &["get", "nodes"],
        &["list", "nodes"],
        &["watch", "nodes"],
    ] {
        assert!(can(allowed), "the agent may {allowed:?}");
    }
    assert!(
        can(&["create", "events.events.k8s.io", "-n", "podlight"]),
        "events in its namespace"
    );
    for verb in ["get", "list", "watch"] {
        assert!(
            can(&[verb, "configmaps/podlight-policies", "-n", "podlight"]),
            "{verb} its policies ConfigMap"
        );
    }
    for denied in [
        &["get", "secrets"][..],
        &["get", "secrets", "-n", "podlight"],
        &["patch", "pods"],
        &["delete", "pods"],
        &["get", "configmaps", "-n", "kube-system"],
        &["list", "configmaps", "-n", "default"],
        &["list", "configmaps", "-n", "podlight"],
        &["get", "configmaps/other", "-n", "podlight"],
        &["update", "configmaps/podlight-policies", "-n", "podlight"],
        &["create", "events.events.k8s.io", "-n", "default"],
        &["patch", "nodes"],
    ] {
        assert!(!can(denied), "the agent must not {denied:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podlight_runs_as_the_service_account() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    ok(
        &plane.kubectl(&[
            "apply",
            "-f",
            &repo_root()
                .join("deploy/base/namespace.yaml")
                .to_string_lossy(),
        ]),
        "namespace",
    );
    ok(
        &plane.kubectl(&[
            "apply",
            "-f",
            &repo_root().join("deploy/base/rbac.yaml").to_string_lossy(),
        ]),
        "rbac",
    );
    let kubeconfig = plane
        .service_account_kubeconfig("podlight", "podlight")
        .await;
    create_node(&admin, "stick-node").await;
    plane.namespace("web").await;
    create_pod(
        &admin,
        "web",
        "front",
        "stick-node",
        json!({"app": "front"}),
    )
    .await;

    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args([
            "run",
            "--device",
            "virtual",
            "--fade-ms",
            "0",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--policy-dir")
        .arg(dir.path())
        .env("NODE_NAME", "stick-node")
        .env("POD_NAME", "podlight-test")
        .env("POD_NAMESPACE", "podlight")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podlight run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = Vec::new();
    let yellow = ["#323200"; 8].join(" ");
    loop {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let done = line.starts_with("leds: ") && line.ends_with(&yellow);
            log.push(line);
            if done {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no pending-yellow frame as the ServiceAccount:\n{}",
            log.join("\n")
        );
    }
    // The first frame can come before the HTTP server is up.
    while get(port, "/readyz").map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "never ready: {:?}",
            get(port, "/readyz")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, metrics) = get(port, "/metrics").expect("metrics");
    assert!(
        metrics.contains("podlight_watch_restarts_total 0"),
        "no permission errors:\n{metrics}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
