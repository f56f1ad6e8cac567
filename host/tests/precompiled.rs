//! Precompiled policies per machine, on a real registry with real cosign: `podlight
//! plugin compile --target` for x86-64, 64-bit ARM and 32-bit ARM (Pulley), pushed
//! beside the component as referrers; an agent loads the artifact of its own machine
//! without compiling, and compiles instead — saying why — when the artifact is
//! tampered with, unsigned, built by another wasmtime, for another machine, or
//! missing. What cannot be an artifact of the component is refused at push.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podlight::agent::{AgentStatus, PolicyTrust};
use podlight::policy::PrecompiledUse;
use podlight::policy::signature::TrustedKeys;
use podlight::registry::precompiled::{OCI_INDEX, PRECOMPILED_ARTIFACT, TARGET_ANNOTATION};
use podlight_testsupport as support;
use support::registry::Registry;
use support::{BREATHE_WASM, TESTKIT_WASM};

use crate::oci_policies::{
    client, cosign_key_pair, eventually, podlight, registry_get, set_reference, sha256,
    signed_by_cosign, start_agent,
};

/// `podlight plugin compile --target TARGET PLUGIN OUT`, then signed as OUT.sig.
fn compile_signed(keys: &Path, plugin: &str, target: &str, dir: &Path) -> PathBuf {
    let out = dir.join(format!("policy.{target}.cwasm"));
    let (ok, _, err) = podlight(&[
        "plugin",
        "compile",
        "--target",
        target,
        plugin,
        &out.to_string_lossy(),
    ]);
    assert!(ok, "plugin compile --target {target}: {err}");
    sign(keys, &out);
    out
}

/// Signs `file` with cosign into `file.sig`.
fn sign(keys: &Path, file: &Path) {
    let signature = signed_by_cosign(keys, file);
    std::fs::write(format!("{}.sig", file.display()), signature).expect("write");
}

/// `podlight plugin push TESTKIT REF --precompiled …`: success, stdout, stderr.
fn push(registry: &Registry, path: &str, artifacts: &[&Path]) -> (bool, String, String) {
    let reference = registry.reference(path);
    let host = registry.host();
    let mut args = vec![
        "plugin".to_string(),
        "push".into(),
        TESTKIT_WASM.into(),
        reference,
        "--insecure-registry".into(),
        host,
    ];
    for artifact in artifacts {
        args.push("--precompiled".into());
        args.push(artifact.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    podlight(&args)
}

fn pushed(registry: &Registry, path: &str, artifacts: &[&Path]) -> String {
    let (ok, out, err) = push(registry, path, artifacts);
    assert!(ok, "push {path}: {err}");
    out.lines().next().unwrap_or_default().to_string()
}

/// Waits until the agent has run a reload of `reference` and says what became of its
/// precompiled artifact.
async fn precompiled_use(
    policies: &Path,
    state: &AgentStatus,
    reference: &str,
) -> (PrecompiledUse, Duration) {
    let started = Instant::now();
    set_reference(policies, reference);
    eventually(reference, Duration::from_secs(120), || {
        state.policy().origin.contains(reference)
    })
    .await;
    let policy = state.policy();
    assert_eq!(
        policy.sha256,
        sha256(&std::fs::read(TESTKIT_WASM).expect("testkit")),
        "the testkit runs: {policy:?}"
    );
    (
        policy
            .precompiled
            .clone()
            .expect("says what became of the artifact"),
        started.elapsed(),
    )
}

fn refused_because(outcome: &PrecompiledUse, says: &str) {
    match outcome {
        PrecompiledUse::Refused { reason } => {
            assert!(reason.contains(says), "expected {says:?} in {reason:?}")
        }
        PrecompiledUse::Loaded => panic!("loaded, but expected refused because {says:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_loads_its_machines_signed_artifact_and_compiles_otherwise() {
    let registry = Registry::start(None);
    let (keys, trusted) = cosign_key_pair();
    let work = tempfile::tempdir().expect("temp dir");
    let artifacts: Vec<PathBuf> = ["x86_64", "aarch64", "armv7"]
        .iter()
        .map(|target| compile_signed(keys.path(), TESTKIT_WASM, target, work.path()))
        .collect();
    let all: Vec<&Path> = artifacts.iter().map(PathBuf::as_path).collect();

    // What cannot stand for the component is refused at push: unsigned, or compiled
    // from another component.
    let unsigned = work.path().join("unsigned.cwasm");
    std::fs::copy(&artifacts[0], &unsigned).expect("copy");
    let (ok, _, err) = push(&registry, "p/testkit:unsigned", &[&unsigned]);
    assert!(!ok && err.contains("is not signed"), "{err}");
    let elsewhere = work.path().join("breathe");
    std::fs::create_dir(&elsewhere).expect("dir");
    let other = compile_signed(keys.path(), BREATHE_WASM, "x86_64", &elsewhere);
    let (ok, _, err) = push(&registry, "p/testkit:other", &[&other]);
    assert!(!ok && err.contains("compiled from component"), "{err}");

    // Three machines under one reference, listed as referrers of the component.
    let full = pushed(&registry, "p/testkit:v1", &all);
    let digest = full.rsplit_once('@').map(|(_, d)| d).expect("pinned");
    let index: serde_json::Value = serde_json::from_str(&registry_get(
        registry.port,
        &format!("/v2/p/testkit/manifests/{}", digest.replace(':', "-")),
        OCI_INDEX,
    ))
    .expect("the referrers index");
    let mut targets: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .inspect(|m| assert_eq!(m["artifactType"], PRECOMPILED_ARTIFACT, "{m}"))
        .filter_map(|m| m["annotations"][TARGET_ANNOTATION].as_str())
        .collect();
    targets.sort();
    assert_eq!(targets, ["aarch64", "armv7", "x86_64"]);

    // A trusting agent: the component signed, the artifacts signed by the same key.
    let policies = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        policies.path().join("priority.sig"),
        signed_by_cosign(keys.path(), Path::new(TESTKIT_WASM)),
    )
    .expect("write");
    let cache = tempfile::tempdir().expect("temp dir");
    let trust = PolicyTrust {
        registry: Some(client(&registry, cache.path(), None, 32 << 20)),
        keys: Arc::new(trusted),
    };
    let (agent, state, _bus) = start_agent(policies.path(), trust).await;
    let (outcome, precompiled_swap) = precompiled_use(policies.path(), &state, &full).await;
    assert_eq!(outcome, PrecompiledUse::Loaded);

    // Only an aarch64 artifact: this x86-64 agent compiles, and says so.
    let arm_only = pushed(&registry, "p/testkit:arm", &[&artifacts[1]]);
    let (outcome, compiled_swap) = precompiled_use(policies.path(), &state, &arm_only).await;
    refused_because(&outcome, "no precompiled artifact for x86_64");
    refused_because(&outcome, "aarch64 (wasmtime 48.0.8)");
    println!(
        "precompiled: testkit swap by reference with its x86_64 artifact {:.0} ms, compiled on the node {:.0} ms",
        precompiled_swap.as_secs_f64() * 1e3,
        compiled_swap.as_secs_f64() * 1e3
    );

    // Tampered after signing: the signature no longer verifies.
    let tampered = work.path().join("tampered.cwasm");
    let mut bytes = std::fs::read(&artifacts[0]).expect("artifact");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&tampered, bytes).expect("write");
    std::fs::copy(
        format!("{}.sig", artifacts[0].display()),
        format!("{}.sig", tampered.display()),
    )
    .expect("copy");
    let reference = pushed(&registry, "p/testkit:tampered", &[&tampered]);
    let (outcome, _) = precompiled_use(policies.path(), &state, &reference).await;
    refused_because(&outcome, "does not verify with any trusted key");

    // Built by another wasmtime (its engine section says major version 47), signed:
    // wasmtime itself refuses the code.
    let older = work.path().join("older.cwasm");
    let mut bytes = std::fs::read(&artifacts[0]).expect("artifact");
    let at: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"\x00\x0248")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "one engine version section");
    bytes[at[0] + 3] = b'7';
    std::fs::write(&older, bytes).expect("write");
    sign(keys.path(), &older);
    let reference = pushed(&registry, "p/testkit:older", &[&older]);
    let (outcome, _) = precompiled_use(policies.path(), &state, &reference).await;
    refused_because(&outcome, "incompatible version '47'");
    agent.stop(false).await;

    // An agent that trusts no key never runs precompiled code. (Its own cache: a
    // pinned reference pulled before is taken from the cache, whose compiled form the
    // compile cache keeps.)
    let policies = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");
    let trust = PolicyTrust {
        registry: Some(client(&registry, cache.path(), None, 32 << 20)),
        keys: Arc::new(TrustedKeys::default()),
    };
    let (agent, state, _bus) = start_agent(policies.path(), trust).await;
    let (outcome, _) = precompiled_use(policies.path(), &state, &full).await;
    refused_because(&outcome, "no --verify-key is set");
    agent.stop(false).await;
}
