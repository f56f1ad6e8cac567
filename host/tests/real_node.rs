//! podlight as a user runs it: the image built here (scripts/build-image), a real
//! one-node cluster (scripts/real-node: kubelet, containerd, kube-proxy, the control
//! plane), `kubectl apply --server-side -k` of deploy/base with only the image and the
//! device changed (tests/real_node/kustomization.yaml), and the frames read from the
//! pod's own status API over the pod network. Needs root, like the node.

use podlight_testsupport as support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::helm;
use support::http_client::get_from;
use support::{TESTKIT_WASM, repo_root};

const GREEN: &str = "#001900";
const RED: &str = "#320000";
const OFF: &str = "#000000";
/// The built-in policy's pending and unready colour.
const PENDING: &str = "#323200";
/// The built-in policy's acknowledged (silenced failure) and maintenance colours.
const ACKNOWLEDGED: &str = "#0c0400";
const MAINTENANCE: &str = "#08080c";

/// The running node; `scripts/real-node down` when dropped, whatever happened.
struct RealNode {
    kubeconfig: PathBuf,
}

impl RealNode {
    fn up(sync_frequency: &str) -> RealNode {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/real-node"))
            .arg("up")
            .env("REALNODE_SYNC", sync_frequency)
            .output()
            .expect("scripts/real-node runs");
        assert!(
            out.status.success(),
            "the real node did not come up:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim());
        RealNode { kubeconfig }
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(support::control_plane::bin_dir().join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    /// kubectl that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        succeeded("kubectl", args, self.kubectl(args))
    }

    fn import(&self, archive: &Path, repo: &str) {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/real-node"))
            .arg("import")
            .arg(archive)
            .arg(repo)
            .output()
            .expect("scripts/real-node runs");
        assert!(
            out.status.success(),
            "importing {}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The podlight pod's JSON (the DaemonSet's only pod).
    fn podlight_pod(&self) -> Option<Value> {
        let out = self.kubectl(&[
            "-n",
            "podlight",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=podlight",
            "-o",
            "json",
        ]);
        let list: Value = serde_json::from_slice(&out.stdout).ok()?;
        list["items"]
            .as_array()?
            .iter()
            .find(|p| p["metadata"]["deletionTimestamp"].is_null())
            .cloned()
    }

    /// Waits for a Ready podlight pod; its name and IP.
    fn ready_podlight(&self, limit: Duration) -> (String, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(pod) = self.podlight_pod() {
                let ready = pod["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                if ready {
                    let name = pod["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let ip = pod["status"]["podIP"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    return (name, ip);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no Ready podlight pod within {limit:?}: {}\n{}",
                self.podlight_pod()
                    .map(|p| p["status"].to_string())
                    .unwrap_or_default(),
                String::from_utf8_lossy(&self.kubectl(&["-n", "podlight", "get", "events"]).stdout)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Replaces the policies ConfigMap the way the README says.
    fn apply_policies(&self, files: &[(&str, &Path)]) {
        let mut args = vec![
            "-n".to_string(),
            "podlight".into(),
            "create".into(),
            "configmap".into(),
            "podlight-policies".into(),
            "--dry-run=client".into(),
            "-o".into(),
            "yaml".into(),
        ];
        for (key, path) in files {
            args.push(format!("--from-file={key}={}", path.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let manifest = self.ok(&args);
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("policies.yaml");
        std::fs::write(&file, manifest).expect("write");
        self.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &file.to_string_lossy(),
        ]);
    }
}

impl RealNode {
    /// The last lines of the podlight pod's log (of its previous container with
    /// `previous`), for a failure's message.
    fn agent_log(&self, pod: &str, previous: bool) -> String {
        let mut args = vec!["-n", "podlight", "logs", pod, "--tail", "80"];
        if previous {
            args.push("--previous");
        }
        String::from_utf8_lossy(&self.kubectl(&args).stdout).into_owned()
    }

    /// Waits until the kubelet's copy of the policies ConfigMap in the podlight pod's
    /// volume holds the testkit plugin.
    fn wait_for_mounted_testkit(&self) {
        let uid = self
            .podlight_pod()
            .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_string))
            .expect("the pod's uid");
        let mounted = PathBuf::from(format!(
            "/var/tmp/podlight-real-node/kubelet/pods/{uid}/volumes/kubernetes.io~configmap/policies/priority.wasm"
        ));
        let testkit = std::fs::read(TESTKIT_WASM).expect("testkit");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read(&mounted).ok().as_deref() != Some(&testkit[..]) {
            assert!(
                Instant::now() < deadline,
                "the kubelet never updated {}",
                mounted.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Helm against the node that must succeed (its home under `home`); its stdout.
    fn helm(&self, home: &Path, args: &[&str]) -> String {
        succeeded("helm", args, helm::helm(&self.kubeconfig, home, args))
    }
}

/// The stdout of a command that must have succeeded (else its output, in the panic).
fn succeeded(program: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for RealNode {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/real-node"))
            .arg("down")
            .status();
    }
}

/// The agent's /api/state, read over the pod network.
fn agent_state(pod_ip: &str) -> Option<Value> {
    let (status, body) = get_from(pod_ip, 9102, "/api/state")?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

fn leds(state: &Value) -> Vec<String> {
    state["leds"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the agent shows `want`; how long it took.
fn shows(pod_ip: &str, what: &str, want: &[&str], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let state = agent_state(pod_ip);
        let now = state.as_ref().map(leds).unwrap_or_default();
        if now == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}: the agent shows {now:?}, want {want:?}; policy: {}; pods: {}",
            state
                .as_ref()
                .map(|s| s["policy"].to_string())
                .unwrap_or_default(),
            state.map(|s| s["pods"].to_string()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all(colour: &str) -> Vec<&str> {
    vec![colour; 8]
}

/// A workload pod on the node from the image built with the node.
fn workload(node: &RealNode, name: &str, args: &[&str], memory_limit: Option<&str>) {
    let mut container = serde_json::json!({
        "name": "main", "image": "realnode.local/workload:1", "imagePullPolicy": "Never",
        "args": args,
    });
    if let Some(limit) = memory_limit {
        container["resources"] = serde_json::json!({"limits": {"memory": limit}});
    }
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pod.json");
    std::fs::write(&file, pod.to_string()).expect("write");
    node.ok(&["apply", "-f", &file.to_string_lossy()]);
}

/// The container's main process as the host sees it: (pid, uid line, root mount).
fn agent_process() -> Option<(u32, String, String)> {
    for entry in std::fs::read_dir("/proc").ok()?.filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"/podlight\0run\0") {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let uid = status.lines().find(|l| l.starts_with("Uid:"))?.to_string();
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
        let root = mounts
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/"))?
            .to_string();
        return Some((pid, uid, root));
    }
    None
}

/// The memory the container's cgroup holds (v1), in MiB.
fn cgroup_memory_mib(pid: u32) -> Option<f64> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = cgroups
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))?;
    let usage =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"))
            .ok()?;
    Some(usage.trim().parse::<f64>().ok()? / (1024.0 * 1024.0))
}

/// The final stage of deploy/Dockerfile: (user, entrypoint, command, copied binary).
fn dockerfile_final_stage() -> (String, Vec<String>, Vec<String>, String) {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).expect("Dockerfile");
    let stage = text.rsplit("\nFROM ").next().expect("a final stage");
    let value = |key: &str| {
        stage
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the final stage"))
            .trim()
            .to_string()
    };
    let exec_form = |text: String| -> Vec<String> {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    };
    let copy = value("COPY --from=build ");
    let target = copy
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    (
        value("USER "),
        exec_form(value("ENTRYPOINT ")),
        exec_form(value("CMD ")),
        target,
    )
}

/// The image archive describes what the Dockerfile's final stage builds: the same
/// user, entrypoint and command, and the static binary at the same path.
fn assert_image_matches_dockerfile(archive: &Path, dir: &Path) {
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).expect("dir");
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&layout)
        .status();
    assert!(
        untar.is_ok_and(|s| s.success()),
        "untar {}",
        archive.display()
    );
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let json = |path: PathBuf| -> Value {
        serde_json::from_slice(&std::fs::read(&path).expect("blob")).expect("JSON blob")
    };
    // index.json names the tag's image index; its entries, one image per platform.
    let top = json(layout.join("index.json"));
    let index = json(blob(
        top["manifests"][0]["digest"]
            .as_str()
            .expect("an image index"),
    ));
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["platform"],
        serde_json::json!({"os": "linux", "architecture": "amd64"}),
        "{index}"
    );
    let manifest = json(blob(entry["digest"].as_str().expect("a manifest")));
    let config = json(blob(
        manifest["config"]["digest"].as_str().expect("a config"),
    ));
    let (user, entrypoint, cmd, binary) = dockerfile_final_stage();
    assert_eq!(config["config"]["User"], user.as_str());
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(entrypoint)
    );
    assert_eq!(config["config"]["Cmd"], serde_json::json!(cmd));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(
        layers.len(),
        1,
        "one layer, as COPY onto a static base gives"
    );
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("dir");
    let layer = blob(layers[0]["digest"].as_str().expect("a layer"));
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs)
        .status();
    assert!(untar.is_ok_and(|s| s.success()), "untar the layer");
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    let built = std::fs::read(target_dir.join("static/amd64/podlight"))
        .expect("scripts/build-static's binary");
    let shipped = std::fs::read(rootfs.join(binary.trim_start_matches('/')))
        .expect("the binary in the image");
    assert!(
        built == shipped,
        "the image carries scripts/build-static's binary at {binary}"
    );
}

#[test]
fn the_daemonset_runs_on_a_real_node() {
    assert_root("cgroups, bridges, iptables");
    let images = tempfile::tempdir().expect("temp dir");
    let archive = images.path().join("podlight.tar");
    eprintln!("{}", build_image("amd64", "test", &archive).trim());
    assert_image_matches_dockerfile(&archive, images.path());

    // The kubelet syncs pods every 2 s, so a ConfigMap swap reaches the volume in ≤ 3 s.
    let up = Instant::now();
    let node = RealNode::up("2s");
    node.import(&archive, "realnode.local/podlight");
    node.ok(&["label", "node", "realnode", "podlight.dev/blinkstick=true"]);
    node.ok(&[
        "apply",
        "--server-side",
        "-k",
        &repo_root().join("host/tests/real_node").to_string_lossy(),
    ]);
    let (pod, ip) = node.ready_podlight(Duration::from_secs(180));
    println!(
        "real node: up → podlight Ready in {:.1} s",
        up.elapsed().as_secs_f64()
    );

    // As UID 65532 on a read-only root, admitted at the restricted level.
    let (pid, uid, root) = agent_process().expect("the podlight process on the host");
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65532"),
        "{uid}"
    );
    assert!(
        root.split_whitespace()
            .nth(5)
            .is_some_and(|o| o.split(',').any(|f| f == "ro")),
        "read-only root: {root}"
    );
    let namespace = node.ok(&["get", "namespace", "podlight", "-o", "json"]);
    assert!(namespace.contains("\"pod-security.kubernetes.io/enforce\": \"restricted\""));

    // Its ServiceAccount through the in-cluster config: the node and its own pod.
    let state = agent_state(&ip).expect("the status API over the pod network");
    assert_eq!(state["node"]["name"], "realnode", "{state}");
    assert_eq!(state["ready"], true, "{state}");
    shows(
        &ip,
        "podlight itself, running: green",
        &all(GREEN),
        Duration::from_secs(30),
    );

    // Workloads as the kubelet runs them.
    workload(&node, "sleeper", &[], None);
    shows(
        &ip,
        "a running workload: green",
        &all(GREEN),
        Duration::from_secs(60),
    );
    workload(&node, "crasher", &["exit", "1", "1"], None);
    shows(&ip, "a crash loop: red", &all(RED), Duration::from_secs(90));
    // Through its restarts it stays red.
    let until = Instant::now() + Duration::from_secs(25);
    while Instant::now() < until {
        let now = agent_state(&ip).map(|s| leds(&s)).unwrap_or_default();
        assert_eq!(now, all(RED), "a crash loop flickered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let restarts = node.ok(&[
        "get",
        "pod",
        "crasher",
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert!(
        restarts.trim().parse::<u32>().unwrap_or(0) >= 1,
        "it restarted: {restarts}"
    );
    explain_and_silence(&node, &ip);
    node.ok(&["delete", "pod", "crasher", "--wait=true"]);
    shows(
        &ip,
        "recovered: green",
        &all(GREEN),
        Duration::from_secs(60),
    );
    workload(&node, "hog", &["oom"], Some("16Mi"));
    shows(&ip, "OOMKilled: red", &all(RED), Duration::from_secs(90));
    node.ok(&["delete", "pod", "hog", "--wait=true"]);
    shows(
        &ip,
        "recovered again: green",
        &all(GREEN),
        Duration::from_secs(60),
    );
    let steady_mib = cgroup_memory_mib(pid);

    // A policy swap through the kubelet's own ..data swap, no restart.
    let swap = Instant::now();
    node.apply_policies(&[("priority.wasm", Path::new(TESTKIT_WASM))]);
    let mut counts = all(OFF);
    let took = {
        // The testkit shows running pods on LED 0: podlight and the sleeper.
        counts[0] = "#000200";
        shows(&ip, "the testkit policy", &counts, Duration::from_secs(60))
    };
    println!(
        "real node: ConfigMap apply → new frame in {:.2} s (through the API)",
        swap.elapsed().as_secs_f64().max(took.as_secs_f64())
    );
    // The kubelet's own `..data` swap brings the same bytes into the volume a moment
    // later: recognised by hash, nothing reloads.
    let reloads_ok = || {
        get_from(&ip, 9102, "/metrics").and_then(|(_, body)| {
            body.lines()
                .find(|l| l.starts_with(r#"podlight_policy_reloads_total{result="ok"}"#))
                .map(str::to_string)
        })
    };
    let before = reloads_ok();
    node.wait_for_mounted_testkit();
    let kubelet_swap = swap.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        reloads_ok(),
        before,
        "the kubelet's copy of the same policy reloads nothing"
    );
    println!(
        "real node: the kubelet's volume swap followed {:.2} s after the apply (syncFrequency 2s) and reloaded nothing",
        kubelet_swap.as_secs_f64()
    );
    let swapped_mib = cgroup_memory_mib(pid);
    let restarts = node.ok(&[
        "-n",
        "podlight",
        "get",
        "pod",
        &pod,
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts.trim(), "0", "swapped without a restart");

    // A broken plugin: the colours stay, and a Warning Event names the pod.
    let broken = images.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x0d\0\x01\0garbage").expect("write");
    node.apply_policies(&[("priority.wasm", &broken)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = node.ok(&[
            "-n",
            "podlight",
            "get",
            "events",
            "--field-selector",
            "reason=PolicyReloadFailed",
            "-o",
            "json",
        ]);
        let events: Value = serde_json::from_str(&events).expect("events JSON");
        let on_pod = events["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|e| e["involvedObject"]["name"] == pod.as_str() && e["type"] == "Warning")
        });
        if on_pod {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Warning Event on {pod}: {events}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        agent_state(&ip).map(|s| leds(&s)).unwrap_or_default(),
        counts,
        "the last good policy still shows"
    );

    // Back to the built-in policy: the base's settings alone.
    node.apply_policies(&[(
        "priority.json",
        &repo_root().join("deploy/base/policies/priority.json"),
    )]);
    shows(
        &ip,
        "the built-in policy again",
        &all(GREEN),
        Duration::from_secs(60),
    );

    // The kubelet's SIGTERM turns the LEDs off before the container ends.
    let mut logs = Command::new(support::control_plane::bin_dir().join("kubectl"))
        .arg("--kubeconfig")
        .arg(&node.kubeconfig)
        .args(["-n", "podlight", "logs", "-f", &pod])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs");
    let stdout = logs.stdout.take().expect("log stream");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    node.ok(&["rollout", "restart", "daemonset/podlight", "-n", "podlight"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => lines.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        assert!(
            Instant::now() < deadline,
            "the old pod did not end:\n{}",
            lines.join("\n")
        );
    }
    let _ = logs.wait();
    let frames: Vec<&String> = lines.iter().filter(|l| l.contains("frame shown")).collect();
    let last: Value = frames
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no frame in the JSON log:\n{}", lines.join("\n")));
    assert_eq!(
        last["fields"]["leds"],
        all(OFF).join(" "),
        "the LEDs go off on SIGTERM:\n{}",
        lines.join("\n")
    );
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "every log line is JSON: {line:?}"
        );
    }
    let (_, new_ip) = node.ready_podlight(Duration::from_secs(120));
    shows(
        &new_ip,
        "the restarted pod: green",
        &all(GREEN),
        Duration::from_secs(60),
    );
    println!(
        "real node: podlight container memory (cgroup) steady {:.1} MiB, after a policy swap {:.1} MiB",
        steady_mib.unwrap_or(f64::NAN),
        swapped_mib.unwrap_or(f64::NAN)
    );

    faults(&node);
    device_plugin_overlay(&node);
    helm_install(&node);
}

impl RealNode {
    /// `scripts/real-node stop|resume NAME`.
    fn component(&self, action: &str, name: &str) {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/real-node"))
            .args([action, name])
            .output()
            .expect("scripts/real-node runs");
        assert!(
            out.status.success(),
            "scripts/real-node {action} {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The last `lines` of a component's log (scripts/real-node keeps them).
    fn component_log(&self, name: &str, lines: usize) -> String {
        let log = std::fs::read_to_string(format!("/var/tmp/podlight-real-node/logs/{name}.log"))
            .unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The podlight container's restart count.
    fn agent_restarts(&self) -> u32 {
        self.podlight_pod()
            .and_then(|p| p["status"]["containerStatuses"][0]["restartCount"].as_u64())
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(u32::MAX)
    }

    /// Waits until the node is Ready and the agent has shown green for `hold` without
    /// a break (the node controller may still mark the node NotReady after an outage);
    /// how long until that steady green began.
    fn settled(&self, ip: &str, hold: Duration, limit: Duration) -> Duration {
        let start = Instant::now();
        let mut green_since: Option<Instant> = None;
        loop {
            let ready =
                agent_state(ip).is_some_and(|s| leds(&s) == all(GREEN)) && self.node_is_ready();
            match (ready, green_since) {
                (true, Some(since)) if since.elapsed() >= hold => {
                    return since.duration_since(start);
                }
                (true, None) => green_since = Some(Instant::now()),
                (true, Some(_)) => {}
                (false, _) => green_since = None,
            }
            assert!(
                start.elapsed() < limit,
                "the node and the light did not settle within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Whether the API server answers that the node is Ready.
    fn node_is_ready(&self) -> bool {
        let out = self.kubectl(&[
            "get",
            "node",
            "realnode",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "True"
    }

    /// Waits until the API server answers and the node is Ready again; how long.
    fn node_ready_again(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.node_is_ready() {
                return start.elapsed();
            }
            assert!(start.elapsed() < limit, "the node is not Ready again");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// What the agent showed, every 100 ms, while `during` ran: the frames that were not
/// `want` (an unreachable agent counts as one).
fn watched_while(ip: &str, want: &[&str], during: impl FnOnce()) -> (usize, Vec<Vec<String>>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = std::sync::Arc::clone(&stop);
        let ip = ip.to_string();
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            let (mut samples, mut wrong) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let now = agent_state(&ip).map(|s| leds(&s)).unwrap_or_default();
                samples += 1;
                if now != want {
                    wrong.push(now);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (samples, wrong)
        })
    };
    during();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().expect("the sampler")
}

/// Faults of a real node, one at a time, on a node whose light is green (podlight and
/// the sleeper run): the light must stay right through each and be right after it,
/// with nothing lost. Prints how long each took to be right again.
fn faults(node: &RealNode) {
    let (pod, ip) = node.ready_podlight(Duration::from_secs(60));
    shows(
        &ip,
        "green before the faults",
        &all(GREEN),
        Duration::from_secs(60),
    );
    let restarts = node.agent_restarts();
    let (pid, _, _) = agent_process().expect("the agent's process");

    // The kubelet restarted: the pods keep running, the light does not flicker.
    let started = Instant::now();
    let (samples, wrong) = watched_while(&ip, &all(GREEN), || {
        node.component("stop", "kubelet");
        std::thread::sleep(Duration::from_secs(2));
        node.component("resume", "kubelet");
        node.node_ready_again(Duration::from_secs(120));
    });
    assert!(
        wrong.is_empty(),
        "the light flickered while the kubelet restarted: {wrong:?}"
    );
    assert_eq!(
        node.agent_restarts(),
        restarts,
        "the kubelet's restart restarted podlight"
    );
    assert_eq!(
        agent_process().map(|p| p.0),
        Some(pid),
        "the same agent process"
    );
    println!(
        "real node fault: kubelet restarted → node Ready again in {:.1} s; {samples} frames read, all right",
        started.elapsed().as_secs_f64()
    );

    // containerd restarted: the containers live on in their shims.
    let started = Instant::now();
    let (samples, wrong) = watched_while(&ip, &all(GREEN), || {
        node.component("stop", "containerd");
        std::thread::sleep(Duration::from_secs(2));
        node.component("resume", "containerd");
        node.node_ready_again(Duration::from_secs(120));
    });
    assert!(
        wrong.is_empty(),
        "the light flickered while containerd restarted: {wrong:?}"
    );
    assert_eq!(
        agent_process().map(|p| p.0),
        Some(pid),
        "the same agent process"
    );
    // The kubelet sees the runtime again: a new pod starts, and the light shows it.
    workload(node, "after-containerd", &[], None);
    let waited = node.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/after-containerd",
        "--timeout=180s",
    ]);
    assert!(
        waited.status.success(),
        "no new pod after containerd's restart: {}\n{}\nkubelet: {}",
        String::from_utf8_lossy(&waited.stderr),
        String::from_utf8_lossy(
            &node
                .kubectl(&["describe", "pod", "after-containerd"])
                .stdout
        ),
        node.component_log("kubelet", 40)
    );
    shows(
        &ip,
        "green with the new pod running",
        &all(GREEN),
        Duration::from_secs(60),
    );
    node.ok(&["delete", "pod", "after-containerd", "--wait=true"]);
    println!(
        "real node fault: containerd restarted → a new pod Ready in {:.1} s; {samples} frames read, all right",
        started.elapsed().as_secs_f64()
    );

    // The API server away for 60 s: the last good state stays on the stick; when it
    // is back, a change reaches the stick.
    let (samples, wrong) = watched_while(&ip, &all(GREEN), || {
        node.component("stop", "kube-apiserver");
        std::thread::sleep(Duration::from_secs(60));
    });
    assert!(
        wrong.is_empty(),
        "the light changed while the API server was away: {wrong:?}"
    );
    // A minute without the API server is longer than the node controller's grace
    // period: when it answers again, the controller finds the node's Lease stale and
    // marks the node NotReady and its pods not ready, until the kubelet reports
    // again. The light follows the cluster: the pods' unready colour while they are
    // marked so (never anything else), green once they are Ready again.
    let mut settled = Duration::ZERO;
    let (samples_after, shown_after) = watched_while(&ip, &all(GREEN), || {
        node.component("resume", "kube-apiserver");
        settled = node.settled(&ip, Duration::from_secs(5), Duration::from_secs(300));
    });
    assert!(
        shown_after.iter().all(|leds| *leds == all(PENDING)),
        "after the outage the light showed only green or the pods' unready colour: {shown_after:?}"
    );
    println!(
        "real node fault: after the outage {samples_after} frames read: {} green, {} unready (the pods as the node controller marked them while the node was NotReady)",
        samples_after - shown_after.len(),
        shown_after.len()
    );
    let ghost = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ghost", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "realnode.local/missing:1",
                                 "imagePullPolicy": "Never"}],
                 "terminationGracePeriodSeconds": 1},
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ghost.json");
    std::fs::write(&file, ghost.to_string()).expect("write");
    node.ok(&["apply", "-f", &file.to_string_lossy()]);
    let to_red = shows(
        &ip,
        "a pod that cannot start, after the outage: red",
        &all(RED),
        Duration::from_secs(120),
    );
    node.ok(&["delete", "pod", "ghost", "--wait=true"]);
    shows(&ip, "green again", &all(GREEN), Duration::from_secs(60));
    assert_eq!(
        node.agent_restarts(),
        restarts,
        "the outage restarted podlight"
    );
    println!(
        "real node fault: API server stopped 60 s ({samples} frames read, all right) → the pods Ready and the light green again {:.1} s after it was back, a new failing pod red {:.1} s after its apply",
        settled.as_secs_f64(),
        to_red.as_secs_f64()
    );

    // The agent killed with SIGKILL: the kubelet starts it again; the first right
    // frame comes from the compiled policy in its cache volume.
    let killed = Instant::now();
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -KILL {pid}");
    // The pod keeps its IP: the new container answers on it. Its own container
    // restarted after a failure (exit 137): like any pod's, that shows as failed
    // until it has run for a minute (the crash-loop recovery rule), so the first right
    // frame is red, and green follows. Timed from the kill to the new process and to
    // that first frame (not to the pod's Ready condition, which waits for a probe).
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut started_again = None;
    loop {
        if started_again.is_none() && agent_process().is_some_and(|p| p.0 != pid) {
            started_again = Some(killed.elapsed());
        }
        if started_again.is_some()
            && agent_state(&ip).is_some_and(|s| {
                leds(&s) == all(RED)
                    && s["pods"].as_array().is_some_and(|pods| {
                        pods.iter()
                            .any(|p| p["name"] == pod.as_str() && p["state"] == "failed")
                    })
            })
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no right frame within 180 s of SIGKILL (process started again: {started_again:?}): {:?}",
            agent_state(&ip)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let first_right = killed.elapsed();
    let started_again = started_again.unwrap_or_default();
    // The kubelet reports the restart in its next status update.
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.agent_restarts() != restarts + 1 {
        assert!(
            Instant::now() < deadline,
            "one restart, by the kubelet: {}",
            node.agent_restarts()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = node.agent_log(&pod, false);
    assert!(
        log.lines()
            .any(|l| l.contains("policy active") && l.contains(r#""cache_hit":true"#)),
        "the restarted agent did not load its policy from the compile cache:\n{log}"
    );
    println!(
        "real node fault: agent SIGKILLed → started again by the kubelet after {:.1} s, first right frame (red: its own restart after a failure) {:.1} s after the kill, policy from the compile cache",
        started_again.as_secs_f64(),
        first_right.as_secs_f64()
    );
}

/// deploy/helm/podlight on the node, where kustomize's install was: `helm install`
/// gives a Ready pod, and `helm upgrade --set-file` swaps the policy on it without a
/// restart.
/// `podlight` as a user runs it, with this cluster's admin kubeconfig or another.
fn podlight(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .expect("podlight runs")
}

/// A kubeconfig for ServiceAccount `name` in `default` (a token from the API server),
/// to meet the real authorizer as a user with only the rights given to it.
fn service_account_kubeconfig(node: &RealNode, name: &str, dir: &Path) -> PathBuf {
    node.ok(&["create", "serviceaccount", name]);
    let token = node.ok(&["create", "token", name]);
    let server = node.ok(&[
        "config",
        "view",
        "--raw",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let ca = node.ok(&[
        "config",
        "view",
        "--raw",
        "--minify",
        "--flatten",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    let path = dir.join(format!("{name}.kubeconfig"));
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        server.trim(),
        ca.trim(),
        token.trim()
    );
    std::fs::write(&path, config).expect("kubeconfig written");
    path
}

/// With the crasher crash-looping: `podlight explain` through the API server's pod
/// proxy names it, the real authorizer's refusals say which verb is missing, and a
/// silence set by `podlight silence` turns the light to the acknowledged colour and
/// back to red on its own when it ends; a node in maintenance likewise.
fn explain_and_silence(node: &RealNode, ip: &str) {
    let asked = Instant::now();
    let explained = podlight(
        &node.kubeconfig,
        &["explain", "--node", "realnode", "-n", "podlight"],
    );
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(
        explained.status.success(),
        "explain: {text}{}",
        String::from_utf8_lossy(&explained.stderr)
    );
    println!(
        "real node: podlight explain through the pod proxy answered in {:.2} s",
        asked.elapsed().as_secs_f64()
    );
    assert!(text.contains("rule 1: failed pods"), "{text}");
    assert!(text.contains("pod default/crasher: failed"), "{text}");
    let json = podlight(
        &node.kubeconfig,
        &[
            "explain", "0", "--node", "realnode", "-n", "podlight", "-o", "json",
        ],
    );
    let json: Value = serde_json::from_slice(&json.stdout).expect("explain -o json");
    assert_eq!(json["leds"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["leds"][0]["pods"][0]["name"], "crasher", "{json}");

    // The real authorizer: first no rights at all, then `list pods` without the proxy.
    let dir = tempfile::tempdir().expect("temp dir");
    let viewer = service_account_kubeconfig(node, "viewer", dir.path());
    let refused = podlight(
        &viewer,
        &["explain", "--node", "realnode", "-n", "podlight"],
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("you may not list pods in namespace podlight"),
        "{said}"
    );
    node.ok(&[
        "create",
        "role",
        "list-pods",
        "-n",
        "podlight",
        "--verb=list",
        "--resource=pods",
    ]);
    node.ok(&[
        "create",
        "rolebinding",
        "viewer-list-pods",
        "-n",
        "podlight",
        "--role=list-pods",
        "--serviceaccount=default:viewer",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let said = loop {
        let refused = podlight(
            &viewer,
            &["explain", "--node", "realnode", "-n", "podlight"],
        );
        let said = String::from_utf8_lossy(&refused.stderr).into_owned();
        if said.contains("get pods/proxy") || Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        said.contains("you may not get pods/proxy in namespace podlight"),
        "{said}"
    );
    let silence_refused = podlight(&viewer, &["silence", "crasher", "--for", "1h"]);
    let said = String::from_utf8_lossy(&silence_refused.stderr);
    assert!(said.contains("you may not patch pods -n default"), "{said}");

    // A silence on the crash-looping pod: acknowledged, then red again at its end.
    let silenced = Instant::now();
    let set = podlight(
        &node.kubeconfig,
        &[
            "silence",
            "crasher",
            "--for",
            "40s",
            "--reason",
            "known broken, fix tomorrow",
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let took = shows(
        ip,
        "a silenced crash loop: acknowledged",
        &all(ACKNOWLEDGED),
        Duration::from_secs(30),
    );
    println!("real node: silence → LED {:.2} s", took.as_secs_f64());
    let listed = podlight(&node.kubeconfig, &["silence", "--list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("pod default/crasher  in force until"),
        "{listed}"
    );
    assert!(listed.contains("known broken, fix tomorrow"), "{listed}");
    let why = podlight(
        &node.kubeconfig,
        &["explain", "--node", "realnode", "-n", "podlight"],
    );
    let why = String::from_utf8_lossy(&why.stdout);
    assert!(why.contains("acknowledged"), "{why}");
    assert!(why.contains("silenced by "), "who set it: {why}");
    // The silence ends 40 s after the command read the clock, so no sooner than this.
    let ends = silenced + Duration::from_secs(40);
    shows(
        ip,
        "the silence ended: red again",
        &all(RED),
        Duration::from_secs(90),
    );
    let red_at = Instant::now();
    let offset = if red_at >= ends {
        red_at.duration_since(ends).as_secs_f64()
    } else {
        -ends.duration_since(red_at).as_secs_f64()
    };
    println!("real node: silence end → LED {offset:+.2} s after its end");
    assert!(
        offset > -0.5,
        "red again {offset:.2} s before the silence ended"
    );

    // The node in maintenance, and back.
    let set = podlight(
        &node.kubeconfig,
        &[
            "silence",
            "node/realnode",
            "--for",
            "1h",
            "--reason",
            "kernel upgrade",
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    shows(
        ip,
        "the node in maintenance",
        &all(MAINTENANCE),
        Duration::from_secs(30),
    );
    let unset = podlight(&node.kubeconfig, &["unsilence", "node/realnode"]);
    assert!(
        unset.status.success(),
        "{}",
        String::from_utf8_lossy(&unset.stderr)
    );
    shows(
        ip,
        "maintenance over: red",
        &all(RED),
        Duration::from_secs(30),
    );
}

fn helm_install(node: &RealNode) {
    let removed = Instant::now();
    node.ok(&[
        "delete",
        "--wait=true",
        "--timeout=180s",
        "-k",
        &repo_root()
            .join("host/tests/real_node/device-plugin")
            .to_string_lossy(),
    ]);
    println!(
        "real node: the kustomize install removed in {:.1} s",
        removed.elapsed().as_secs_f64()
    );
    let home = tempfile::tempdir().expect("temp dir");
    let chart = helm::chart();
    let chart = chart.to_string_lossy();
    let helm = |args: &[&str]| node.helm(home.path(), args);
    // As the chart's README says: the base's namespace file, then the chart; the image
    // built here and the emulated stick, since the node has none.
    let installed = Instant::now();
    node.ok(&[
        "apply",
        "-f",
        &repo_root()
            .join("deploy/base/namespace.yaml")
            .to_string_lossy(),
    ]);
    let notes = helm(&[
        "install",
        "podlight",
        &chart,
        "--namespace",
        "podlight",
        "--set",
        "image.repository=realnode.local/podlight",
        "--set",
        "image.tag=test",
        "--set",
        "image.pullPolicy=Never",
        "--set",
        "device.access=virtual",
    ]);
    assert!(
        notes.contains("kubectl label node NODE podlight.dev/blinkstick=true")
            && notes.contains("podlight status -n podlight"),
        "the install says what to do next:\n{notes}"
    );
    let (pod, ip) = node.ready_podlight(Duration::from_secs(180));
    shows(
        &ip,
        "installed by Helm: green",
        &all(GREEN),
        Duration::from_secs(60),
    );
    println!(
        "real node: helm install → podlight Ready and green in {:.1} s",
        installed.elapsed().as_secs_f64()
    );

    // A policy by `helm upgrade --set-file`: the ConfigMap changes, the pod does not.
    let encoded = home.path().join("testkit.b64");
    // `base64 -w0`, as the chart's README has it.
    let base64 = Command::new("base64")
        .args(["-w0", TESTKIT_WASM])
        .output()
        .expect("base64 runs");
    assert!(base64.status.success(), "base64 {TESTKIT_WASM}");
    std::fs::write(&encoded, &base64.stdout).expect("write");
    let upgraded = Instant::now();
    helm(&[
        "upgrade",
        "podlight",
        &chart,
        "--namespace",
        "podlight",
        "--reuse-values",
        "--set-file",
        &format!("policy.wasmBase64={}", encoded.display()),
    ]);
    let mut counts = all(OFF);
    counts[0] = "#000200"; // the testkit: running pods on LED 0, podlight and the sleeper
    shows(
        &ip,
        "the policy from helm upgrade",
        &counts,
        Duration::from_secs(60),
    );
    println!(
        "real node: helm upgrade --set-file → new frame in {:.2} s",
        upgraded.elapsed().as_secs_f64()
    );
    let same = node.podlight_pod().expect("the podlight pod");
    assert_eq!(same["metadata"]["name"], pod.as_str(), "the same pod");
    assert_eq!(
        same["status"]["containerStatuses"][0]["restartCount"], 0,
        "swapped without a restart"
    );
}

/// A stand-in for a stick's hidraw node where the udev rule puts it: a character
/// device (the host's loop-control numbers: harmless to open, and outside the
/// runtime's default device allow-list, so only a device grant lets a container open
/// it), owned root:plugdev with mode 0660 as the rule sets, linked from
/// /dev/blinkstick/. Removed when dropped.
struct StandInStick {
    node: PathBuf,
    link: PathBuf,
    made_dir: bool,
}

impl StandInStick {
    const PLUGDEV: u32 = 46;

    fn create() -> StandInStick {
        let node = PathBuf::from("/dev/podlight-test-hidraw");
        let dir = Path::new("/dev/blinkstick");
        let made_dir = !dir.exists();
        let stick = StandInStick {
            node: node.clone(),
            link: dir.join("hidraw-podlight-test"),
            made_dir,
        };
        let _ = std::fs::remove_file(&node);
        let made = Command::new("mknod")
            .arg(&node)
            .args(["c", "10", "237"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mknod {}", node.display());
        std::os::unix::fs::chown(&node, Some(0), Some(Self::PLUGDEV)).expect("chown");
        std::fs::set_permissions(&node, std::os::unix::fs::PermissionsExt::from_mode(0o660))
            .expect("chmod");
        std::fs::create_dir_all(dir).expect("mkdir /dev/blinkstick");
        let _ = std::fs::remove_file(&stick.link);
        std::os::unix::fs::symlink("../podlight-test-hidraw", &stick.link).expect("link");
        stick
    }
}

impl Drop for StandInStick {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
        let _ = std::fs::remove_file(&self.node);
        if self.made_dir {
            let _ = std::fs::remove_dir(self.link.parent().unwrap_or(Path::new("/nonexistent")));
        }
    }
}

/// What `podlight devices` says inside the podlight pod.
fn devices_in_pod(node: &RealNode, pod: &str) -> String {
    let out = node.kubectl(&["-n", "podlight", "exec", pod, "--", "/podlight", "devices"]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// deploy/overlays/device-plugin for real: the device plugin advertises the stand-in
/// stick, the kubelet grants it to the unprivileged podlight pod, and podlight (UID
/// 65532) can open it read-write — because of the overlay's supplementalGroups, as
/// the pod without them shows.
impl RealNode {
    /// Waits until the device plugin advertises the stand-in stick on the node.
    fn stick_advertised(&self, otherwise: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let allocatable = self.ok(&[
                "get",
                "node",
                "realnode",
                "-o",
                r"jsonpath={.status.allocatable.squat\.ai/blinkstick}",
            ]);
            if allocatable.trim() == "1" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{otherwise}: allocatable {allocatable:?}\n{}",
                self.ok(&[
                    "-n",
                    "kube-system",
                    "logs",
                    "daemonset/generic-device-plugin"
                ])
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// podlight (UID 65532) in `pod` opens the granted stick read-write and is ready.
    fn opens_the_granted_stick(&self, pod: &str, ip: &str, when: &str) {
        let said = devices_in_pod(self, pod);
        assert!(
            said.contains("/dev/blinkstick/hidraw-podlight-test: opens read-write"),
            "{when}: podlight opens the granted node read-write:\n{said}"
        );
        assert!(
            agent_state(ip).is_some_and(|s| s["ready"] == true),
            "{when}: podlight is ready"
        );
    }
}

fn device_plugin_overlay(node: &RealNode) {
    let _stick = StandInStick::create();
    node.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-k",
        &repo_root()
            .join("host/tests/real_node/device-plugin")
            .to_string_lossy(),
    ]);
    node.stick_advertised("the device plugin never advertised the stick");
    let started = Instant::now();
    let pod_granted = |node: &RealNode| {
        let (pod, ip) = node.ready_podlight(Duration::from_secs(180));
        let granted = node.podlight_pod().map(|p| {
            p["spec"]["containers"][0]["resources"]["limits"]["squat.ai/blinkstick"].clone()
        });
        (pod, ip, granted)
    };
    let (mut pod, mut ip, mut granted) = pod_granted(node);
    // The rollout replaces the base's pod with one that asks for the stick.
    while granted != Some(Value::from("1")) {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no podlight pod asking for squat.ai/blinkstick: {granted:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
        (pod, ip, granted) = pod_granted(node);
    }
    node.opens_the_granted_stick(&pod, &ip, "with the grant");
    println!(
        "real node: the device plugin's grant reached podlight in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Fault: the device plugin restarted. The stick stays granted to the running pod
    // (the grant is made when the container is created), and the plugin advertises it
    // again.
    let restarts = node.agent_restarts();
    let restarted = Instant::now();
    node.ok(&[
        "-n",
        "kube-system",
        "delete",
        "pod",
        "-l",
        "app.kubernetes.io/name=generic-device-plugin",
        "--wait=true",
    ]);
    node.ok(&[
        "-n",
        "kube-system",
        "rollout",
        "status",
        "daemonset/generic-device-plugin",
        "--timeout=120s",
    ]);
    node.stick_advertised("the restarted device plugin never advertised the stick again");
    let (same, _) = node.ready_podlight(Duration::from_secs(60));
    assert_eq!(
        same, pod,
        "the device plugin's restart replaced podlight's pod"
    );
    assert_eq!(node.agent_restarts(), restarts, "nor restarted it");
    node.opens_the_granted_stick(&pod, &ip, "after the device plugin's restart");
    println!(
        "real node fault: device plugin restarted → advertising the stick again in {:.1} s; podlight kept its pod and its grant",
        restarted.elapsed().as_secs_f64()
    );

    // Without the supplemental group the same grant is useless, and podlight says why.
    node.ok(&[
        "-n",
        "podlight",
        "patch",
        "daemonset",
        "podlight",
        "--type",
        "json",
        "-p",
        r#"[{"op": "remove", "path": "/spec/template/spec/securityContext/supplementalGroups"}]"#,
    ]);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (next, _) = node.ready_podlight(Duration::from_secs(180));
        if next != pod {
            let said = devices_in_pod(node, &next);
            assert!(
                said.contains("cannot be opened read-write: permission denied")
                    && said.contains("supplementalGroups [46]"),
                "without the group, podlight says what to add:\n{said}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the patched DaemonSet never rolled out"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The node's own registry (scripts/real-node), which containerd pulls from over HTTP.
const NODE_REGISTRY: &str = "10.200.0.1:5000";

/// `scripts/build-image PLATFORMS TAG OUT`; its output.
fn build_image(platforms: &str, tag: &str, out: &Path) -> String {
    let build = Command::new("bash")
        .arg(repo_root().join("scripts/build-image"))
        .args([platforms, tag])
        .arg(out)
        .output()
        .expect("scripts/build-image runs");
    assert!(
        build.status.success(),
        "building the {platforms} image: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    String::from_utf8_lossy(&build.stdout).into_owned()
}

/// An image archive's index (the one its index.json names), its digest, and each
/// platform's manifest digest with the manifest and its config.
struct ImageArchive {
    digest: String,
    index: Value,
    images: Vec<(Value, String, Value, Value)>,
}

fn read_archive(archive: &Path) -> ImageArchive {
    let dir = tempfile::tempdir().expect("temp dir");
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir.path())
        .status();
    assert!(
        untar.is_ok_and(|s| s.success()),
        "untar {}",
        archive.display()
    );
    let json = |digest: &str| -> Value {
        let path = dir
            .path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(&path).expect("blob")).expect("JSON blob")
    };
    let top: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let digest = top["manifests"][0]["digest"]
        .as_str()
        .expect("an index")
        .to_string();
    let index = json(&digest);
    let images = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|entry| {
            let digest = entry["digest"].as_str().expect("digest").to_string();
            let manifest = json(&digest);
            let config = json(manifest["config"]["digest"].as_str().expect("config"));
            (entry["platform"].clone(), digest, manifest, config)
        })
        .collect();
    ImageArchive {
        digest,
        index,
        images,
    }
}

fn assert_root(why: &str) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the real node needs root ({why})"
    );
}

/// Waits for a Ready podlight pod other than `old` (a rollout); its name and IP.
fn rolled_out(node: &RealNode, old: &str, limit: Duration) -> (String, String) {
    let deadline = Instant::now() + limit;
    loop {
        let (pod, ip) = node.ready_podlight(limit);
        if pod != old {
            return (pod, ip);
        }
        assert!(Instant::now() < deadline, "the DaemonSet never rolled out");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The image as a user with a mixed cluster gets it: three platforms under one index
/// (reproducibly), pushed to a registry by scripts/publish-image, installed by Helm and
/// pulled by the kubelet by tag and by digest; then the arm64 and arm/v7 images run as
/// the DaemonSet's pod on this amd64 node through qemu-user (binfmt_misc).
#[test]
fn one_image_for_every_platform_pulled_by_the_kubelet() {
    assert_root("cgroups, bridges, iptables, binfmt_misc");
    let images = tempfile::tempdir().expect("temp dir");
    let platforms = "amd64,arm64,armv7";
    let first = images.path().join("first.tar");
    eprintln!("{}", build_image(platforms, "test", &first).trim());
    let second = images.path().join("second.tar");
    build_image(platforms, "test", &second);
    let archive = read_archive(&first);
    assert_eq!(
        read_archive(&second).digest,
        archive.digest,
        "two builds, one index digest"
    );
    let wanted = [
        serde_json::json!({"os": "linux", "architecture": "amd64"}),
        serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
        serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v7"}),
    ];
    assert_eq!(archive.images.len(), 3, "{}", archive.index);
    let (user, entrypoint, cmd, _) = dockerfile_final_stage();
    for ((platform, _, manifest, config), want) in archive.images.iter().zip(&wanted) {
        assert_eq!(platform, want, "{}", archive.index);
        assert_eq!(config["architecture"], want["architecture"]);
        assert_eq!(config["config"]["User"], user.as_str());
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(entrypoint)
        );
        assert_eq!(config["config"]["Cmd"], serde_json::json!(cmd));
        println!(
            "real node: image {}: layer {} bytes compressed",
            want, manifest["layers"][0]["size"]
        );
    }
    println!(
        "real node: index {} (the same in two builds)",
        archive.digest
    );
    let manifest_of = |architecture: &str| {
        archive
            .images
            .iter()
            .find(|(p, ..)| p["architecture"] == architecture)
            .map(|(_, digest, ..)| digest.clone())
            .expect("a manifest for the platform")
    };

    let node = RealNode::up("2s");
    let repository = format!("{NODE_REGISTRY}/podlight");
    let publish = Command::new("bash")
        .arg(repo_root().join("scripts/publish-image"))
        .arg(format!("{repository}:test"))
        .arg("--to-plain-http")
        .env("PODLIGHT_PLATFORMS", platforms)
        .output()
        .expect("scripts/publish-image runs");
    let said = String::from_utf8_lossy(&publish.stdout);
    assert!(
        publish.status.success(),
        "publishing: {said}{}",
        String::from_utf8_lossy(&publish.stderr)
    );
    assert!(
        said.contains(&format!("{repository}:test@{}", archive.digest)),
        "publish-image names the index it pushed:\n{said}"
    );
    // The registry serves the same index under the tag.
    let head = Command::new("curl")
        .args(["-sfI", "-H"])
        .arg("Accept: application/vnd.oci.image.index.v1+json")
        .arg(format!("http://{NODE_REGISTRY}/v2/podlight/manifests/test"))
        .output()
        .expect("curl runs");
    let headers = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(
        headers.contains(&format!("docker-content-digest: {}", archive.digest)),
        "{headers}"
    );

    // By tag, pulled by the kubelet (imagePullPolicy Always), installed with Helm as
    // the chart's README says: it picks amd64 from the index.
    let home = tempfile::tempdir().expect("temp dir");
    let chart = helm::chart();
    let chart = chart.to_string_lossy().into_owned();
    let helm = |args: &[&str]| {
        node.helm(home.path(), args);
    };
    let upgrade = |more: &[&str]| {
        let mut args = vec![
            "upgrade",
            "podlight",
            chart.as_str(),
            "--namespace",
            "podlight",
            "--reuse-values",
        ];
        args.extend(more);
        helm(&args);
    };
    // A policy swap by `helm upgrade --set-file`, as the chart's README has it.
    let encoded = home.path().join("testkit.b64");
    let base64 = Command::new("base64")
        .args(["-w0", TESTKIT_WASM])
        .output()
        .expect("base64 runs");
    assert!(base64.status.success(), "base64 {TESTKIT_WASM}");
    std::fs::write(&encoded, &base64.stdout).expect("write");
    let testkit = format!("policy.wasmBase64={}", encoded.display());
    node.ok(&["label", "node", "realnode", "podlight.dev/blinkstick=true"]);
    node.ok(&[
        "apply",
        "-f",
        &repo_root()
            .join("deploy/base/namespace.yaml")
            .to_string_lossy(),
    ]);
    let pulled = Instant::now();
    helm(&[
        "install",
        "podlight",
        &chart,
        "--namespace",
        "podlight",
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        "image.tag=test",
        "--set",
        "image.pullPolicy=Always",
        "--set",
        "device.access=virtual",
    ]);
    let (pod, ip) = node.ready_podlight(Duration::from_secs(180));
    println!(
        "real node: helm install, pulled by tag → Ready in {:.1} s",
        pulled.elapsed().as_secs_f64()
    );
    let image_id = node.ok(&[
        "-n",
        "podlight",
        "get",
        "pod",
        &pod,
        "-o",
        "jsonpath={.status.containerStatuses[0].imageID}",
    ]);
    assert!(
        image_id.ends_with(&archive.digest),
        "the pod runs the pushed index: {image_id}"
    );
    let state = agent_state(&ip).expect("the status API");
    assert_eq!(state["agent"]["arch"], "x86_64", "{state}");
    shows(
        &ip,
        "pulled by tag: green",
        &all(GREEN),
        Duration::from_secs(60),
    );

    // By digest (image.digest).
    let by_digest = Instant::now();
    upgrade(&["--set", &format!("image.digest={}", archive.digest)]);
    let (pod, ip) = rolled_out(&node, &pod, Duration::from_secs(180));
    println!(
        "real node: helm upgrade to image.digest, pulled → Ready in {:.1} s",
        by_digest.elapsed().as_secs_f64()
    );
    shows(
        &ip,
        "pulled by digest: green",
        &all(GREEN),
        Duration::from_secs(60),
    );

    // The ARM images, each by its own manifest's digest, under qemu-user. Emulation
    // costs memory (qemu's translated code) and time: the limit is raised for it and
    // the waits are long.
    let binfmt = Command::new("bash")
        .arg(repo_root().join("scripts/real-node"))
        .arg("binfmt")
        .output()
        .expect("scripts/real-node binfmt runs");
    assert!(
        binfmt.status.success(),
        "binfmt_misc: {}",
        String::from_utf8_lossy(&binfmt.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&binfmt.stderr).trim());
    let mut previous = pod;
    let mut crasher = false;
    for (architecture, rust_arch) in [("arm64", "aarch64"), ("arm", "arm")] {
        let started = Instant::now();
        upgrade(&[
            "--set",
            &format!("image.digest={}", manifest_of(architecture)),
            "--set",
            "resources.limits.memory=512Mi",
        ]);
        let (pod, ip) = rolled_out(&node, &previous, Duration::from_secs(300));
        let ready = started.elapsed();
        // Green, or red once the crash-looping workload exists.
        let first = if crasher { RED } else { GREEN };
        shows(
            &ip,
            &format!("{architecture} under qemu: its first right frame"),
            &all(first),
            Duration::from_secs(120),
        );
        let state = agent_state(&ip).expect("the status API");
        assert_eq!(state["agent"]["arch"], rust_arch, "{state}");
        let restarts = node.ok(&[
            "-n",
            "podlight",
            "get",
            "pod",
            &pod,
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState}",
        ]);
        if !restarts.starts_with("0 ") {
            // Said, not failed: emulation makes a slow start; why it restarted is what
            // matters.
            eprintln!(
                "real node: {architecture}: the agent restarted under qemu: {restarts}; its previous log:\n{}",
                node.agent_log(&pod, true)
            );
        }
        println!(
            "real node: {architecture} image by digest → Ready in {:.1} s, first right frame {:.1} s (qemu-user)",
            ready.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        if !crasher {
            workload(&node, "crasher", &["exit", "1", "1"], None);
            crasher = true;
        }
        shows(
            &ip,
            &format!("{architecture}: a crash loop is red"),
            &all(RED),
            Duration::from_secs(120),
        );
        // A policy swap through the ConfigMap applies: the testkit, then back. The
        // status names the new policy as soon as it is in force; its first frame
        // follows one evaluation later (under emulation, visibly later).
        let swap = Instant::now();
        upgrade(&["--set-file", &testkit]);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut in_force = None;
        loop {
            let state = agent_state(&ip);
            if let Some(s) = state
                .as_ref()
                .filter(|s| s["policy"]["origin"] != "builtin")
            {
                in_force.get_or_insert_with(|| swap.elapsed());
                if leds(s) != all(RED) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{architecture}: the swap never applied, or the testkit's frame never replaced the built-in one: {state:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        println!(
            "real node: {architecture}: ConfigMap swap → new policy in {:.1} s, its frame in {:.1} s (qemu-user)",
            in_force.unwrap_or_default().as_secs_f64(),
            swap.elapsed().as_secs_f64()
        );
        // The kubelet's copy of the ConfigMap follows the API within its sync period;
        // the next change waits for it, so the two updates are not in flight together.
        node.wait_for_mounted_testkit();
        upgrade(&["--set", "policy.wasmBase64="]);
        shows(
            &ip,
            &format!("{architecture}: the built-in policy again"),
            &all(RED),
            Duration::from_secs(120),
        );
        // Two changes inside one kubelet sync period, twice: the testkit, and
        // back as soon as the agent runs it — before the kubelet has copied it into
        // the volume. The newer wins, and stays when the kubelet's copies of both reach
        // the volume after it.
        let is_builtin = |state: &Option<Value>| {
            state
                .as_ref()
                .is_some_and(|s| s["policy"]["origin"] == "builtin")
        };
        for _ in 0..2 {
            upgrade(&["--set-file", &testkit]);
            let deadline = Instant::now() + Duration::from_secs(120);
            while is_builtin(&agent_state(&ip)) {
                assert!(
                    Instant::now() < deadline,
                    "{architecture}: the testkit never ran: {:?}; agent log:\n{}",
                    agent_state(&ip).map(|s| s["policy"].to_string()),
                    node.agent_log(&pod, false)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            upgrade(&["--set", "policy.wasmBase64="]);
            // The kubelet's copies follow within about 1.5 sync periods (3 s).
            std::thread::sleep(Duration::from_secs(5));
            let settled = Instant::now() + Duration::from_secs(120);
            loop {
                let state = agent_state(&ip);
                if is_builtin(&state) && state.as_ref().is_some_and(|s| leds(s) == all(RED)) {
                    break;
                }
                assert!(
                    Instant::now() < settled,
                    "{architecture}: two quick changes left {:?}; agent log:\n{}",
                    state.map(|s| s["policy"].to_string()),
                    node.agent_log(&pod, false)
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        println!(
            "real node: {architecture}: two policy changes inside one sync period: the newer holds"
        );
        previous = pod;
    }
}
