//! Policies from an OCI registry: for each example policy, pushed to a real registry
//! on loopback (CNCF distribution), the time to pull it (cache miss), to take it from
//! the cache (a restart), to verify its signature, and to compile it in the budgeted
//! child process the agent uses (with that child's peak RSS); against the baseline of
//! reading the same file from a local directory. Also the registry requests one swap
//! makes, by tag and pinned, cold and cached.
//!
//! Run: `cargo bench -p podlight --bench registry` (needs scripts/build-control-plane's
//! registry and the example policies, which it builds).

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use podlight::policy::signature::TrustedKeys;
use podlight::registry::{PolicyReference, RegistryClient, RegistryOptions};
use podlight_testsupport::example_policies::example_policies;
use podlight_testsupport::process::run_measured;
use podlight_testsupport::registry::Registry;

fn client(registry: &Registry, cache: &Path) -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        insecure: vec![registry.host()],
        max_bytes: 64 << 20,
        cache_dir: Some(cache.to_path_buf()),
        ..RegistryOptions::default()
    })
}

/// Compiles `wasm` as the agent does (`podlight plugin compile` in a child, one
/// thread, under a 512 MiB budget); the wall time and the child's peak RSS in MiB.
fn compile_in_child(wasm: &Path, out: &Path) -> (Duration, f64) {
    let compiled = run_measured(
        std::process::Command::new(env!("CARGO_BIN_EXE_podlight"))
            .args(["plugin", "compile"])
            .arg(wasm)
            .arg(out)
            .args(["--memory-budget-mib", "512", "--cpu-budget-seconds", "600"]),
        None,
    );
    assert!(
        compiled.success,
        "compile of {} failed: {}",
        wasm.display(),
        compiled.stderr
    );
    (compiled.elapsed, compiled.peak_rss_mib)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let registry = Registry::start(None);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let scratch = tempfile::tempdir().expect("temp dir");
    let signing = SigningKey::from_slice(&[7; 32]).expect("key");
    let mut keys = TrustedKeys::default();
    keys.add_pem(
        "bench.pub",
        &signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM"),
    )
    .expect("key");

    let mut plugins: Vec<(String, std::path::PathBuf)> = vec![
        (
            "Rust: priority".into(),
            env!("PODLIGHT_PRIORITY_WASM").into(),
        ),
        ("Rust: breathe".into(), env!("PODLIGHT_BREATHE_WASM").into()),
    ];
    plugins.extend(
        example_policies()
            .iter()
            .map(|e| (format!("{}: {}", e.language, e.folder), e.wasm.clone())),
    );
    println!("\n== policies from a loopback OCI registry ==");
    println!(
        "{:<26} | {:>9} | {:>11} | {:>10} | {:>9} | {:>8} | {:>11} | {:>9}",
        "policy", "size", "local read", "pull", "cache hit", "verify", "compile", "peak RSS"
    );
    for (index, (name, path)) in plugins.iter().enumerate() {
        let local = Instant::now();
        let bytes = std::fs::read(path).expect("plugin built");
        let local = local.elapsed();
        let repository = format!("bench/p{index}:v1");
        let reference = PolicyReference::parse(&registry.reference(&repository)).expect("ref");
        let cache = scratch.path().join(format!("cache-{index}"));
        let client = client(&registry, &cache);
        let digest = runtime
            .block_on(client.push(&reference, &bytes, "policy.wasm", "2026-11-26T00:00:00Z"))
            .expect("push");
        let pinned = reference.pinned(&digest);
        let pull = Instant::now();
        let pulled = runtime.block_on(client.pull(&pinned)).expect("pull");
        let pull = pull.elapsed();
        assert!(!pulled.from_cache && pulled.bytes == bytes);
        let hit = Instant::now();
        let cached = runtime.block_on(client.pull(&pinned)).expect("cached");
        let hit = hit.elapsed();
        assert!(cached.from_cache);
        let signature: DerSignature = signing.sign(&bytes);
        let signature = base64::engine::general_purpose::STANDARD.encode(signature.as_bytes());
        let verify = Instant::now();
        keys.verify(name, &bytes, Some(signature.as_bytes()))
            .expect("verifies");
        let verify = verify.elapsed();
        let wasm = scratch.path().join(format!("p{index}.wasm"));
        std::fs::write(&wasm, &pulled.bytes).expect("write");
        let (compile, rss) =
            compile_in_child(&wasm, &scratch.path().join(format!("p{index}.cwasm")));
        println!(
            "{name:<26} | {:>6.0} KB | {:>11} | {:>10} | {:>9} | {:>8} | {:>11} | {:>6.0} MiB",
            bytes.len() as f64 / 1024.0,
            ms(local),
            ms(pull),
            ms(hit),
            ms(verify),
            ms(compile),
            rss
        );
    }

    // Registry traffic per swap of one policy (the testkit-sized priority plugin).
    let bytes = std::fs::read(env!("PODLIGHT_PRIORITY_WASM")).expect("priority");
    let tagged = PolicyReference::parse(&registry.reference("bench/traffic:v1")).expect("ref");
    let cache = scratch.path().join("traffic");
    let client = client(&registry, &cache);
    let digest = runtime
        .block_on(client.push(&tagged, &bytes, "policy.wasm", "2026-11-26T00:00:00Z"))
        .expect("push");
    println!("\n== registry requests per swap ==");
    let count = |what: &str, pull: &dyn Fn()| {
        let (manifests, blobs) = (
            registry.requests("/manifests/"),
            registry.requests("/blobs/"),
        );
        pull();
        println!(
            "{what:<40} | {} manifest, {} blob",
            registry.requests("/manifests/") - manifests,
            registry.requests("/blobs/") - blobs
        );
    };
    count("by tag, nothing cached", &|| {
        runtime.block_on(client.pull(&tagged)).expect("pull");
    });
    count("by tag, layer cached (same content)", &|| {
        runtime.block_on(client.pull(&tagged)).expect("pull");
    });
    count("pinned, cached (a restart)", &|| {
        runtime
            .block_on(client.pull(&tagged.pinned(&digest)))
            .expect("pull");
    });
}
