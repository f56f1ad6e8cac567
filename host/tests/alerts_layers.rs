//! Alerts as policy input and policies in layers: a real Alertmanager (alerts posted
//! and silenced through its own API, as Prometheus and amtool do) lights the strip of
//! the node an alert is about and no other, through an alerts layer above the pods;
//! Alertmanager stopped leaves the pods shown and says the alerts are stale; a
//! hostile Alertmanager is bounded like a hostile registry; three layers with the
//! middle one swapped, broken and transparent, each LED naming its layer.

use podlight_testsupport as support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use podlight::agent::{AgentConfig, AgentStatus, PolicySource};
use podlight::alerts::{
    AlertFeed, AlertmanagerAuth, AlertmanagerOptions, AlertsReport, MAX_ALERTS_BYTES, NodeLabel,
};
use podlight::device::WriterOptions;
use podlight::device::protocol::Model;
use podlight::device::sim::emulator::{EmulatorBus, Firmware};
use podlight::frame::Rgb;
use podlight::policy::{EngineOptions, PolicyEngine};
use serde_json::{Value, json};
use support::alertmanager::Alertmanager;
use support::cluster::{create_node, create_pod, set_node_conditions, set_status, status_for};
use support::control_plane::ControlPlane;
use support::hostile_registry::HostileRegistry;
use support::http_client::{agent_leds, free_port, get, wait_for_leds};

use crate::deploy::{podlight, spawn_agent};

const SERIAL: &str = "BS000001-3.1";
const RED: Rgb = Rgb::new(50, 0, 0);
const INCIDENT: Rgb = Rgb::new(1, 2, 3);
const BLUE: Rgb = Rgb::new(0, 0, 48);

/// Waits until `f` holds, polling; panics with `what` after `limit`.
async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn layer_leds(state: &AgentStatus, layer: &str) -> Vec<u32> {
    let report = state.report(None);
    if layer == state.base_layer_name() {
        return report.base_leds;
    }
    report
        .layers
        .into_iter()
        .find(|l| l.layer == layer)
        .map(|l| l.leds)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_layers_with_the_middle_one_swapped_broken_and_transparent() {
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    // Base: the built-in policy (failed pods: red). Middle: the built-in policy as an
    // alerts overlay, see-through without alerts. Top: an incident overlay on LED 0.
    std::fs::write(
        path.join("alerts.json"),
        r##"{"rules": [], "alerts": [{"severities": ["critical"], "color": "#300000"}], "otherwise": "see-through"}"##,
    )
    .expect("settings");
    std::fs::copy(support::TESTKIT_WASM, path.join("incident.wasm")).expect("plugin");
    std::fs::write(path.join("incident.json"), "top-led").expect("settings");
    let (snapshots, rx) = tokio::sync::watch::channel(support::sample("crash-loop"));
    let engine = Arc::new(PolicyEngine::new(EngineOptions::default()).expect("engine"));
    let source = PolicySource {
        dir: Some(path.to_path_buf()),
        name: "priority".into(),
        api: None,
        trust: Default::default(),
    };
    let agent = AgentConfig {
        writer: WriterOptions {
            fade: Duration::ZERO,
            ..WriterOptions::default()
        },
        layers: vec!["alerts".into(), "incident".into()],
        ..AgentConfig::new(Arc::new(bus.clone()), rx, engine, source)
    }
    .start()
    .await
    .expect("the agent starts");
    let state = Arc::clone(agent.status());
    let leds = || bus.leds(SERIAL).unwrap_or_default();
    let mut expected = vec![RED; 8];
    expected[0] = INCIDENT;
    eventually(
        "the incident over the pods",
        Duration::from_secs(30),
        || leds() == expected,
    )
    .await;
    assert_eq!(layer_leds(&state, "incident"), [0]);
    assert_eq!(layer_leds(&state, "alerts"), Vec::<u32>::new());
    assert_eq!(layer_leds(&state, "priority"), (1..8).collect::<Vec<_>>());
    let explanation = state.explanation();
    assert_eq!(explanation.leds[0].layer, "incident");
    assert_eq!(explanation.leds[0].rule, "incident on LED 0");
    assert_eq!(explanation.leds[3].layer, "priority");
    assert!(
        explanation.leds[3].rule.contains("failed"),
        "{:?}",
        explanation.leds[3]
    );
    assert!(
        !explanation.leds[3].pods.is_empty(),
        "the base names its pods"
    );
    let (base_since, incident_since) = (state.policy().since_ms, state.layers()[1].policy.since_ms);

    // Swapped: the middle layer becomes opaque blue for failed pods.
    std::fs::write(
        path.join("alerts.json"),
        r##"{"rules": [{"states": ["failed"], "color": "#000030"}]}"##,
    )
    .expect("settings");
    expected[1..].fill(BLUE);
    let took = eventually("the swapped middle layer", Duration::from_secs(30), || {
        leds() == expected
    })
    .await;
    println!("middle layer settings swap → LEDs: {took:?}");
    assert_eq!(layer_leds(&state, "alerts"), (1..8).collect::<Vec<_>>());
    assert_eq!(
        (state.policy().since_ms, state.layers()[1].policy.since_ms),
        (base_since, incident_since),
        "the other layers were not touched"
    );

    // Broken: a plugin that fails its trial is refused; the layer keeps its policy.
    std::fs::copy(support::TESTKIT_WASM, path.join("alerts.wasm")).expect("plugin");
    std::fs::write(path.join("alerts.json"), "trap").expect("settings");
    eventually("the refusal", Duration::from_secs(30), || {
        state.layers()[0].policy.last_error.is_some()
    })
    .await;
    assert_eq!(
        leds(),
        expected,
        "a refused layer keeps its last good policy"
    );
    // A plugin that turns bad after its trial: the layer's last good frame stays.
    std::fs::write(path.join("alerts.json"), "after 2 error").expect("settings");
    let crash_loop = support::sample("crash-loop");
    eventually("the evaluation failure", Duration::from_secs(30), || {
        // The same node again: every layer is evaluated anew.
        let _ = snapshots.send(Arc::clone(&crash_loop));
        state.layers()[0].evaluation_error.is_some()
    })
    .await;
    let shown = leds();
    assert_eq!(
        shown[0], INCIDENT,
        "the layer above is untouched: {shown:?}"
    );
    let stale = state.explanation();
    assert!(
        stale.leds[1].rule.contains("last evaluation failed"),
        "{:?}",
        stale.leds[1]
    );
    assert!(
        state.report(None).layers[0].evaluation_error.is_some(),
        "the report says so"
    );

    // Transparent: back to the built-in overlay, nothing to show, the pods below.
    std::fs::remove_file(path.join("alerts.wasm")).expect("remove");
    std::fs::write(
        path.join("alerts.json"),
        r##"{"rules": [], "otherwise": "see-through"}"##,
    )
    .expect("settings");
    expected[1..].fill(RED);
    eventually(
        "the pods through the middle layer",
        Duration::from_secs(30),
        || leds() == expected,
    )
    .await;
    assert_eq!(layer_leds(&state, "alerts"), Vec::<u32>::new());
    agent.stop(true).await;
}

fn options(url: &str, deadline: Duration) -> AlertmanagerOptions {
    AlertmanagerOptions {
        url: url.parse().expect("a URL"),
        node_label: NodeLabel("node".into()),
        interval: Duration::from_millis(300),
        deadline,
        extra_ca_pem: Vec::new(),
        auth: AlertmanagerAuth::None,
    }
}

async fn first_poll(feed: &AlertFeed) -> AlertsReport {
    let limit = Duration::from_secs(30);
    eventually("a poll", limit, || feed.status.report().polls > 0).await;
    feed.status.report()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_alertmanager_is_bounded_like_a_hostile_registry() {
    let hostile = HostileRegistry::start(Vec::new());
    let base = format!("http://127.0.0.1:{}", hostile.port);
    // Huge: refused at the bound, fast.
    let started = Instant::now();
    let feed = AlertFeed::start(
        options(&format!("{base}/huge-alerts"), Duration::from_secs(20)),
        Some("n1".into()),
    )
    .expect("feed");
    let report = first_poll(&feed).await;
    let error = report.last_error.clone().unwrap_or_default();
    println!("huge answer: refused in {:?}: {error}", started.elapsed());
    assert!(
        error.contains(&MAX_ALERTS_BYTES.to_string()) && report.stale,
        "{report:?}"
    );
    drop(feed);
    // Slow: the poll's overall deadline, then the next poll.
    let started = Instant::now();
    let feed = AlertFeed::start(
        options(&format!("{base}/slow-alerts"), Duration::from_secs(2)),
        Some("n1".into()),
    )
    .expect("feed");
    let report = first_poll(&feed).await;
    println!(
        "slow answer: given up after {:?}: {:?}",
        started.elapsed(),
        report.last_error
    );
    assert!(
        report
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("did not answer within 2 s")),
        "{report:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(feed);
    // Escapes and huge values: bounded and stripped.
    let feed = AlertFeed::start(
        options(&format!("{base}/escaped-alerts"), Duration::from_secs(20)),
        Some("n1".into()),
    )
    .expect("feed");
    let mut alerts = feed.alerts.clone();
    eventually("the alert", Duration::from_secs(30), || {
        !alerts.borrow_and_update().is_empty()
    })
    .await;
    let alert = feed.alerts.borrow()[0].clone();
    let text = serde_json::to_string(&alert).expect("json");
    assert!(
        !alert.name.contains('\u{1b}') && !alert.name.contains('\n'),
        "{}",
        alert.name
    );
    assert!(!alert.severity.contains('\u{202e}'), "{}", alert.severity);
    assert!(
        text.len() < 20_000,
        "bounded: {} bytes of alert",
        text.len()
    );
    assert!(!feed.status.report().stale);
}

fn agent_state(port: u16) -> Value {
    get(port, "/api/state")
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null)
}

const GREEN: &str = "#001900";
const ALERT: &str = "#300000";
const ACKNOWLEDGED: &str = "#0c0400";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_lights_its_nodes_strip_through_an_alerts_layer() {
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    plane.namespace("podlight").await;
    for node in ["n1", "n2"] {
        create_node(&client, node).await;
        set_node_conditions(&client, node, &[("Ready", "True")]).await;
        let pod = format!("web-{node}");
        create_pod(&client, "default", &pod, node, json!({"app": "web"})).await;
        set_status(&client, "default", &pod, status_for("running")).await;
    }
    let mut alertmanager = Alertmanager::start();
    let dir = tempfile::tempdir().expect("temp dir");
    write_alerts_layer(dir.path());
    let interval = "1";
    let args = [
        "--layer",
        "alerts",
        "--alertmanager",
        &alertmanager.url(),
        "--alertmanager-interval-seconds",
        interval,
    ];
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let (mut a1, _log1) = spawn_agent(&plane.kubeconfig, "n1", p1, dir.path(), &args);
    let (mut a2, _log2) = spawn_agent(&plane.kubeconfig, "n2", p2, dir.path(), &args);
    // The cluster light: one LED per node, every node's alerts.
    let cluster_args: Vec<&str> = args.iter().copied().chain(["--scope", "cluster"]).collect();
    let (mut a3, _log3) = spawn_agent(&plane.kubeconfig, "n1", p3, dir.path(), &cluster_args);
    let limit = Duration::from_secs(60);
    wait_for_leds(p1, "n1's pods", GREEN, limit);
    wait_for_leds(p2, "n2's pods", GREEN, limit);

    // An alert about n1, posted as Prometheus posts it.
    alertmanager.post(&[Alertmanager::alert(
        "DiskFull", "critical", "node", "n1", 300,
    )]);
    let took = wait_for_leds(p1, "the alert on n1", ALERT, limit);
    println!("alert posted → n1's LEDs: {took:?} (poll interval {interval} s)");
    assert!(
        agent_leds(p2).iter().all(|c| c == GREEN),
        "n2 is not alerted"
    );
    let started = Instant::now();
    while agent_leds(p3).get(..2) != Some(&[ALERT.to_string(), GREEN.to_string()][..]) {
        assert!(
            started.elapsed() < limit,
            "the cluster light shows n1 alerted, n2 fine: {:?}",
            agent_leds(p3)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = agent_state(p1);
    assert_eq!(state["alertList"][0]["name"], "DiskFull", "{state}");
    assert_eq!(state["alerts"]["stale"], false, "{state}");
    let (ok, out, err) = podlight(&["explain", "0", "--agent", &format!("http://127.0.0.1:{p1}")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("layer alerts") && out.contains("alert DiskFull"),
        "{out}"
    );

    // Silenced in Alertmanager: acknowledged, not alarmed.
    let silence = alertmanager.silence("DiskFull");
    wait_for_leds(p1, "the silenced alert", ACKNOWLEDGED, limit);
    alertmanager.unsilence(&silence);
    wait_for_leds(p1, "the alert again", ALERT, limit);

    // Resolved (an end in the past, as Prometheus sends it): gone.
    alertmanager.post(&[Alertmanager::alert(
        "DiskFull", "critical", "node", "n1", -1,
    )]);
    let took = wait_for_leds(p1, "the resolved alert", GREEN, limit);
    println!("alert resolved → n1's LEDs: {took:?}");

    // Alertmanager down: the pods are still shown, the alerts stale; back on restart.
    alertmanager.stop();
    let started = Instant::now();
    while agent_state(p1)["alerts"]["stale"] != true {
        assert!(
            started.elapsed() < limit,
            "stale is never said: {}",
            agent_state(p1)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = get(p1, "/metrics").map(|(_, m)| m).unwrap_or_default();
    assert!(metrics.contains("podlight_alerts_stale 1"), "{metrics}");
    set_status(
        &client,
        "default",
        "web-n1",
        support::cluster::crash_loop_status("backoff", 3, Duration::ZERO),
    )
    .await;
    wait_for_leds(
        p1,
        "a crash loop while Alertmanager is down",
        "#320000",
        limit,
    );
    alertmanager.start_again();
    let started = Instant::now();
    while agent_state(p1)["alerts"]["stale"] != false {
        assert!(
            started.elapsed() < limit,
            "never current again: {}",
            agent_state(p1)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for agent in [&mut a1, &mut a2, &mut a3] {
        let _ = agent.kill();
        let _ = agent.wait();
    }
}

/// The built-in policy as an alerts overlay: critical alerts in their colour, muted
/// ones acknowledged, every other LED left to the pods below.
fn write_alerts_layer(dir: &Path) {
    std::fs::write(
        dir.join("alerts.json"),
        r##"{"rules": [], "alerts": [{"severities": ["critical"], "color": "#300000"}], "otherwise": "see-through"}"##,
    )
    .expect("settings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_evaluates_the_shipped_rules_on_a_real_agents_metrics() {
    // An agent without a stick, whose policy change is refused.
    let bus = EmulatorBus::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let (_snapshots, rx) = tokio::sync::watch::channel(support::sample("crash-loop"));
    let engine = Arc::new(PolicyEngine::new(EngineOptions::default()).expect("engine"));
    let source = PolicySource {
        dir: Some(dir.path().to_path_buf()),
        name: "priority".into(),
        api: None,
        trust: Default::default(),
    };
    let agent = AgentConfig {
        listen: Some("127.0.0.1:0".parse().expect("address")),
        ..AgentConfig::new(Arc::new(bus.clone()), rx, engine, source)
    }
    .start()
    .await
    .expect("the agent starts");
    let address = agent.http_address().expect("serving");
    let state = Arc::clone(agent.status());

    // The chart's rule file, as Prometheus reads it.
    let groups = std::fs::read_to_string(
        support::repo_root().join("deploy/helm/podlight/rules/podlight.rules.yaml"),
    )
    .expect("the rules");
    let rules = format!(
        "groups:\n{}",
        groups
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    let prometheus = support::alertmanager::Prometheus::start(&[address.to_string()], &rules);
    // Scraped before the refusal, so the counter's increase is seen.
    eventually("the first scrape", Duration::from_secs(60), || {
        prometheus
            .alerts()
            .iter()
            .any(|(name, _)| name == "PodlightStickMissing")
    })
    .await;
    std::fs::write(
        dir.path().join("priority.wasm"),
        b"\0asm\x0d\0\x01\0garbage",
    )
    .expect("write");
    eventually("the refusal", Duration::from_secs(30), || {
        state.policy().last_error.is_some()
    })
    .await;
    let started = Instant::now();
    loop {
        let alerts = prometheus.alerts();
        let state_of = |name: &str| {
            alerts
                .iter()
                .find(|(alert, _)| alert == name)
                .map(|(_, state)| state.clone())
        };
        if state_of("PodlightPolicyReloadsFailing").as_deref() == Some("firing")
            && state_of("PodlightStickMissing").as_deref() == Some("pending")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the rules never fire on the agent's metrics: {alerts:?}, rules {:?}",
            prometheus.rules()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "Prometheus: the refused reload fires after {:?}",
        started.elapsed()
    );
    let rules = prometheus.rules();
    assert_eq!(rules.len(), 5, "{rules:?}");
    assert!(rules.iter().all(|(_, health)| health == "ok"), "{rules:?}");
    let alerts = prometheus.alerts();
    assert!(
        !alerts.iter().any(|(name, _)| name == "PodlightAlertsStale"),
        "no alerts read, none stale: {alerts:?}"
    );
    agent.stop(true).await;
}
