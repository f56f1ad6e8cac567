//! Policies from a real OCI registry (CNCF distribution on loopback): pushed and
//! pulled by podlight in the CNCF Wasm OCI artifact format, swapped into a running
//! agent by reference, cached, retried while the registry is down; every way a pull
//! fails refused with its own message; signatures made by real cosign checked before
//! anything compiles; and real wkg and oras reading what podlight pushed and back.

use podlight_testsupport as support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use podlight::agent::{AgentConfig, AgentStatus, PolicySource, PolicyTrust, RunningAgent};
use podlight::device::Model;
use podlight::device::sim::emulator::{EmulatorBus, Firmware};
use podlight::policy::signature::TrustedKeys;
use podlight::policy::{EngineOptions, PolicyEngine};
use podlight::registry::{PolicyReference, RegistryClient, RegistryOptions};
use sha2::{Digest, Sha256};
use support::registry::{Registry, docker_config};
use support::{BREATHE_WASM, TESTKIT_WASM};

const SERIAL: &str = "BS000001-3.0";

pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `podlight ARGS`: success, stdout, stderr.
pub(crate) fn podlight(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(args)
        .output()
        .expect("podlight runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `podlight plugin push FILE REF` to `registry`; the pinned reference it prints.
pub(crate) fn push(registry: &Registry, file: &str, path: &str) -> String {
    registry.push(
        Path::new(env!("CARGO_BIN_EXE_podlight")),
        Path::new(file),
        path,
    )
}

pub(crate) fn client(
    registry: &Registry,
    cache: &Path,
    credentials: Option<&str>,
    max_bytes: usize,
) -> Arc<RegistryClient> {
    Arc::new(RegistryClient::new(RegistryOptions {
        credentials: credentials
            .map(|c| podlight::registry::Credentials::from_docker_config(c).expect("credentials"))
            .unwrap_or_default(),
        insecure: vec![registry.host()],
        extra_ca_pem: Vec::new(),
        max_bytes,
        cache_dir: Some(cache.to_path_buf()),
        ..RegistryOptions::default()
    }))
}

/// An agent on an emulated stick and a fixed snapshot, running `priority` from `dir`.
pub(crate) async fn start_agent(
    dir: &Path,
    trust: PolicyTrust,
) -> (RunningAgent, Arc<AgentStatus>, EmulatorBus) {
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let (_tx, rx) = tokio::sync::watch::channel(support::sample("all-running"));
    // The snapshot's sender may go: the agent keeps its last snapshot.
    std::mem::forget(_tx);
    let engine = Arc::new(PolicyEngine::new(EngineOptions::default()).expect("engine"));
    let source = PolicySource {
        dir: Some(dir.to_path_buf()),
        name: "priority".into(),
        api: None,
        trust,
    };
    let agent = AgentConfig::new(Arc::new(bus.clone()), rx, engine, source)
        .start()
        .await
        .expect("the agent starts");
    let state = Arc::clone(agent.status());
    (agent, state, bus)
}

pub(crate) async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `NAME.ref` (atomically, as a ConfigMap volume changes).
pub(crate) fn set_reference(dir: &Path, reference: &str) {
    let partial = dir.join(".priority.ref.partial");
    std::fs::write(&partial, reference).expect("write");
    std::fs::rename(&partial, dir.join("priority.ref")).expect("rename");
}

fn reload_results(state: &AgentStatus, result: &str) -> u64 {
    support::metric(
        state,
        &format!("podlight_policy_reloads_total{{result=\"{result}\"}}"),
    )
}

/// Points `priority.ref` at `reference` and waits for failed reload number `failures`,
/// whose message must say `says`, with the policy `running` still running.
async fn refused(
    policies: &Path,
    state: &AgentStatus,
    reference: &str,
    says: &str,
    failures: u64,
    running: &str,
) {
    set_reference(policies, reference);
    eventually(says, Duration::from_secs(60), || {
        reload_results(state, "failed") >= failures
    })
    .await;
    let policy = state.policy();
    let error = policy.last_error.clone().unwrap_or_default();
    assert!(error.contains(says), "expected {says:?} in {error:?}");
    assert_eq!(policy.sha256, running, "the running policy stays");
}

/// GET from the registry's own API with an Accept header; the body.
pub(crate) fn registry_get(port: u16, path: &str, accept: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

#[test]
fn push_and_pull_round_trip_in_the_wasm_artifact_format() {
    let registry = Registry::start(None);
    let pinned = push(&registry, TESTKIT_WASM, "policies/testkit:v1");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("pulled.wasm");
    let (ok, said, err) = podlight(&[
        "plugin",
        "pull",
        &pinned,
        &out.to_string_lossy(),
        "--insecure-registry",
        &registry.host(),
    ]);
    assert!(ok, "{err}");
    assert!(said.contains(&pinned), "{said}");
    assert_eq!(
        std::fs::read(&out).expect("pulled"),
        std::fs::read(TESTKIT_WASM).expect("testkit"),
        "the same component back"
    );
    // The artifact as other Wasm tooling expects it: an OCI image manifest whose config
    // is application/vnd.wasm.config.v0+json and whose one layer is application/wasm.
    let digest = pinned.rsplit('@').next().expect("digest");
    let manifest = registry_get(
        registry.port,
        &format!("/v2/policies/testkit/manifests/{digest}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("JSON");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(
        manifest["layers"][0]["digest"],
        format!(
            "sha256:{}",
            sha256(&std::fs::read(TESTKIT_WASM).expect("testkit"))
        )
    );
    // Not a component: refused before anything is pushed.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").expect("write");
    let (ok, _, err) = podlight(&[
        "plugin",
        "push",
        &junk.to_string_lossy(),
        &registry.reference("policies/junk:v1"),
        "--insecure-registry",
        &registry.host(),
    ]);
    assert!(!ok && err.contains("not a WebAssembly component"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referenced_policy_swaps_in_and_every_pull_failure_keeps_the_running_one() {
    let mut registry = Registry::start(None);
    let testkit = std::fs::read(TESTKIT_WASM).expect("testkit");
    let breathe = std::fs::read(BREATHE_WASM).expect("breathe");
    let testkit_ref = push(&registry, TESTKIT_WASM, "policies/testkit:v1");
    let breathe_ref = push(&registry, BREATHE_WASM, "policies/breathe:v1");
    let policies = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");
    let trust = PolicyTrust {
        registry: Some(client(&registry, cache.path(), None, 32 << 20)),
        keys: Arc::default(),
    };
    set_reference(policies.path(), &testkit_ref);
    let started = Instant::now();
    let (agent, state, _bus) = start_agent(policies.path(), trust.clone()).await;
    let policy = state.policy();
    assert_eq!(policy.sha256, sha256(&testkit), "{policy:?}");
    assert!(
        policy.origin.starts_with(&testkit_ref) && policy.origin.contains("pulled"),
        "{policy:?}"
    );
    println!(
        "registry: pull + compile + start of the testkit by reference: {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    // A tag: resolved when the reference changes.
    let blobs_before = registry.requests("/blobs/");
    let manifests_before = registry.requests("/manifests/");
    set_reference(policies.path(), &registry.reference("policies/breathe:v1"));
    eventually("the tagged policy", Duration::from_secs(60), || {
        state.policy().sha256 == sha256(&breathe)
    })
    .await;
    println!(
        "registry: a swap by tag made {} manifest and {} blob requests",
        registry.requests("/manifests/") - manifests_before,
        registry.requests("/blobs/") - blobs_before
    );

    // Each way a pull fails: its own message, and the running policy stays.
    let running = sha256(&breathe);
    let mut failures = 0;
    for (reference, says) in [
        (
            registry.reference("policies/breathe:v9"),
            "does not exist in the registry (404)",
        ),
        (
            registry.reference(&format!("policies/breathe@sha256:{}", "0".repeat(64))),
            "does not exist in the registry (404)",
        ),
        (
            "oci://127.0.0.1/Not A Reference".into(),
            "is not a policy reference",
        ),
    ] {
        failures += 1;
        refused(
            policies.path(),
            &state,
            &reference,
            says,
            failures,
            &running,
        )
        .await;
    }
    // A core module in an application/wasm layer: pulled, then refused as no component.
    let core = wat::parse_str("(module)").expect("a core module");
    let core_ref = PolicyReference::parse(&registry.reference("policies/core:v1")).expect("ref");
    trust
        .registry
        .as_ref()
        .expect("client")
        .push(&core_ref, &core, "policy.wasm", "2026-11-26T00:00:00Z")
        .await
        .expect("pushed");
    failures += 1;
    refused(
        policies.path(),
        &state,
        &registry.reference("policies/core:v1"),
        "component",
        failures,
        &running,
    )
    .await;
    // Tampered storage: the registry serves bytes that do not match the layer digest.
    let tampered_ref = push(&registry, TESTKIT_WASM, "policies/tampered:v1");
    let hex = sha256(&testkit);
    let blob = registry
        .storage()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex)
        .join("data");
    let mut bytes = std::fs::read(&blob).expect("the stored layer");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).expect("tamper");
    // The cache has the good layer from the first pull: a fresh cache must fetch.
    let fresh = tempfile::tempdir().expect("temp dir");
    drop(agent);
    let trust_fresh = PolicyTrust {
        registry: Some(client(&registry, fresh.path(), None, 32 << 20)),
        keys: Arc::default(),
    };
    set_reference(policies.path(), &breathe_ref);
    let (agent, state, _bus) = start_agent(policies.path(), trust_fresh).await;
    set_reference(policies.path(), &tampered_ref);
    eventually(
        "the tampered layer refused",
        Duration::from_secs(60),
        || {
            state
                .policy()
                .last_error
                .unwrap_or_default()
                .contains("not the sha256:")
        },
    )
    .await;
    assert_eq!(state.policy().sha256, running);
    std::fs::write(&blob, &testkit).expect("untamper");

    // The registry goes down during a swap: the old policy runs on, and the swap
    // happens when it is back.
    registry.stop();
    set_reference(policies.path(), &registry.reference("policies/testkit:v1"));
    eventually("the outage reported", Duration::from_secs(60), || {
        state
            .policy()
            .last_error
            .unwrap_or_default()
            .contains("unreachable")
    })
    .await;
    assert_eq!(state.policy().sha256, running, "the old policy runs on");
    registry.start_again();
    eventually(
        "the swap once the registry is back",
        Duration::from_secs(90),
        || state.policy().sha256 == sha256(&testkit),
    )
    .await;
    agent.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_policy_restarts_from_the_cache_without_the_registry() {
    let mut registry = Registry::start(None);
    let testkit = std::fs::read(TESTKIT_WASM).expect("testkit");
    let pinned = push(&registry, TESTKIT_WASM, "policies/testkit:v1");
    let policies = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");
    set_reference(policies.path(), &pinned);
    let trust = PolicyTrust {
        registry: Some(client(&registry, cache.path(), None, 32 << 20)),
        keys: Arc::default(),
    };
    let miss = Instant::now();
    let (agent, state, _bus) = start_agent(policies.path(), trust.clone()).await;
    let miss = miss.elapsed();
    assert_eq!(state.policy().sha256, sha256(&testkit));
    agent.stop(false).await;
    let requests = registry.requests("GET /v2/");
    // A restart with the registry gone: the digest-pinned policy comes from the cache.
    registry.stop();
    let hit = Instant::now();
    let (agent, state, _bus) = start_agent(policies.path(), trust).await;
    let hit = hit.elapsed();
    let policy = state.policy();
    assert_eq!(policy.sha256, sha256(&testkit), "{policy:?}");
    assert!(policy.origin.contains("cached"), "{policy:?}");
    registry.start_again();
    assert_eq!(
        registry.requests("GET /v2/"),
        requests,
        "no request on a cache hit"
    );
    println!(
        "registry: agent start with a pinned policy: {:.0} ms pulling, {:.0} ms from the cache",
        miss.as_secs_f64() * 1e3,
        hit.as_secs_f64() * 1e3
    );
    agent.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_docker_config_json_and_refusals() {
    let registry = Registry::start(Some(("lights", "s3cret")));
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = dir.path().join("config.json");
    std::fs::write(&auth, docker_config(&registry.host(), "lights", "s3cret")).expect("write");
    // Pushing needs the credentials too.
    let target = registry.reference("private/testkit:v1");
    let host = registry.host();
    let auth_arg = auth.to_string_lossy();
    let push_args = [
        "plugin",
        "push",
        TESTKIT_WASM,
        &target,
        "--insecure-registry",
        &host,
    ];
    let (ok, _, err) = podlight(&push_args);
    assert!(!ok && err.contains("refused the credentials"), "{err}");
    let (ok, pinned, err) = podlight(&[&push_args[..], &["--registry-auth", &auth_arg]].concat());
    assert!(ok, "{err}");
    let policies = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");
    set_reference(policies.path(), &pinned);
    // Without credentials: 401, said as such; the built-in policy runs.
    let (agent, state, _bus) = start_agent(
        policies.path(),
        PolicyTrust {
            registry: Some(client(&registry, cache.path(), None, 32 << 20)),
            keys: Arc::default(),
        },
    )
    .await;
    let policy = state.policy();
    assert_eq!(policy.origin, "builtin");
    assert!(
        policy
            .last_error
            .clone()
            .unwrap_or_default()
            .contains("refused the credentials"),
        "{policy:?}"
    );
    agent.stop(false).await;
    // With them: pulled. And over the size limit: refused before the layer is fetched.
    let config = std::fs::read_to_string(&auth).expect("config");
    let (agent, state, _bus) = start_agent(
        policies.path(),
        PolicyTrust {
            registry: Some(client(&registry, cache.path(), Some(&config), 32 << 20)),
            keys: Arc::default(),
        },
    )
    .await;
    assert_eq!(
        state.policy().sha256,
        sha256(&std::fs::read(TESTKIT_WASM).expect("testkit"))
    );
    agent.stop(false).await;
    let small = tempfile::tempdir().expect("temp dir");
    let (agent, state, _bus) = start_agent(
        policies.path(),
        PolicyTrust {
            registry: Some(client(&registry, small.path(), Some(&config), 1024)),
            keys: Arc::default(),
        },
    )
    .await;
    let error = state.policy().last_error.unwrap_or_default();
    assert!(error.contains("over the 1024-byte limit"), "{error}");
    agent.stop(false).await;
}

/// Real cosign (scripts/build-control-plane): a key pair in `dir`, password-less.
pub(crate) fn cosign(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(support::control_plane::binary("cosign"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "")
        .env("HOME", dir)
        .output()
        .expect("cosign runs")
}

pub(crate) fn signed_by_cosign(dir: &Path, plugin: &Path) -> Vec<u8> {
    let signature = dir.join("signature");
    let out = cosign(
        dir,
        &[
            "sign-blob",
            "--yes",
            "--key",
            "cosign.key",
            "--tlog-upload=false",
            "--output-signature",
            &signature.to_string_lossy(),
            &plugin.to_string_lossy(),
        ],
    );
    assert!(
        out.status.success(),
        "cosign sign-blob: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(signature).expect("the signature")
}

/// A password-less key pair made by cosign in a new directory, and its public key
/// as the agent trusts it.
pub(crate) fn cosign_key_pair() -> (tempfile::TempDir, TrustedKeys) {
    let keys = tempfile::tempdir().expect("temp dir");
    let out = cosign(keys.path(), &["generate-key-pair"]);
    assert!(
        out.status.success(),
        "cosign generate-key-pair: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut trusted = TrustedKeys::default();
    trusted
        .add_pem(
            "cosign.pub",
            &std::fs::read_to_string(keys.path().join("cosign.pub")).expect("cosign.pub"),
        )
        .expect("a cosign public key");
    (keys, trusted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_plugins_signed_with_a_trusted_key_run() {
    let (keys, trusted) = cosign_key_pair();
    let testkit = std::fs::read(TESTKIT_WASM).expect("testkit");
    let breathe = std::fs::read(BREATHE_WASM).expect("breathe");
    let policies = tempfile::tempdir().expect("temp dir");
    // Signed: runs.
    std::fs::write(policies.path().join("priority.wasm"), &testkit).expect("write");
    std::fs::write(
        policies.path().join("priority.sig"),
        signed_by_cosign(keys.path(), Path::new(TESTKIT_WASM)),
    )
    .expect("write");
    let trust = PolicyTrust {
        registry: None,
        keys: Arc::new(trusted),
    };
    let (agent, state, _bus) = start_agent(policies.path(), trust).await;
    assert_eq!(
        state.policy().sha256,
        sha256(&testkit),
        "{:?}",
        state.policy()
    );
    // Tampered (another plugin under the same signature): refused, last good kept.
    let replace = |name: &str, bytes: &[u8]| {
        let partial = policies.path().join(format!(".{name}.partial"));
        std::fs::write(&partial, bytes).expect("write");
        std::fs::rename(&partial, policies.path().join(name)).expect("rename");
    };
    replace("priority.wasm", &breathe);
    eventually(
        "the tampered plugin refused",
        Duration::from_secs(60),
        || reload_results(&state, "unverified") >= 1,
    )
    .await;
    let policy = state.policy();
    assert!(
        policy
            .last_error
            .clone()
            .unwrap_or_default()
            .contains("does not verify with any trusted key"),
        "{policy:?}"
    );
    assert_eq!(
        policy.sha256,
        sha256(&testkit),
        "the last good policy runs on"
    );
    // Unsigned: refused too.
    std::fs::remove_file(policies.path().join("priority.sig")).expect("remove");
    eventually(
        "the unsigned plugin refused",
        Duration::from_secs(60),
        || reload_results(&state, "unverified") >= 2,
    )
    .await;
    assert!(
        state
            .policy()
            .last_error
            .unwrap_or_default()
            .contains("is not signed")
    );
    // Signed properly: swaps in; and cosign itself agrees with podlight.
    let signature = signed_by_cosign(keys.path(), Path::new(BREATHE_WASM));
    replace("priority.sig", &signature);
    eventually("the signed plugin", Duration::from_secs(60), || {
        state.policy().sha256 == sha256(&breathe)
    })
    .await;
    let out = cosign(
        keys.path(),
        &[
            "verify-blob",
            "--key",
            "cosign.pub",
            "--insecure-ignore-tlog=true",
            "--signature",
            &policies.path().join("priority.sig").to_string_lossy(),
            BREATHE_WASM,
        ],
    );
    assert!(
        out.status.success(),
        "cosign verify-blob: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.stop(false).await;
}

/// `podlight plugin pull` of `path` gives the bytes of `expected`.
fn podlight_pulls(registry: &Registry, path: &str, dir: &Path, expected: &str) {
    let out = dir.join("pulled-by-podlight.wasm");
    let (ok, _, err) = podlight(&[
        "plugin",
        "pull",
        &registry.reference(path),
        &out.to_string_lossy(),
        "--insecure-registry",
        &registry.host(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(&out).expect("pulled"),
        std::fs::read(expected).expect("the pushed file")
    );
}

/// Real oras (scripts/build-control-plane), another OCI client, against `registry`.
fn oras(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(support::control_plane::binary("oras"))
        .args(args)
        .arg("--plain-http")
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .expect("oras runs");
    assert!(
        out.status.success(),
        "oras {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn other_oci_tooling_reads_what_podlight_pushes_and_back() {
    let registry = Registry::start(None);
    let dir = tempfile::tempdir().expect("temp dir");
    // oras pulls what podlight pushed: the component, under its file name.
    push(&registry, TESTKIT_WASM, "interop/from-podlight:v1");
    oras(
        dir.path(),
        &[
            "pull",
            &format!("{}/interop/from-podlight:v1", registry.host()),
            "--output",
            "pulled",
        ],
    );
    let pulled = dir
        .path()
        .join("pulled")
        .join(Path::new(TESTKIT_WASM).file_name().expect("a file name"));
    assert_eq!(
        std::fs::read(&pulled).expect("oras wrote the component"),
        std::fs::read(TESTKIT_WASM).expect("testkit")
    );
    // podlight pulls what oras pushed in the Wasm artifact format.
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"architecture":"wasm","os":"wasip2"}"#,
    )
    .expect("config");
    std::fs::copy(BREATHE_WASM, dir.path().join("breathe.wasm")).expect("copy");
    oras(
        dir.path(),
        &[
            "push",
            &format!("{}/interop/from-oras:v1", registry.host()),
            "--config",
            "config.json:application/vnd.wasm.config.v0+json",
            "breathe.wasm:application/wasm",
        ],
    );
    podlight_pulls(&registry, "interop/from-oras:v1", dir.path(), BREATHE_WASM);
    // An artifact that is not a Wasm component: refused, saying what it holds.
    oras(
        dir.path(),
        &[
            "push",
            &format!("{}/interop/not-wasm:v1", registry.host()),
            "breathe.wasm:application/octet-stream",
        ],
    );
    let (ok, _, err) = podlight(&[
        "plugin",
        "pull",
        &registry.reference("interop/not-wasm:v1"),
        &dir.path().join("x.wasm").to_string_lossy(),
        "--insecure-registry",
        &registry.host(),
    ]);
    assert!(
        !ok && err.contains("no `application/wasm` layer (found: application/octet-stream)"),
        "{err}"
    );
}

/// Real wkg (scripts/setup-test), the Wasm package tools' OCI client, in `dir`.
fn wkg(dir: &Path, registry: &Registry, args: &[&str]) {
    let out = Command::new(support::control_plane::binary("wkg"))
        .args(["oci"])
        .args(args)
        .args(["--insecure", &registry.host()])
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .expect("wkg runs");
    assert!(
        out.status.success(),
        "wkg oci {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn wkg_reads_what_podlight_pushes_and_back() {
    let registry = Registry::start(None);
    let dir = tempfile::tempdir().expect("temp dir");
    push(&registry, TESTKIT_WASM, "interop/for-wkg:v1");
    let pulled = dir.path().join("from-podlight.wasm");
    wkg(
        dir.path(),
        &registry,
        &[
            "pull",
            &format!("{}/interop/for-wkg:v1", registry.host()),
            "-o",
            &pulled.to_string_lossy(),
        ],
    );
    assert_eq!(
        std::fs::read(&pulled).expect("wkg wrote the component"),
        std::fs::read(TESTKIT_WASM).expect("testkit")
    );
    wkg(
        dir.path(),
        &registry,
        &[
            "push",
            &format!("{}/interop/from-wkg:v1", registry.host()),
            BREATHE_WASM,
        ],
    );
    podlight_pulls(&registry, "interop/from-wkg:v1", dir.path(), BREATHE_WASM);
}
