//! What a registry cannot do to an agent: hold its swaps, make it miss a change, fill
//! its log with escapes or its memory with a gigabyte. A registry that misbehaves on
//! purpose (`hostile_registry`) beside the real one (CNCF distribution).

use podlight_testsupport as support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use podlight::agent::PolicyTrust;
use podlight::policy::PrecompiledUse;
use podlight::registry::{RegistryClient, RegistryOptions};
use support::hostile_registry::HostileRegistry;
use support::process::run_measured;
use support::registry::Registry;
use support::{BREATHE_WASM, TESTKIT_WASM};

use crate::oci_policies::{eventually, push, set_reference, sha256, start_agent};

/// A client for every registry in `hosts` (all plain HTTP on loopback).
fn trusting(hosts: &[String], cache: &Path, deadline: Option<Duration>) -> PolicyTrust {
    let defaults = RegistryOptions::default();
    PolicyTrust {
        registry: Some(Arc::new(RegistryClient::new(RegistryOptions {
            insecure: hosts.to_vec(),
            cache_dir: Some(cache.to_path_buf()),
            deadline: deadline.unwrap_or(defaults.deadline),
            ..defaults
        }))),
        keys: Arc::default(),
    }
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).expect("a test plugin")
}

/// `component` with a custom section appended: the same policy with a digest no pull
/// has cached before.
fn distinct(component: &[u8], tag: &str) -> Vec<u8> {
    let mut bytes = component.to_vec();
    let name = b"podlight-test";
    let payload_len = 1 + name.len() + tag.len();
    assert!(
        payload_len < 128 && name.len() < 128,
        "one-byte LEB128 sizes"
    );
    bytes.push(0); // a custom section
    bytes.push(payload_len as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_registry_holds_no_swap_and_the_newer_change_wins() {
    let registry = Registry::start(None);
    let (testkit, breathe) = (read(TESTKIT_WASM), read(BREATHE_WASM));
    // Not in the cache from the good pulls, so its layer must really be fetched.
    let hostile = HostileRegistry::start(distinct(&testkit, "slow"));
    let breathe_ref = push(&registry, BREATHE_WASM, "policies/breathe:v1");
    let testkit_ref = push(&registry, TESTKIT_WASM, "policies/testkit:v1");
    let (policies, cache) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let trust = trusting(&[registry.host(), hostile.host()], cache.path(), None);
    set_reference(policies.path(), &testkit_ref);
    let (agent, state, _bus) = start_agent(policies.path(), trust).await;
    // Both good policies compiled once, so a swap back is quick.
    set_reference(policies.path(), &breathe_ref);
    eventually("breathe", Duration::from_secs(60), || {
        state.policy().sha256 == sha256(&breathe)
    })
    .await;
    // A registry that trickles one byte every 2 s would hold a pull for hours (its
    // deadline here is 30 s and more): the good reference written while it trickles
    // must run long before that.
    for (behaviour, then, expected) in [
        ("slow-layer", &testkit_ref, &testkit),
        ("slow-manifest", &breathe_ref, &breathe),
    ] {
        let before = state.policy().sha256;
        set_reference(policies.path(), &hostile.reference(behaviour));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            state.policy().sha256,
            before,
            "{behaviour}: nothing swapped"
        );
        let changed = Instant::now();
        set_reference(policies.path(), then);
        eventually(
            &format!("the newer reference to win over the {behaviour} pull"),
            Duration::from_secs(20),
            || state.policy().sha256 == sha256(expected),
        )
        .await;
        println!(
            "registry bounds: a {behaviour} pull in flight, then a good reference: swapped in {:.0} ms",
            changed.elapsed().as_secs_f64() * 1e3
        );
    }
    agent.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pull_has_an_overall_deadline() {
    let hostile = HostileRegistry::start(read(TESTKIT_WASM));
    let (policies, cache) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let trust = trusting(
        &[hostile.host()],
        cache.path(),
        Some(Duration::from_secs(2)),
    );
    for (behaviour, what) in [("slow-manifest", "manifest"), ("slow-layer", "Wasm layer")] {
        set_reference(policies.path(), &hostile.reference(behaviour));
        let started = Instant::now();
        let (agent, state, _bus) = start_agent(policies.path(), trust.clone()).await;
        let error = state.policy().last_error.unwrap_or_default();
        assert!(
            error.contains(&format!("the {what} did not arrive within 2 s"))
                && error.contains("unreachable or too slow"),
            "{behaviour}: {error}"
        );
        assert_eq!(state.policy().origin, "builtin", "the built-in policy runs");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the deadline ended the pull"
        );
        agent.stop(false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_the_first_policy_loads_is_not_lost() {
    let registry = Registry::start(None);
    let testkit = read(TESTKIT_WASM);
    let hostile = HostileRegistry::start(testkit.clone());
    let testkit_ref = push(&registry, TESTKIT_WASM, "policies/testkit:v1");
    let (policies, cache) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let trust = trusting(&[registry.host(), hostile.host()], cache.path(), None);
    // The first load is a pull that trickles; the reference changes while it does.
    set_reference(policies.path(), &hostile.reference("slow-manifest"));
    let dir = policies.path().to_path_buf();
    let starting = tokio::spawn(async move { start_agent(&dir, trust).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    set_reference(policies.path(), &testkit_ref);
    let started = tokio::time::timeout(Duration::from_secs(25), starting)
        .await
        .expect("the agent started well before the slow pull's deadline")
        .expect("the start task");
    let (agent, state, _bus) = started;
    assert_eq!(
        state.policy().sha256,
        sha256(&testkit),
        "{:?}",
        state.policy()
    );
    agent.stop(false).await;
}

/// An agent whose policy is a reference to the hostile registry's `behaviour`.
struct OnHostile {
    registry: HostileRegistry,
    _policies: tempfile::TempDir,
    cache: tempfile::TempDir,
    agent: podlight::agent::RunningAgent,
    state: Arc<podlight::agent::AgentStatus>,
    _bus: podlight::device::sim::emulator::EmulatorBus,
}

impl OnHostile {
    async fn start(behaviour: &str) -> OnHostile {
        let registry = HostileRegistry::start(read(TESTKIT_WASM));
        let (policies, cache) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        set_reference(policies.path(), &registry.reference(behaviour));
        let trust = trusting(&[registry.host()], cache.path(), None);
        let (agent, state, bus) = start_agent(policies.path(), trust).await;
        OnHostile {
            registry,
            _policies: policies,
            cache,
            agent,
            state,
            _bus: bus,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrys_words_reach_no_log_page_or_report_raw() {
    let on = OnHostile::start("noisy").await;
    let (hostile, cache, agent, state) = (&on.registry, on.cache.path(), on.agent, &on.state);
    let policy = state.policy();
    let error = policy.last_error.clone().unwrap_or_default();
    assert!(error.contains("500"), "{error}");
    assert!(
        error.contains("FATAL"),
        "the registry's words, escaped: {error}"
    );
    assert!(!error.chars().any(char::is_control), "{error:?}");
    assert!(error.len() < 2_000, "{} bytes", error.len());
    let reload = policy.last_reload.expect("the failure is reported");
    assert_eq!(reload.error.as_deref(), Some(error.as_str()));
    agent.stop(false).await;
    // The command line says the same, on one line.
    let out = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(["plugin", "pull", &hostile.reference("noisy")])
        .arg(cache.join("out.wasm"))
        .args(["--insecure-registry", &hostile.host()])
        .output()
        .expect("podlight runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        !said.contains('\x1b') && said.trim().lines().count() == 1,
        "{said}"
    );
    assert!(said.len() < 2_000, "{} bytes", said.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_referrers_index_steers_no_request_and_the_policy_is_compiled() {
    let on = OnHostile::start("hostile-referrers").await;
    let (agent, state) = (on.agent, &on.state);
    eventually("the policy", Duration::from_secs(60), || {
        state.policy().sha256 == sha256(&read(TESTKIT_WASM))
    })
    .await;
    // An artifact whose digest would steer the request elsewhere is not one; 30,000
    // entries are read only as far as the first 64; nothing of theirs is said raw.
    match state.policy().precompiled {
        Some(PrecompiledUse::Refused { reason }) => {
            assert!(reason.contains("no precompiled artifact for"), "{reason}");
            assert!(reason.contains("(it has: none)"), "{reason}");
            assert!(!reason.chars().any(char::is_control), "{reason:?}");
            assert!(reason.len() < 2_000, "{} bytes", reason.len());
        }
        other => panic!("expected a refusal: {other:?}"),
    }
    agent.stop(false).await;
}

/// The DaemonSet's memory limit, as `RLIMIT_DATA`: a child that needs more fails.
const AGENT_MEMORY_LIMIT: u64 = 160 << 20;

#[test]
fn a_registry_cannot_take_the_agents_memory() {
    let hostile = HostileRegistry::start(read(TESTKIT_WASM));
    let dir = tempfile::tempdir().expect("dir");
    let pull = |behaviour: &str| {
        run_measured(
            Command::new(env!("CARGO_BIN_EXE_podlight"))
                .args(["plugin", "pull", &hostile.reference(behaviour)])
                .arg(dir.path().join(format!("{behaviour}.wasm")))
                .args(["--insecure-registry", &hostile.host()]),
            Some(AGENT_MEMORY_LIMIT),
        )
    };
    // The baseline in the same run: a correct pull of the same plugin.
    let good = pull("good");
    assert!(good.success, "{}", good.stderr);
    println!(
        "registry bounds: peak RSS of a good pull {:.1} MiB",
        good.peak_rss_mib
    );
    for (behaviour, says, bounded) in [
        ("huge-manifest", "larger than the 4194304-byte bound", true),
        ("huge-token", "larger than the 262144-byte bound", true),
        ("huge-error", "answered 500", true),
        ("noisy", "answered 500", true),
        // A layer is bounded by the plugin limit (64 MiB for `plugin pull`).
        ("lying-layer", "over the 67108864-byte limit", false),
    ] {
        let refused = pull(behaviour);
        assert_eq!(
            refused.signal, None,
            "{behaviour}: killed: {}",
            refused.stderr
        );
        assert!(
            !refused.success && refused.stderr.contains(says),
            "{behaviour}: expected {says:?} in {}",
            refused.stderr
        );
        println!(
            "registry bounds: {behaviour}: refused in {:.1} s, peak RSS {:.1} MiB",
            refused.elapsed.as_secs_f64(),
            refused.peak_rss_mib
        );
        if bounded {
            assert!(
                refused.peak_rss_mib < good.peak_rss_mib + 12.0,
                "{behaviour}: {:.1} MiB against {:.1} MiB for a good pull",
                refused.peak_rss_mib,
                good.peak_rss_mib
            );
        }
    }
}
