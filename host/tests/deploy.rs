//! The kustomize manifests against a real API server: accepted by server-side dry
//! run, least privilege asked of the real authorizer, and `podlight run` working as
//! the ServiceAccount they create.

use podlight_testsupport as support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use podlight::policy::BUILTIN_PRIORITY;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::TESTKIT_WASM;
use support::cluster::{
    apply_policies, create_node, create_pod, set_node_conditions, set_status, status_for,
};
use support::control_plane::ControlPlane;
use support::helm;
use support::http_client::{free_port, get};
use support::repo_root;

/// `podlight run` for `node` with a virtual stick, as a DaemonSet pod would run it
/// (pod name and namespace set), and its log lines as they come.
pub(crate) fn spawn_agent(
    kubeconfig: &Path,
    node: &str,
    port: u16,
    policy_dir: &Path,
    extra: &[&str],
) -> (Child, mpsc::Receiver<String>) {
    spawn_agent_with_env(kubeconfig, node, port, policy_dir, extra, &[])
}

/// [`spawn_agent`] with more environment variables.
pub(crate) fn spawn_agent_with_env(
    kubeconfig: &Path,
    node: &str,
    port: u16,
    policy_dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Child, mpsc::Receiver<String>) {
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
        .args(extra)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--policy-dir")
        .arg(policy_dir)
        .env("NODE_NAME", node)
        .env("POD_NAME", format!("podlight-{node}"))
        .env("POD_NAMESPACE", "podlight")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podlight run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// `podlight ARGS`: exit status, stdout, stderr.
pub(crate) fn podlight(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(args)
        .output()
        .expect("podlight");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

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
    for object in rendered.split("\n---\n") {
        assert!(
            object.contains("app.kubernetes.io/part-of: podlight")
                && object.contains("app.kubernetes.io/version:"),
            "the recommended labels on every object:\n{object}"
        );
    }
    assert!(
        rendered.contains("maxUnavailable: 25%"),
        "rolls a quarter at a time"
    );
    assert!(
        rendered.contains("key: node-role.kubernetes.io/control-plane"),
        "lights sticks on control-plane nodes too"
    );
    let file = dir.path().join("base.yaml");
    std::fs::write(&file, &rendered).expect("write");

    // The namespace first (a dry run does not create it), then everything else.
    create_namespace(&plane);
    ok(
        &plane.kubectl(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()]),
        "server-side dry run",
    );
    // Each overlay, as the API server would store it.
    for overlay in [
        "privileged",
        "device-plugin",
        "large-policy",
        "cluster",
        "cluster-wled",
    ] {
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
                assert!(rendered.contains("namespaces.ref: oci://"), "by reference");
                assert!(rendered.contains("--policy=namespaces"));
                assert!(rendered.contains("secretName: podlight-registry"));
                assert!(
                    !rendered.contains("initContainers:"),
                    "hot-swapped, not copied"
                );
            }
            "cluster-wled" => {
                // The cluster light reaches its strip over the network: no device
                // grant, no plugdev group, any node; the node lights keep theirs.
                let cluster = rendered
                    .split("\n---\n")
                    .find(|o| o.contains("kind: Deployment") && o.contains("podlight-cluster"))
                    .unwrap_or_default();
                assert!(
                    cluster.contains("name: PODLIGHT_DEVICE") && cluster.contains("value: wled://"),
                    "{cluster}"
                );
                for gone in ["squat.ai/blinkstick", "supplementalGroups", "nodeSelector"] {
                    assert!(!cluster.contains(gone), "{gone} in {cluster}");
                }
                assert!(
                    rendered.contains("squat.ai/blinkstick"),
                    "node lights keep sticks"
                );
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
    for verb in ["create", "patch", "delete"] {
        assert!(
            can(&[verb, "leases.coordination.k8s.io", "-n", "podlight"]),
            "{verb} its nodes' status Leases"
        );
    }
    for denied in [
        &[
            "create",
            "leases.coordination.k8s.io",
            "-n",
            "kube-node-lease",
        ][..],
        &["patch", "leases.coordination.k8s.io", "-n", "kube-system"],
        &["get", "secrets"],
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

/// The base's namespace, as a user creates it before either install.
fn create_namespace(plane: &ControlPlane) {
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
}

/// `OBJECTS` as the API server would store them (a server-side dry run), normalised
/// and keyed by kind, namespace and name.
fn stored(plane: &ControlPlane, rendered: &str, dir: &Path, what: &str) -> BTreeMap<String, Value> {
    let file = dir.join(format!("{}.yaml", what.replace(['/', ' ', '='], "-")));
    std::fs::write(&file, rendered).expect("write");
    let out = ok(
        &plane.kubectl(&[
            "apply",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            &file.to_string_lossy(),
        ]),
        &format!("server-side dry run of {what}"),
    );
    let answer: Value = serde_json::from_str(&out).expect("kubectl's JSON");
    let objects = match answer["kind"].as_str() {
        Some("List") => answer["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![answer],
    };
    objects
        .into_iter()
        .map(|object| (helm::identity(&object), helm::normalised(object)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helm_chart_renders_what_kustomize_does_and_each_mode_is_accepted() {
    let plane = ControlPlane::start().await;
    let home = tempfile::tempdir().expect("temp dir");
    let chart = helm::chart();
    let chart_arg = chart.to_string_lossy().into_owned();
    let run_helm = |args: &[&str]| helm::helm(&plane.kubeconfig, home.path(), args);
    let template = |set: &[&str]| {
        let mut args = vec![
            "template",
            "podlight",
            &chart_arg,
            "--namespace",
            "podlight",
        ];
        for value in set {
            args.extend(["--set", value]);
        }
        ok(&run_helm(&args), &format!("helm template {set:?}"))
    };
    ok(&run_helm(&["lint", "--strict", &chart_arg]), "helm lint");

    // The chart installs into a namespace the user creates with the base's own file
    // (Helm keeps its release record there before any object exists).
    create_namespace(&plane);
    let deploy = repo_root().join("deploy");
    // Default values render deploy/base; each device mode the matching overlay (the
    // Namespace and the device plugin's own DaemonSet, named differently, aside).
    for (kustomization, access) in [
        ("base", "none"),
        ("overlays/privileged", "privileged"),
        ("overlays/device-plugin", "deviceplugin"),
    ] {
        let kustomized = ok(
            &plane.kubectl(&["kustomize", &deploy.join(kustomization).to_string_lossy()]),
            kustomization,
        );
        let set = format!("device.access={access}");
        let charted = if access == "none" {
            template(&[])
        } else {
            template(&[&set])
        };
        assert!(
            !charted.contains("kind: Namespace"),
            "the chart does not own the namespace"
        );
        let mut from_kustomize = stored(&plane, &kustomized, home.path(), kustomization);
        let mut from_chart = stored(&plane, &charted, home.path(), &set);
        from_kustomize.retain(|id, _| {
            !id.starts_with("Namespace ") && id != "DaemonSet kube-system/generic-device-plugin"
        });
        let plugin = from_chart.remove("DaemonSet kube-system/podlight-device-plugin");
        assert_eq!(
            plugin.is_some(),
            access == "deviceplugin",
            "the device plugin comes with deviceplugin access only"
        );
        assert_eq!(
            from_chart.keys().collect::<Vec<_>>(),
            from_kustomize.keys().collect::<Vec<_>>(),
            "{access}: the same objects"
        );
        for (id, object) in &from_kustomize {
            assert_eq!(
                &from_chart[id], object,
                "{access}: {id} differs between the chart and {kustomization}"
            );
        }
    }
    // The emulated stick, and values that change the agent's flags.
    let rendered = template(&[
        "device.access=virtual",
        "agent.fadeMs=0",
        "agent.brightnessCap=64",
        "agent.namespaces={web,db}",
        "agent.mirror=true",
        "policy.name=ops",
        "podMonitor.enabled=true",
        "tolerations=null",
        "priorityClassName=system-node-critical",
        "commonLabels.team=lights",
    ]);
    for flag in [
        "- --device=virtual",
        "- --fade-ms=0",
        "- --brightness-cap=64",
        "- --namespace=web,db",
        "- --mirror",
        "- --policy=ops",
        "ops.json:",
        "priorityClassName: system-node-critical",
        "kind: PodMonitor",
    ] {
        assert!(rendered.contains(flag), "{flag} rendered:\n{rendered}");
    }
    assert!(
        !rendered.contains("tolerations:"),
        "tolerations can be turned off"
    );
    for object in rendered.split("\n---\n").filter(|o| o.contains("kind:")) {
        assert!(
            object.contains("team: lights"),
            "commonLabels everywhere:\n{object}"
        );
    }
    // Cluster scope: one agent, a Deployment on the desk stick's node, whose own
    // ClusterRole may only list and watch nodes and pods.
    let cluster = template(&[
        "scope=cluster",
        "device.access=virtual",
        "nodeSelector.podlight\\.dev/blinkstick=null",
        "nodeSelector.podlight\\.dev/cluster-light=desk",
    ]);
    let objects = stored(&plane, &cluster, home.path(), "cluster scope");
    assert!(
        objects.keys().all(|k| !k.starts_with("DaemonSet ")),
        "{:?}",
        objects.keys()
    );
    let deployment = &objects["Deployment podlight/podlight"];
    assert_eq!(deployment["spec"]["replicas"].as_f64(), Some(1.0));
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(
        pod["containers"][0]["args"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("--scope=cluster"))),
        "{pod}"
    );
    assert_eq!(
        pod["nodeSelector"],
        json!({"podlight.dev/cluster-light": "desk"})
    );
    assert_eq!(
        pod["containers"][0]["resources"]["limits"]["memory"], "512Mi",
        "sized for the cluster's pods"
    );
    // The cluster light on a WLED strip: its address as the device, nothing of USB.
    let wall = template(&[
        "scope=cluster",
        "device.access=wled",
        "device.wled=wled://wall.home.arpa:8080",
    ]);
    let wall = stored(&plane, &wall, home.path(), "cluster scope on WLED");
    let pod = &wall["Deployment podlight/podlight"]["spec"]["template"]["spec"];
    assert!(
        pod["containers"][0]["args"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("--device=wled://wall.home.arpa:8080"))),
        "{pod}"
    );
    assert!(
        pod["securityContext"]["supplementalGroups"].is_null(),
        "{pod}"
    );
    assert!(
        !pod["containers"][0]["resources"]
            .to_string()
            .contains("squat.ai"),
        "{pod}"
    );
    assert_eq!(
        objects["ClusterRole /podlight"]["rules"],
        json!([{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["list", "watch"]}])
    );
    // The PodMonitor against the Prometheus Operator's API (its CRD declared here with
    // the operator's group, version and kind; the operator's own schema is not served).
    declare_operator_kind(&plane, home.path(), "PodMonitor", "podmonitors");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let monitored = stored(&plane, &rendered, home.path(), "virtual with a PodMonitor");
        if let Some(monitor) = monitored.get("PodMonitor podlight/podlight") {
            assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], "http");
            assert_eq!(
                monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
                "podlight"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the PodMonitor is never accepted"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Layers, alerts from Alertmanager with credentials from a Secret, and the
    // alerting rules on podlight's own metrics, as the API server would store them.
    declare_operator_kind(&plane, home.path(), "PrometheusRule", "prometheusrules");
    let alerting = template(&[
        "policy.layers[0].name=alerts",
        "policy.layers[0].settings.otherwise=see-through",
        "policy.layers[1].name=incident",
        "policy.layers[1].reference=oci://registry.example.com/podlight/incident:v1",
        "alertmanager.url=http://alertmanager-operated.monitoring:9093",
        "alertmanager.nodeLabel=instance",
        "alertmanager.secret.name=alertmanager-auth",
        "alertmanager.secret.tokenKey=token",
        "alertmanager.secret.caKey=ca.crt",
        "prometheusRule.enabled=true",
        "prometheusRule.labels.release=prometheus",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let objects = loop {
        let objects = stored(&plane, &alerting, home.path(), "layers and alerts");
        if objects.contains_key("PrometheusRule podlight/podlight") {
            break objects;
        }
        assert!(
            Instant::now() < deadline,
            "the PrometheusRule is never accepted"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let policies = &objects["ConfigMap podlight/podlight-policies"]["data"];
    // (Settings read back as JSON, as the normalised objects hold them.)
    assert_eq!(policies["alerts.json"], json!({"otherwise": "see-through"}));
    assert_eq!(policies["incident.json"], json!({}));
    assert_eq!(
        policies["incident.ref"],
        "oci://registry.example.com/podlight/incident:v1"
    );
    let daemonset = objects["DaemonSet podlight/podlight"].to_string();
    for wired in [
        "--layer=alerts",
        "--layer=incident",
        "--alertmanager=http://alertmanager-operated.monitoring:9093",
        "--alertmanager-node-label=instance",
        "--alertmanager-token-file=/etc/podlight/alertmanager/token",
        "--alertmanager-ca=/etc/podlight/alertmanager/ca.crt",
        "\"secretName\":\"alertmanager-auth\"",
    ] {
        assert!(daemonset.contains(wired), "{wired} in {daemonset}");
    }
    let rule = &objects["PrometheusRule podlight/podlight"];
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .map(|rules| rules.iter().filter_map(|r| r["alert"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        alerts.contains(&"PodlightPolicyReloadsFailing") && alerts.contains(&"PodlightAlertsStale"),
        "{rule}"
    );

    // A policy by reference, its registry's credentials and the keys it must be signed
    // with, as the API server would store them.
    let referenced = template(&[
        "policy.reference=oci://registry.example.com/podlight/namespaces:v1",
        "policy.signature=c2lnbmF0dXJl",
        "registry.authSecret=regcred",
        "signing.publicKeys.cosign\\.pub=-----BEGIN PUBLIC KEY-----\\nMFkw\\n-----END PUBLIC KEY-----",
    ]);
    let objects = stored(&plane, &referenced, home.path(), "a referenced policy");
    let policies = &objects["ConfigMap podlight/podlight-policies"];
    assert_eq!(
        policies["data"]["priority.ref"],
        "oci://registry.example.com/podlight/namespaces:v1"
    );
    assert_eq!(policies["data"]["priority.sig"], "c2lnbmF0dXJl");
    assert!(
        objects["ConfigMap podlight/podlight-keys"]["data"]["cosign.pub"]
            .as_str()
            .is_some_and(|pem| pem.contains("BEGIN PUBLIC KEY"))
    );
    let daemonset = objects["DaemonSet podlight/podlight"].to_string();
    for wired in [
        "--verify-key=/etc/podlight/keys",
        "PODLIGHT_REGISTRY_AUTH",
        "\"secretName\":\"regcred\"",
    ] {
        assert!(daemonset.contains(wired), "{wired} in {daemonset}");
    }

    // A wrong value fails at install, naming the value and what it may be.
    for (set, says) in [
        ("device.access=usb", "/device/access"),
        ("device.access=wled", "device.wled"),
        ("device.wled=http://wall", "/device/wled"),
        ("agnet.fadeMs=0", "'agnet' not allowed"),
        ("agent.brightnessCap=300", "/agent/brightnessCap"),
        ("image.digest=latest", "/image/digest"),
        ("policy.reference=ghcr.io/x:v1", "/policy/reference"),
    ] {
        let out = run_helm(&["template", "podlight", &chart_arg, "--set", set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(says),
            "--set {set} must fail naming {says}: {stderr}"
        );
    }

    // Every value is documented in the chart's README.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart.join("values.schema.json")).expect("the schema"),
    )
    .expect("the schema is JSON");
    let readme = std::fs::read_to_string(chart.join("README.md")).expect("the chart's README");
    let mut leaves = Vec::new();
    schema_leaves(&schema, "", &mut leaves);
    assert!(leaves.len() > 30, "{leaves:?}");
    for leaf in leaves {
        assert!(
            readme.contains(&format!("`{leaf}`")),
            "the chart's README documents `{leaf}`"
        );
    }
}

/// Declares one of the Prometheus Operator's kinds (its group, version and kind; the
/// operator's own schema is not served) so the API server stores objects of it.
fn declare_operator_kind(plane: &ControlPlane, dir: &Path, kind: &str, plural: &str) {
    let crd = dir.join(format!("{plural}-crd.json"));
    std::fs::write(
        &crd,
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
            "spec": {
                "group": "monitoring.coreos.com",
                "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                }]
            }
        })
        .to_string(),
    )
    .expect("write");
    ok(
        &plane.kubectl(&["apply", "-f", &crd.to_string_lossy()]),
        &format!("the {kind} CRD"),
    );
}

/// The dotted paths of a values schema's leaf properties.
fn schema_leaves(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    match schema["properties"].as_object() {
        Some(properties) => {
            for (name, child) in properties {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                schema_leaves(child, &path, out);
            }
        }
        None => out.push(prefix.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podlight_runs_as_the_service_account() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    create_namespace(&plane);
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
    let (mut child, rx) = spawn_agent(&kubeconfig, "stick-node", port, dir.path(), &[]);
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
    assert!(
        metrics.contains("podlight_watch_lists_total{mode=\"paged\"} 2")
            && metrics.contains("podlight_watch_lists_total{mode=\"streaming\"} 0"),
        "a node's pods and its node listed page by page (from the API server's index):\n{metrics}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// An apply's count of one resource and verb in the API server's own metrics.
fn requests(plane: &ControlPlane, resource: &str, verb: &str) -> u64 {
    let metrics = ok(&plane.kubectl(&["get", "--raw", "/metrics"]), "metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| {
            l.contains(&format!("resource=\"{resource}\""))
                && l.contains(&format!("verb=\"{verb}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_reports_what_it_runs_and_status_wait_follows_a_rollout() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    for file in ["namespace.yaml", "rbac.yaml"] {
        let path = repo_root().join("deploy/base").join(file);
        ok(
            &plane.kubectl(&["apply", "-f", &path.to_string_lossy()]),
            file,
        );
    }
    let kubeconfig = plane
        .service_account_kubeconfig("podlight", "podlight")
        .await;
    let nodes = ["node-a", "node-b", "node-c"];
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache").to_string_lossy().into_owned();
    let mut agents = Vec::new();
    for node in nodes {
        create_node(&admin, node).await;
        let port = free_port();
        let mut extra = vec![
            "--policy-configmap",
            "podlight-policies",
            "--cache-dir",
            &cache,
        ];
        // node-c also tries a candidate beside its policy, as an author would.
        if node == "node-c" {
            extra.extend(["--shadow-policy", "candidate"]);
        }
        let (child, log) = spawn_agent(&kubeconfig, node, port, dir.path(), &extra);
        agents.push((child, log, port));
    }
    let admin_config = plane.kubeconfig.to_string_lossy().into_owned();
    let status = |extra: &[&str]| {
        let mut args = vec!["status", "--kubeconfig", &admin_config];
        args.extend_from_slice(extra);
        podlight(&args)
    };

    // Every agent, running as the ServiceAccount, reports the built-in policy.
    let builtin = hex::encode(Sha256::digest(BUILTIN_PRIORITY));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, table, _) = status(&[]);
        let rows: Vec<&str> = table.lines().skip(1).collect();
        if rows.len() == 3 && rows.iter().all(|r| r.contains(&builtin[..12])) {
            for (row, node) in rows.iter().zip(nodes) {
                assert!(row.starts_with(node), "{table}");
                assert!(row.contains("builtin"), "{table}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "not every node reports: {table}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The status page shows its own node's report and where it goes.
    let (_, state) = get(agents[0].2, "/api/state").expect("the status page's state");
    let state: serde_json::Value = serde_json::from_str(&state).expect("JSON");
    assert_eq!(state["report"]["node"], "node-a");
    assert_eq!(state["report"]["policy"]["sha256"], builtin.as_str());
    assert_eq!(state["publishing"]["lease"], "podlight/podlight-node-a");
    assert!(state["publishing"]["error"].is_null(), "{state}");

    // A shadowed trial on a live node: the candidate comes with the ConfigMap, node-c
    // evaluates it beside the built-in policy and reports how its frames differ;
    // every node still runs the built-in policy.
    let testkit = std::fs::read(TESTKIT_WASM).expect("testkit built");
    let testkit_sha = hex::encode(Sha256::digest(&testkit));
    plane.namespace("app").await;
    create_pod(&admin, "app", "web", "node-c", json!({"app": "web"})).await;
    set_status(&admin, "app", "web", status_for("running")).await;
    apply_policies(&admin, &[("candidate.wasm", &testkit)]).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let shadow = loop {
        let (_, state) = get(agents[2].2, "/api/state").expect("node-c's state");
        let state: serde_json::Value = serde_json::from_str(&state).expect("JSON");
        if state["shadow"]["policy"]["sha256"] == testkit_sha.as_str()
            && state["shadow"]["differs"] == true
        {
            assert_eq!(state["policy"]["sha256"], builtin.as_str(), "{state}");
            break state["shadow"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "node-c never compared the candidate: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        shadow["policy"]["origin"],
        "configmap podlight/podlight-policies, key candidate.wasm"
    );
    // A running pod: green on every LED for the built-in policy, a count on LED 0
    // for the candidate.
    assert_eq!(shadow["leds"][0], "#000100", "{shadow}");
    let (_, table, _) = status(&["--policy-sha256", &builtin]);
    assert_eq!(table.lines().skip(1).count(), 3, "{table}");

    // A rollout through the API: `status --wait` returns once every node runs it.
    let applies_before = requests(&plane, "leases", "APPLY");
    let started = Instant::now();
    apply_policies(&admin, &[("priority.wasm", &testkit)]).await;
    let (done, table, said) = status(&[
        "--wait",
        "--policy-sha256",
        &testkit_sha,
        "--timeout",
        "120",
    ]);
    let rollout_took = started.elapsed();
    assert!(done, "the rollout completes: {said}\n{table}");
    assert!(said.contains("runs on all 3 nodes"), "{said}");
    // The test kubeconfig skips TLS verification: the client library's warning about
    // it is not for a command's user.
    assert!(
        !said.contains("WARN") && !said.contains("bypass"),
        "library noise on a command's terminal: {said}"
    );
    assert_eq!(table.matches(&testkit_sha[..12]).count(), 3, "{table}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let applies = requests(&plane, "leases", "APPLY") - applies_before;
    println!(
        "rollout of one policy to 3 agents, apply → `status --wait` done: {rollout_took:?}; \
         status Lease applies meanwhile: {applies} ({:.1} per node; heartbeats every 20 s add to it)",
        applies as f64 / 3.0
    );

    // A broken plugin: every node refuses it, and `--wait` says so without waiting
    // for the timeout, naming each node and its error.
    let broken: &[u8] = b"\0asm\x0d\0\x01\0garbage";
    let broken_sha = hex::encode(Sha256::digest(broken));
    apply_policies(&admin, &[("priority.wasm", broken)]).await;
    let started = Instant::now();
    let (done, table, said) =
        status(&["--wait", "--policy-sha256", &broken_sha, "--timeout", "120"]);
    assert!(!done, "a refused rollout fails: {table}");
    assert!(
        started.elapsed() < Duration::from_secs(100),
        "it fails before the timeout"
    );
    assert!(
        said.contains(&format!("policy {} was refused on", &broken_sha[..12])),
        "{said}"
    );
    for node in nodes {
        assert!(said.contains(&format!("{node} (")), "names {node}: {said}");
    }
    assert!(said.contains("priority"), "says what is wrong: {said}");
    assert!(table.contains("FAILED"), "{table}");
    // A compressed plugin refused: `--wait` finds the refusal at once by the sha256
    // of the `.wasm` inside as well as by the `.wasm.gz`'s.
    let inner: &[u8] = b"\0asm\x0d\0\x01\0compressed garbage";
    let gz = gzip(inner);
    apply_policies(&admin, &[("priority.wasm.gz", &gz)]).await;
    for sha in [
        hex::encode(Sha256::digest(inner)),
        hex::encode(Sha256::digest(&gz)),
    ] {
        let started = Instant::now();
        let (done, _, said) = status(&["--wait", "--policy-sha256", &sha, "--timeout", "120"]);
        assert!(!done && said.contains("was refused on"), "{said}");
        assert!(
            started.elapsed() < Duration::from_secs(100),
            "the refusal ends the wait before the timeout: {said}"
        );
    }
    // …and each keeps the last good policy, so the earlier rollout still holds.
    let (holds, _, said) = status(&["--policy-sha256", &testkit_sha]);
    assert!(holds, "the last good policy runs on: {said}");

    // An agent that stops cleanly takes its report with it.
    let (mut child, _, _) = agents.pop().expect("node-c's agent");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let (_, table, _) = status(&[]);
    assert_eq!(
        table.lines().count(),
        1 + 2 + 2,
        "two nodes and their errors: {table}"
    );
    assert!(!table.contains("node-c"), "{table}");
    // A policy no node runs: `--wait` gives up at the timeout, saying where each is.
    let (done, _, said) = status(&[
        "--wait",
        "--policy-sha256",
        &"0".repeat(64),
        "--timeout",
        "2",
    ]);
    assert!(!done);
    assert!(said.contains("is not on every node after 2 s"), "{said}");
    assert!(
        said.contains("node-a (runs") && said.contains("node-b (runs"),
        "{said}"
    );

    // Nodes the DaemonSet should run on whose agent never reported (its pod pending,
    // unpullable, crashing): named with their pod's state, as `kubectl rollout status`
    // compares with the desired count. The real DaemonSet controller makes the pods.
    create_node(&admin, "node-d").await;
    for node in ["node-a", "node-b", "node-c", "node-d"] {
        ok(
            &plane.kubectl(&["label", "node", node, "podlight.dev/blinkstick=true"]),
            "label",
        );
        // What the node lifecycle controller does once a kubelet reports Ready: the
        // API server taints every new node not-ready, which DaemonSet pods do not
        // tolerate for scheduling.
        let _ = plane.kubectl(&[
            "taint",
            "node",
            node,
            "node.kubernetes.io/not-ready:NoSchedule-",
        ]);
    }
    let daemonset = repo_root().join("deploy/base/daemonset.yaml");
    ok(
        &plane.kubectl(&[
            "apply",
            "-n",
            "podlight",
            "-f",
            &daemonset.to_string_lossy(),
        ]),
        "the DaemonSet",
    );
    let _controllers = plane.start_controllers("daemonset");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pods = plane.kubectl(&[
            "get",
            "pods",
            "-n",
            "podlight",
            "-l",
            "app.kubernetes.io/name=podlight",
            "-o",
            "name",
        ]);
        if String::from_utf8_lossy(&pods.stdout).lines().count() == 4 {
            break;
        }
        if Instant::now() >= deadline {
            let seen = plane.kubectl(&[
                "get",
                "daemonsets,pods,events",
                "-n",
                "podlight",
                "-o",
                "wide",
            ]);
            let log = std::fs::read_to_string(plane.dir().join("controller-manager.log"))
                .unwrap_or_default();
            let log: Vec<&str> = log.lines().filter(|l| !l.contains("flags.go")).collect();
            panic!(
                "the DaemonSet controller made no pods: {}{}\n{}",
                String::from_utf8_lossy(&seen.stdout),
                String::from_utf8_lossy(&seen.stderr),
                log.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (done, _, said) = status(&["--wait", "--policy-sha256", &testkit_sha, "--timeout", "3"]);
    assert!(!done, "two nodes have no agent: {said}");
    for node in ["node-c", "node-d"] {
        assert!(
            said.contains(&format!("{node} (no report yet; its pod podlight-")),
            "names {node}: {said}"
        );
    }
    assert!(said.contains("Pending, not scheduled"), "{said}");
    assert!(
        !said.contains("node-a (") && !said.contains("node-b ("),
        "{said}"
    );
    // Someone who may read the reports but not the workloads is told what is missing.
    ok(
        &plane.kubectl(&["create", "serviceaccount", "-n", "podlight", "reader"]),
        "reader",
    );
    ok(
        &plane.kubectl(&[
            "create",
            "role",
            "-n",
            "podlight",
            "lease-reader",
            "--verb=list",
            "--resource=leases",
        ]),
        "role",
    );
    ok(
        &plane.kubectl(&[
            "create",
            "rolebinding",
            "-n",
            "podlight",
            "lease-reader",
            "--role=lease-reader",
            "--serviceaccount=podlight:reader",
        ]),
        "binding",
    );
    let reader = plane.service_account_kubeconfig("podlight", "reader").await;
    let (_, _, said) = podlight(&[
        "status",
        "--kubeconfig",
        &reader.to_string_lossy(),
        "--policy-sha256",
        &testkit_sha,
    ]);
    assert!(
        said.contains("cannot be named")
            && said.contains("cannot list resource \"daemonsets\"")
            && said.contains("list on daemonsets, deployments and pods"),
        "{said}"
    );

    for (mut child, _, _) in agents {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// Waits for a virtual-stick frame line with exactly these LEDs; returns the lines
/// read so far for the next wait's messages.
fn wait_for_frame(rx: &mpsc::Receiver<String>, log: &mut Vec<String>, leds: &[&str], what: &str) {
    let expected = leds.join(" ");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let done = line.starts_with("leds: ") && line.trim_end().ends_with(&expected);
            log.push(line);
            if done {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no frame `{expected}`; log:\n{}",
            log[log.len().saturating_sub(30)..].join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_light_shows_every_node_as_its_own_least_privilege_account() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    let deploy = repo_root().join("deploy");
    for file in [
        "base/namespace.yaml",
        "base/rbac.yaml",
        "overlays/cluster/rbac.yaml",
    ] {
        ok(
            &plane.kubectl(&["apply", "-f", &deploy.join(file).to_string_lossy()]),
            file,
        );
    }
    // Its own role: reads nodes and pods everywhere, writes nothing outside its
    // namespace's Events and Lease, and is not the DaemonSet's account.
    let can = |args: &[&str]| {
        let mut all = vec![
            "auth",
            "can-i",
            "--as=system:serviceaccount:podlight:podlight-cluster",
        ];
        all.extend_from_slice(args);
        let out = plane.kubectl(&all);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    for allowed in [
        &["list", "pods", "-A"][..],
        &["watch", "pods", "-A"],
        &["list", "nodes"],
        &["watch", "nodes"],
        &[
            "get",
            "configmaps/podlight-cluster-policies",
            "-n",
            "podlight",
        ],
        &["create", "events.events.k8s.io", "-n", "podlight"],
        &["patch", "leases.coordination.k8s.io", "-n", "podlight"],
    ] {
        assert!(can(allowed), "the cluster light may {allowed:?}");
    }
    for denied in [
        &["get", "nodes"][..],
        &["get", "pods", "-n", "default"],
        &["patch", "nodes"],
        &["delete", "pods", "-A"],
        &["get", "secrets", "-n", "podlight"],
        &["get", "configmaps/podlight-policies", "-n", "podlight"],
        &["list", "configmaps", "-n", "kube-system"],
        &[
            "create",
            "leases.coordination.k8s.io",
            "-n",
            "kube-node-lease",
        ],
    ] {
        assert!(!can(denied), "the cluster light may not {denied:?}");
    }

    let kubeconfig = plane
        .service_account_kubeconfig("podlight", "podlight-cluster")
        .await;
    plane.namespace("web").await;
    for node in ["node-b", "node-c"] {
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
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    // Four LEDs: the fifth node overflows.
    let (mut child, rx) = spawn_agent(
        &kubeconfig,
        "unused-in-cluster-scope",
        port,
        dir.path(),
        &["--scope", "cluster", "--leds", "4"],
    );
    let mut log = Vec::new();
    const GREEN: &str = "#001900";
    const RED: &str = "#320000";
    const NOT_READY: &str = "#320032";
    const CORDONED: &str = "#001e1e";
    const IDLE: &str = "#000800";
    const OFF: &str = "#000000";
    wait_for_frame(&rx, &mut log, &[GREEN, GREEN, OFF, OFF], "one LED per node");

    // A failing pod lights its node's LED, and only that one.
    set_status(&admin, "web", "app-node-c", status_for("crashloop")).await;
    wait_for_frame(&rx, &mut log, &[GREEN, RED, OFF, OFF], "node-c's pod fails");
    // NotReady outranks the pods; a cordoned node with healthy pods says so.
    set_node_conditions(&admin, "node-c", &[("Ready", "False")]).await;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(admin.clone());
    nodes
        .patch(
            "node-b",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon node-b");
    wait_for_frame(
        &rx,
        &mut log,
        &[CORDONED, NOT_READY, OFF, OFF],
        "NotReady and cordoned",
    );
    // A node added takes its place by name; a node removed leaves.
    create_node(&admin, "node-a").await;
    set_node_conditions(&admin, "node-a", &[("Ready", "True")]).await;
    wait_for_frame(
        &rx,
        &mut log,
        &[IDLE, CORDONED, NOT_READY, OFF],
        "node-a added first",
    );
    nodes
        .delete("node-c", &kube::api::DeleteParams::default())
        .await
        .expect("delete node-c");
    wait_for_frame(&rx, &mut log, &[IDLE, CORDONED, OFF, OFF], "node-c removed");

    // Five nodes on four LEDs: the last LED blinks the worst of the nodes that do
    // not fit (node-f's failing pod), on and off. node-c's failing pod stays behind
    // bound to a node that is gone: it lights nothing.
    for node in ["node-d", "node-e", "node-f"] {
        create_node(&admin, node).await;
        set_node_conditions(&admin, node, &[("Ready", "True")]).await;
    }
    create_pod(&admin, "web", "broken", "node-f", json!({"app": "broken"})).await;
    set_status(&admin, "web", "broken", status_for("imagepull")).await;
    wait_for_frame(
        &rx,
        &mut log,
        &[IDLE, CORDONED, IDLE, RED],
        "the overflow marker lit",
    );
    wait_for_frame(
        &rx,
        &mut log,
        &[IDLE, CORDONED, IDLE, OFF],
        "the overflow marker dark",
    );
    wait_for_frame(&rx, &mut log, &[IDLE, CORDONED, IDLE, RED], "and lit again");

    // `podlight snapshot --scope cluster`, as the same account: the cluster as the
    // policy saw it, ready for `podlight eval` and test files.
    let (done, printed, said) = podlight(&[
        "snapshot",
        "--scope",
        "cluster",
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
    ]);
    assert!(done, "{said}");
    let snapshot = podlight::state::Snapshot::from_json(&printed).expect("snapshot JSON");
    let names: Vec<&str> = snapshot
        .nodes
        .iter()
        .map(|n| n.node.name.as_str())
        .collect();
    assert_eq!(names, ["node-a", "node-b", "node-d", "node-e", "node-f"]);
    assert_eq!(snapshot.scope, podlight::state::Scope::Cluster);
    assert!(
        snapshot.pods.iter().any(|p| p.name == "broken"),
        "{printed}"
    );
    // Its report names the cluster, and it watched without a permission error.
    let (_, state) = get(port, "/api/state").expect("state");
    let state: Value = serde_json::from_str(&state).expect("JSON");
    assert_eq!(state["report"]["node"], "cluster", "{state}");
    let (_, metrics) = get(port, "/metrics").expect("metrics");
    assert!(
        metrics.contains("podlight_watch_restarts_total 0"),
        "no permission errors:\n{metrics}"
    );
    assert!(
        metrics.contains("podlight_watch_lists_total{mode=\"streaming\"} 2")
            && metrics.contains("podlight_watch_lists_total{mode=\"paged\"} 0"),
        "pods and nodes listed by streaming, which the role allows (watch):\n{metrics}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
