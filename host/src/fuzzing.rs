//! What the fuzz targets (`fuzz/`) run: each function takes a fuzzer's bytes, hands
//! them to one parser of untrusted input the way podlight reads it, and checks what
//! must hold whatever the input was. A broken invariant panics: that is how a fuzzer
//! learns of it. Built only with the `fuzzing` feature.
//!
//! Untrusted here means written by someone else than the node's operator: a plugin, a
//! registry, the API server's objects (Leases, annotations), Alertmanager, a USB
//! device, and the files people share (snapshots, timelines, `podlight test` files).

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::{Arbitrary, Unstructured};

use crate::alerts::{NodeLabel, parse_alerts};
use crate::device::protocol::{self, Layout, Model};
use crate::device::wled;
use crate::frame::{Frame, LedReason, Rgb};
use crate::policy::untrusted::{MAX_ESCAPE, MAX_PLUGIN_TEXT, sanitize};
use crate::policy::{
    self, CompileTarget, EngineOptions, MAX_FRAME_LEDS, PolicyEngine, PolicyInstance,
};
use crate::policy_test::plan::{Plan, read_timeline};
use crate::registry::PolicyReference;
use crate::registry::auth::Credentials;
use crate::registry::client::{Manifest, parse_manifest, wasm_layer};
use crate::registry::precompiled::{Index, artifact_layer, choose_precompiled};
use crate::registry::transport::{Challenge, error_message, token_of};
use crate::report::published_of;
use crate::state::{ContainerInfo, ContainerState, NodeInfo, PodInfo, Snapshot};

/// A cut text ends in a note of how much was cut; at most this much longer than its
/// bound.
const CUT_NOTE: usize = 40;

/// Text as [`sanitize`] leaves it: nothing that moves a terminal's cursor or forges a
/// log line, and at most `max` characters — each shown as its escape of up to
/// [`MAX_ESCAPE`] characters — plus the cut note.
fn assert_shown_safely(text: &str, max: usize, what: &str) {
    assert_eq!(
        sanitize(text, usize::MAX),
        text,
        "{what} holds a control character: {text:?}"
    );
    assert!(
        text.chars().count() <= max.saturating_mul(MAX_ESCAPE) + CUT_NOTE,
        "{what} is {} characters, more than {max}",
        text.chars().count()
    );
}

/// Every string in a JSON value shown safely (the report of a node, read back).
fn assert_json_shown_safely(value: &serde_json::Value, max: usize, what: &str) {
    match value {
        serde_json::Value::String(text) => assert_shown_safely(text, max, what),
        serde_json::Value::Array(items) => items
            .iter()
            .for_each(|item| assert_json_shown_safely(item, max, what)),
        serde_json::Value::Object(map) => map.iter().for_each(|(key, item)| {
            assert_shown_safely(key, max, what);
            assert_json_shown_safely(item, max, what);
        }),
        _ => {}
    }
}

/// The first byte picks which of several related parsers reads the rest.
fn split_choice(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(choice, rest)| (*choice, rest))
}

/// A snapshot file (`podlight eval --snapshot`, `podlight test`) or a recorded
/// timeline: parsed or refused, never a panic; what parses survives a round trip.
pub fn snapshot_json(data: &[u8]) {
    let Some((choice, rest)) = split_choice(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if choice % 2 == 0 {
        if let Ok(snapshot) = Snapshot::from_json(text) {
            let json = serde_json::to_string(&snapshot).unwrap_or_default();
            let again = Snapshot::from_json(&json)
                .unwrap_or_else(|e| panic!("a snapshot's own JSON does not read back: {e}"));
            assert_eq!(
                again.counts, snapshot.counts,
                "a snapshot read back counts its pods differently"
            );
        }
    } else if let Ok(records) = read_timeline(text) {
        assert!(
            records.len() <= text.lines().count(),
            "a timeline has more records than lines"
        );
    }
}

/// A `podlight test` file: parsed with every file it names, or refused with a line.
pub fn policy_test_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let snapshot = r#"{"node":{"name":"n1","ready":true},"pods":[{"name":"a","phase":"Running","ready":true}]}"#;
    let read = |path: &Path| -> std::io::Result<String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Ok(snapshot.to_string()),
            Some("jsonl") => Ok(format!("{snapshot}\n{snapshot}\n")),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    };
    match Plan::from_text(Path::new("fuzz/policy.test.toml"), text, &read) {
        Ok(plan) => assert!(
            plan.steps
                .iter()
                .all(|s| s.line <= text.lines().count() + 1),
            "a step's line is past the end of the file"
        ),
        Err(error) => {
            assert!(
                error.problem.line <= text.lines().count() + 1,
                "a problem's line {} is past the end of the file",
                error.problem.line
            );
        }
    }
}

/// A policy reference (`oci://…`, from a ConfigMap): parsed or refused; what parses
/// reads back the same from its own text.
pub fn oci_reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = PolicyReference::parse(text) else {
        return;
    };
    let shown = reference.to_string();
    let again = PolicyReference::parse(&shown)
        .unwrap_or_else(|e| panic!("{shown:?} (from {text:?}) does not parse again: {e}"));
    assert_eq!(again, reference, "{text:?} does not read back the same");
    assert!(
        !reference.registry.is_empty() && !reference.repository.is_empty(),
        "{text:?} parsed with no registry or repository"
    );
}

/// What a registry answers: a policy's manifest, a referrers index, a token, an
/// error body, a `WWW-Authenticate` challenge; and the Docker config that holds
/// credentials for it. Nothing it says reaches a message unsanitised.
pub fn registry_documents(data: &[u8]) {
    let Some((choice, rest)) = split_choice(data) else {
        return;
    };
    let reference = PolicyReference::parse("oci://registry.example/policies/priority:1")
        .unwrap_or_else(|e| panic!("the fixed reference: {e}"));
    match choice % 6 {
        0 => match parse_manifest(&reference, rest) {
            Ok(manifest) => match wasm_layer(&reference, &manifest, 1 << 20) {
                Ok(layer) => assert!(
                    crate::registry::client::is_sha256_digest(&layer.digest)
                        && u64::try_from(layer.size).is_ok_and(|s| s <= 1 << 20),
                    "a layer podlight would pull: {layer:?}"
                ),
                Err(error) => assert_shown_safely(&error.to_string(), 2000, "a layer refusal"),
            },
            Err(error) => assert_shown_safely(&error.to_string(), 2000, "a manifest refusal"),
        },
        1 => {
            if let Ok(index) = serde_json::from_slice::<Index>(rest) {
                for target in [CompileTarget::X86_64, CompileTarget::Aarch64] {
                    match choose_precompiled(&reference, &index, target) {
                        Ok(listed) => assert!(
                            crate::registry::client::is_sha256_digest(&listed.digest),
                            "an artifact podlight would pull: {listed:?}"
                        ),
                        Err(why) => assert_shown_safely(&why, 2000, "a referrers refusal"),
                    }
                }
            }
        }
        2 => {
            if let Ok(manifest) = serde_json::from_slice::<Manifest>(rest)
                && let Ok((layer, _)) = artifact_layer(&manifest)
            {
                assert!(
                    crate::registry::client::is_sha256_digest(&layer.digest),
                    "an artifact layer podlight would pull: {layer:?}"
                );
            }
        }
        3 => match token_of(rest) {
            Ok(token) => assert!(
                !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()),
                "a token a header cannot carry: {token:?}"
            ),
            Err(error) => assert_shown_safely(&error.to_string(), 2000, "a token refusal"),
        },
        4 => {
            let (message, codes) = error_message(rest);
            assert_shown_safely(&message, 2000, "a registry's error message");
            codes
                .iter()
                .for_each(|code| assert_shown_safely(code, 40, "a registry's error code"));
            let header = String::from_utf8_lossy(rest);
            let challenge = Challenge::parse(&header);
            let _ = (challenge.param("realm"), challenge.param("scope"));
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(credentials) = Credentials::from_docker_config(text) {
                for registry in ["registry.example", "localhost:5000", "index.docker.io"] {
                    if let Some((user, _)) = credentials.for_registry(registry) {
                        assert!(!user.is_empty(), "empty user for {registry}");
                    }
                }
            }
        }
    }
}

/// A cosign public key and signature: a key that parses and a signature that does
/// not come from it never verify; a signature made with the key always does.
pub fn cosign(data: &[u8]) {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{DerSignature, SigningKey};
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    let Some((choice, rest)) = split_choice(data) else {
        return;
    };
    let mut keys = crate::policy::signature::TrustedKeys::default();
    if choice % 2 == 0 {
        let _ = keys.add_pem("fuzzed.pub", &String::from_utf8_lossy(rest));
        return;
    }
    let Ok(signing) = SigningKey::from_slice(&[7u8; 32]) else {
        panic!("a fixed scalar is a valid key");
    };
    let pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap_or_default();
    keys.add_pem("cosign.pub", &pem)
        .unwrap_or_else(|e| panic!("the fixed key: {e}"));
    let half = rest.len() / 2;
    let (message, signature) = rest.split_at(half);
    assert!(
        keys.verify("fuzzed", message, Some(signature)).is_err(),
        "a signature not made by the key verifies: {signature:?}"
    );
    let made: DerSignature = signing.sign(message);
    let encoded = base64::engine::general_purpose::STANDARD.encode(made.as_bytes());
    assert_eq!(
        keys.verify("fuzzed", message, Some(encoded.as_bytes())),
        Ok("cosign.pub"),
        "a signature made by the key does not verify"
    );
}

/// A node's status Lease as the API server returns it (anyone allowed to write the
/// agents' Leases could have written it): read or ignored, and what is read is safe
/// to show.
pub fn node_report(data: &[u8]) {
    let Some((choice, rest)) = split_choice(data) else {
        return;
    };
    let lease = if choice % 2 == 0 {
        match serde_json::from_slice(rest) {
            Ok(lease) => lease,
            Err(_) => return,
        }
    } else {
        // The annotation alone, inside a well-formed Lease.
        let annotation = String::from_utf8_lossy(rest).into_owned();
        k8s_openapi::api::coordination::v1::Lease {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                annotations: Some(
                    [(crate::report::STATUS_ANNOTATION.to_string(), annotation)].into(),
                ),
                ..Default::default()
            },
            spec: Some(Default::default()),
        }
    };
    if let Some(published) = published_of(&lease) {
        let json = serde_json::to_value(&published.report).unwrap_or_default();
        assert_json_shown_safely(&json, MAX_PLUGIN_TEXT, "a node report read back");
        let _ = published.fresh(u64::MAX);
    }
}

/// What a stick answers: info blocks (serial, name), read-back frames; and what the
/// emulator decodes of the host's reports. Frames survive encode → decode.
pub fn hid_report(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let models = [
        Model::Original,
        Model::Square,
        Model::Strip,
        Model::Pro,
        Model::Flex,
    ];
    let Ok(model) = input.choose(&models).copied() else {
        return;
    };
    let led_count = input.int_in_range(0..=70usize).ok();
    let layout = Layout::new(model, led_count.filter(|&n| n > 0));
    let Ok(report) = <Vec<u8>>::arbitrary(&mut input) else {
        return;
    };
    if let Some(leds) = layout.decode_readback(&report) {
        assert_eq!(leds.len(), layout.led_count, "a read-back of {layout:?}");
    }
    let _ = protocol::decode(&report);
    let text = protocol::info_text(&report);
    let release = input.arbitrary::<u16>().unwrap_or(0);
    if let Some(detected) = protocol::detect_model(&text, release) {
        assert!(Layout::new(detected, None).led_count >= 1);
    }
    let leds: Vec<Rgb> = (0..layout.led_count)
        .map(|_| {
            let [r, g, b] = input.arbitrary::<[u8; 3]>().unwrap_or_default();
            Rgb::new(r, g, b)
        })
        .collect();
    let reports = layout.frame_reports(&leds);
    let mut shown = vec![Rgb::OFF; layout.led_count];
    for report in &reports {
        match protocol::decode(report) {
            Ok(protocol::Report::Color(c)) => shown[0] = c,
            Ok(protocol::Report::Frame { channel, leds: got }) => {
                let first = usize::from(channel) * protocol::PRO_CHANNEL_LEDS;
                for (i, c) in got.into_iter().enumerate() {
                    if let Some(slot) = shown.get_mut(first + i) {
                        *slot = c;
                    }
                }
            }
            other => panic!("{layout:?} sent a report that is not a frame: {other:?}"),
        }
    }
    assert_eq!(
        shown, leds,
        "{layout:?} does not show the frame it was sent"
    );
    if let (Some(first), Some(leds_back)) = (
        reports.first(),
        reports.first().and_then(|r| layout.decode_readback(r)),
    ) {
        assert_eq!(
            leds_back, leds,
            "{layout:?} reads back another frame from {first:?}"
        );
    }
}

/// Alertmanager's answer (`/api/v2/alerts`): read or refused; every alert is about
/// this node and bounded.
pub fn alerts(data: &[u8]) {
    let label = NodeLabel("node".to_string());
    if let Ok(parsed) = parse_alerts(data, &label, Some("node-1"), 1_800_000_000_000) {
        let json = serde_json::to_value(&parsed.alerts).unwrap_or_default();
        assert_json_shown_safely(&json, MAX_PLUGIN_TEXT, "an alert");
        assert!(
            parsed.alerts.iter().all(|a| a.node == "node-1"),
            "an alert about another node was kept"
        );
    }
}

/// A precompiled artifact's header: parsed or refused with a bounded, safe reason.
pub fn precompiled_header(data: &[u8]) {
    match policy::precompiled::parse(data) {
        Ok(artifact) => assert!(
            artifact.code.len() < data.len(),
            "the code is not inside the artifact"
        ),
        Err(why) => assert_shown_safely(&why, 400, "a precompiled artifact's refusal"),
    }
}

/// Settings for the default policy (JSON in the ConfigMap), a silence annotation, a
/// quiet-hours window: read or refused with a bounded, safe message.
pub fn policy_settings(data: &[u8]) {
    let Some((choice, rest)) = split_choice(data) else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match choice % 3 {
        0 => {
            let (settings, problem) = podlight_priority::parse_settings(Some(&text));
            if let Some(problem) = problem {
                assert!(!problem.is_empty(), "an empty settings complaint");
            }
            let counts = podlight_priority::Counts::default();
            let frame = podlight_priority::frame(&counts, &settings, 8);
            assert_eq!(frame.len(), 8, "settings changed the frame's length");
        }
        1 => {
            if let Err(why) = crate::state::parse_silence(&text) {
                assert_shown_safely(&why, 400, "a silence's refusal");
            }
        }
        _ => {
            if let Err(why) = crate::quiet::parse_window(&text) {
                assert_shown_safely(&why.to_string(), 400, "a quiet-hours refusal");
            }
        }
    }
}

/// A plugin's frame as the host takes it: any LEDs, reasons and indices a plugin may
/// return. The host keeps it only within its LED count and what exists, with safe
/// text.
pub fn plugin_frame(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(led_count) = input.int_in_range(1..=64u32) else {
        return;
    };
    let counted = policy::Counted {
        pods: input.int_in_range(0..=200).unwrap_or(0),
        nodes: input.int_in_range(0..=20).unwrap_or(0),
        alerts: input.int_in_range(0..=20).unwrap_or(0),
    };
    let Ok(frame) = arbitrary_frame(&mut input) else {
        return;
    };
    let given = frame.leds.len();
    match policy::fit_frame("fuzzed", frame, led_count, &counted) {
        Ok(kept) => {
            assert!(given <= MAX_FRAME_LEDS, "{given} LEDs were taken");
            assert_eq!(kept.leds.len(), led_count as usize);
            assert!(kept.reasons.len() <= MAX_FRAME_LEDS);
            for reason in &kept.reasons {
                assert!(!reason.leds.is_empty(), "a reason for no LED was kept");
                assert!(reason.leds.iter().all(|&i| i < led_count));
                assert!(reason.pods.iter().all(|&i| (i as usize) < counted.pods));
                assert!(reason.nodes.iter().all(|&i| (i as usize) < counted.nodes));
                assert!(reason.alerts.iter().all(|&i| (i as usize) < counted.alerts));
                assert!(reason.pods.len() <= 64 && reason.nodes.len() <= 64);
                assert_shown_safely(&reason.rule, policy::MAX_RULE_TEXT, "a reason's rule");
            }
            assert!(kept.see_through.iter().all(|&i| i < led_count));
        }
        Err(error) => {
            assert!(
                given > MAX_FRAME_LEDS,
                "a frame of {given} LEDs was refused"
            );
            assert_shown_safely(&error.to_string(), 400, "a frame's refusal");
        }
    }
}

fn arbitrary_frame(input: &mut Unstructured<'_>) -> arbitrary::Result<Frame> {
    let led_count = if input.ratio(1, 50)? {
        input.int_in_range(0..=MAX_FRAME_LEDS + 10)?
    } else {
        input.int_in_range(0..=70)?
    };
    let leds = (0..led_count)
        .map(|_| {
            let [r, g, b] = input.arbitrary::<[u8; 3]>()?;
            Ok(Rgb::new(r, g, b))
        })
        .collect::<arbitrary::Result<Vec<_>>>()?;
    let reason_count = input.int_in_range(0..=20usize)?;
    let reasons = (0..reason_count)
        .map(|_| {
            Ok(LedReason {
                leds: input.arbitrary()?,
                rule: input.arbitrary()?,
                pods: input.arbitrary()?,
                nodes: input.arbitrary()?,
                alerts: input.arbitrary()?,
                layer: String::new(),
            })
        })
        .collect::<arbitrary::Result<Vec<_>>>()?;
    Ok(Frame {
        leds,
        again_after_ms: input.arbitrary()?,
        reasons,
        see_through: input.arbitrary()?,
    })
}

/// The default policy, compiled once per fuzzing process; a deadline far above what
/// an evaluation takes even under a sanitizer, so only a hang trips it.
fn builtin_instance() -> &'static Mutex<PolicyInstance> {
    static INSTANCE: OnceLock<Mutex<PolicyInstance>> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let options = EngineOptions {
            deadline: std::time::Duration::from_secs(10),
            ..EngineOptions::default()
        };
        let engine = PolicyEngine::new(options).unwrap_or_else(|e| panic!("engine: {e}"));
        let builtin = Arc::new(engine.builtin().unwrap_or_else(|e| panic!("builtin: {e}")));
        Mutex::new(
            builtin
                .instantiate(None)
                .unwrap_or_else(|e| panic!("builtin starts: {e}")),
        )
    })
}

/// Any node the API server could describe, through the default policy: it always
/// answers, with one colour per LED, the same for the same snapshot, and the same as
/// the rule compiled natively.
pub fn builtin_policy(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok((snapshot, led_count)) = arbitrary_snapshot(&mut input) else {
        return;
    };
    let snapshot = Arc::new(snapshot);
    let Ok(mut instance) = builtin_instance().lock() else {
        panic!("an earlier input panicked while evaluating");
    };
    let frame = instance
        .evaluate(&snapshot, led_count)
        .unwrap_or_else(|e| panic!("the default policy failed on {snapshot:?}: {e}"));
    assert_eq!(frame.leds.len(), led_count as usize, "LEDs for {led_count}");
    let again = instance
        .evaluate(&snapshot, led_count)
        .unwrap_or_else(|e| panic!("the default policy failed the second time: {e}"));
    assert_eq!(again, frame, "the same snapshot gave another frame");
    let native = policy::native::priority_frame(
        &snapshot,
        &podlight_priority::Settings::default(),
        led_count,
    );
    assert_eq!(
        frame.leds.clone(),
        native,
        "the plugin and the native rule disagree on {:?}",
        snapshot.counts
    );
}

fn arbitrary_snapshot(input: &mut Unstructured<'_>) -> arbitrary::Result<(Snapshot, u32)> {
    const PHASES: [&str; 6] = ["Pending", "Running", "Succeeded", "Failed", "Unknown", ""];
    const REASONS: [&str; 8] = [
        "ContainerCreating",
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "OOMKilled",
        "Completed",
        "Error",
    ];
    let led_count = input.int_in_range(1..=32u32)?;
    let now_ms = input.int_in_range(0..=4_000_000_000_000u64)?;
    let text = |input: &mut Unstructured<'_>| -> arbitrary::Result<String> {
        Ok(if input.ratio(3, 4)? {
            input.choose(&REASONS)?.to_string()
        } else {
            String::arbitrary(input)?
        })
    };
    let pod_count = input.int_in_range(0..=40usize)?;
    let mut pods = Vec::with_capacity(pod_count);
    for i in 0..pod_count {
        let container_count = input.int_in_range(0..=3usize)?;
        let mut containers = Vec::with_capacity(container_count);
        for c in 0..container_count {
            let state = match input.int_in_range(0..=2u8)? {
                0 => ContainerState::Waiting {
                    reason: text(input)?,
                },
                1 => ContainerState::Running {
                    started_ms: input.arbitrary()?,
                },
                _ => ContainerState::Terminated {
                    reason: text(input)?,
                    exit_code: input.arbitrary()?,
                },
            };
            containers.push(ContainerInfo {
                name: format!("c{c}"),
                init: input.ratio(1, 5)?,
                ready: input.arbitrary()?,
                restart_count: input.int_in_range(0..=200)?,
                state,
                last_termination_reason: if input.arbitrary()? {
                    Some(text(input)?)
                } else {
                    None
                },
            });
        }
        pods.push(PodInfo {
            namespace: "default".into(),
            name: format!("pod-{i}"),
            uid: format!("uid-{i}"),
            phase: input.choose(&PHASES)?.to_string(),
            deleting: input.ratio(1, 8)?,
            ready: input.arbitrary()?,
            status_reason: if input.ratio(1, 8)? {
                text(input)?
            } else {
                String::new()
            },
            start_time_ms: input.arbitrary()?,
            created_ms: input.int_in_range(0..=now_ms)?,
            containers,
            ..PodInfo::default()
        });
    }
    let node = NodeInfo {
        name: "node-1".into(),
        ready: input.arbitrary()?,
        memory_pressure: input.arbitrary()?,
        disk_pressure: input.arbitrary()?,
        pid_pressure: input.arbitrary()?,
        unschedulable: input.arbitrary()?,
        ..NodeInfo::default()
    };
    Ok((Snapshot::new(node, pods, now_ms), led_count))
}

/// Any sequence of watch events (pods and nodes changing, going, relisted; the clock
/// moving on): the cluster scope's incremental model shows exactly what a snapshot
/// rebuilt from every pod shows, at every build.
pub fn cluster_model(data: &[u8]) {
    use crate::cluster::cluster_scope::equivalence::{START_MS, arbitrary_steps, first_difference};
    let Ok((sets, steps)) = arbitrary_steps(&mut Unstructured::new(data)) else {
        return;
    };
    if let Some(difference) = first_difference(sets, START_MS, &steps) {
        panic!("the incremental model and the rebuild differ: {difference}");
    }
}

/// What a WLED controller answers over HTTP (`/json/info`): read or refused, never a
/// panic; what is kept of it is bounded and safe to show; and a frame for as many
/// LEDs as it claims reaches every one of them through its realtime datagrams, as the
/// controller reads them.
pub fn wled_answer(data: &[u8]) {
    let Ok(address) = wled::Address::parse("wled://fuzzed.invalid:8080") else {
        return;
    };
    // The same bytes as an operator's address: parsed or refused with a message.
    if let Err(message) = wled::Address::parse(&String::from_utf8_lossy(data)) {
        assert!(!message.is_empty());
    }
    let info = wled::body_of(data.to_vec(), &address).and_then(|b| wled::parse_info(&b, &address));
    let info = match info {
        Ok(info) => info,
        Err(error) => {
            assert_shown_safely(&error.to_string(), 400, "a WLED refusal");
            return;
        }
    };
    assert!((1..=wled::MAX_LEDS).contains(&info.led_count), "{info:?}");
    assert_ne!(info.udp_port, 0);
    for text in [&info.name, &info.version, &info.mac] {
        assert_shown_safely(text, wled::MAX_TEXT, "a WLED controller's text");
    }
    let layout = wled::Layout {
        led_count: info.led_count,
    };
    let leds: Vec<Rgb> = (0..info.led_count)
        .map(|i| Rgb::new(i as u8, (i >> 8) as u8, data.len() as u8))
        .collect();
    let mut shown = vec![Rgb::OFF; info.led_count];
    for datagram in layout.frame_datagrams(&leds) {
        assert!(
            datagram.len() <= 1472,
            "one datagram fits an Ethernet frame"
        );
        assert_eq!(
            crate::device::sim::wled::apply_to_leds(&datagram, &mut shown),
            Some(wled::TIMEOUT_SECONDS)
        );
    }
    assert_eq!(shown, leds, "the strip shows the frame it was sent");
}

/// A pod watch in protobuf as an API server (or whatever answers in its place) sends
/// it: the first byte is the size of the pieces the rest arrives in. The frames are
/// the same however the bytes arrive; each is read as an event or refused with a
/// message safe to show, never a panic; an error event's text is safe to show; a pod
/// keeps no annotation but its silence.
pub fn protobuf_watch(data: &[u8]) {
    use crate::cluster::protobuf::{Frames, PodEvent, pod_event};
    use crate::state::SILENCE_ANNOTATION;

    let Some((piece, stream)) = split_choice(data) else {
        return;
    };
    let frames_in = |size: usize| {
        let mut frames = Frames::default();
        let mut read = Vec::new();
        for bytes in stream.chunks(size.max(1)) {
            frames.push(bytes);
            loop {
                match frames.next_frame() {
                    Ok(Some(frame)) => read.push(frame),
                    Ok(None) => break,
                    Err(error) => return (read, Some(error.to_string())),
                }
            }
        }
        (read, None)
    };
    let (frames, refused) = frames_in(stream.len());
    assert_eq!(
        frames_in(usize::from(piece)),
        (frames.clone(), refused.clone()),
        "the frames depend on how the bytes arrived"
    );
    if let Some(refused) = refused {
        assert_shown_safely(&refused, 400, "a refused frame");
    }
    for frame in frames {
        match pod_event(frame) {
            Ok(PodEvent::Added(pod) | PodEvent::Modified(pod) | PodEvent::Deleted(pod)) => {
                let annotations = pod.0.metadata.annotations.as_ref();
                assert!(
                    annotations.is_none_or(|a| a.keys().all(|k| k == SILENCE_ANNOTATION)),
                    "{annotations:?}"
                );
                let info = crate::cluster::pod_info(&pod.0);
                if let Some(problem) = &info.silence_problem {
                    assert_shown_safely(problem, MAX_PLUGIN_TEXT, "a silence's problem");
                }
            }
            Ok(PodEvent::Bookmark { .. }) => {}
            Ok(PodEvent::Error(status)) => {
                assert_shown_safely(&status.message, MAX_PLUGIN_TEXT, "an error event's message");
                assert_shown_safely(&status.reason, MAX_PLUGIN_TEXT, "an error event's reason");
            }
            Err(error) => assert_shown_safely(
                &error.to_string(),
                MAX_PLUGIN_TEXT + 100,
                "a refused watch event",
            ),
        }
    }
}
