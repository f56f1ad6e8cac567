//! What podlight's integration tests and benchmarks share: plugins built by the real
//! toolchain, sample snapshots, engines on both backends, a real control plane and
//! cluster helpers, the example policies, and the baselines benchmarks compare with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use podlight::policy::{Backend, EngineOptions, PolicyEngine};
use podlight::state::Snapshot;

pub use podlight::test_plugins::{
    BREATHE_WASM, PRIORITY_0_2_WASM, PRIORITY_0_3_WASM, TESTKIT_WASM,
};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every sample under examples/snapshots, by file stem, sorted.
pub fn sample_snapshots() -> Vec<(String, Arc<Snapshot>)> {
    let dir = repo_root().join("examples/snapshots");
    let mut samples: Vec<(String, Arc<Snapshot>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let snapshot =
                Snapshot::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (stem, Arc::new(snapshot))
        })
        .collect();
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    samples
}

pub fn sample(name: &str) -> Arc<Snapshot> {
    sample_snapshots()
        .into_iter()
        .find(|(stem, _)| stem == name)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no sample snapshot {name}"))
}

pub fn engine(backend: Backend) -> PolicyEngine {
    PolicyEngine::new(EngineOptions {
        backend,
        ..EngineOptions::default()
    })
    .expect("engine")
}

/// Both backends: the policy tests run on each.
pub const BACKENDS: [Backend; 2] = [Backend::Cranelift, Backend::Pulley];

/// Compiles WebAssembly text to binary, for hand-made malformed plugins.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

pub mod alertmanager;
pub mod atomic_writer;
pub mod cluster;
pub mod control_plane;
pub mod counting_proxy;
pub mod example_policies;
pub mod helm;
pub mod hostile_registry;
pub mod http_client;
pub mod process;
pub mod prototype;
pub mod registry;
pub mod spinning_writer;

/// A small component that is expensive to compile: one loop over `values` locals,
/// with a branch back to the loop's start after updating each of them. Every branch
/// carries every local into the loop header (`values`² block arguments once in SSA
/// form), so a few tens of KB of WebAssembly take Cranelift seconds and hundreds of
/// MB to compile.
pub fn expensive_to_compile(values: usize) -> Vec<u8> {
    use std::fmt::Write;
    let mut body = String::new();
    for i in 0..values {
        let _ = write!(body, "(local $v{i} i64) ");
    }
    body.push_str("(loop $top ");
    for i in 0..values {
        let previous = if i == 0 { values - 1 } else { i - 1 };
        let _ = write!(
            body,
            "(local.set $v{i} (i64.add (i64.mul (local.get $v{i}) (local.get $v{previous})) (local.get $p))) \
             (br_if $top (i64.eqz (local.get $v{i}))) "
        );
    }
    body.push_str(") (local.get $v0) ");
    for i in 1..values {
        let _ = write!(body, "(i64.xor (local.get $v{i})) ");
    }
    wat(&format!(
        "(component (core module (func (export \"f\") (param $p i64) (result i64) {body})))"
    ))
}

/// A counter's value in an agent's metrics (`name{labels}` as exposed); 0 if absent.
pub fn metric(state: &podlight::agent::AgentStatus, series: &str) -> u64 {
    let prefix = format!("{series} ");
    state
        .metrics
        .render(state)
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}
