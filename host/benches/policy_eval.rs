//! Policy evaluation speed: the default policy as Wasm on Cranelift and on Pulley
//! against the same rule compiled natively, at 0, 10, 110 and 1000 pods; what a full
//! copy of every pod into the guest costs; a fresh instance per call vs a reused one;
//! compiling a plugin cold vs loading it from the compile cache; and the example
//! policies of every language side by side (size, compile, evaluate at 110 pods);
//! one policy vs a stack of three layers.
//!
//! Run: `cargo bench -p podlight --bench policy_eval`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use podlight::policy::native;
use podlight::policy::{Backend, EngineOptions, PolicyEngine};
use podlight::state::{ContainerInfo, ContainerState, NodeInfo, PodInfo, Snapshot};

use podlight_testsupport::example_policies;

/// A node with `n` pods in a realistic mix: mostly running, some pending, unready,
/// crash-looping and completed.
fn snapshot(n: usize) -> Snapshot {
    let pods = (0..n)
        .map(|i| {
            let (phase, ready, state) = match i % 20 {
                0 => (
                    "Pending",
                    false,
                    ContainerState::Waiting {
                        reason: "ContainerCreating".into(),
                    },
                ),
                1 => (
                    "Running",
                    false,
                    ContainerState::Running { started_ms: None },
                ),
                2 => (
                    "Succeeded",
                    false,
                    ContainerState::Terminated {
                        reason: "Completed".into(),
                        exit_code: 0,
                    },
                ),
                3 if i % 60 == 3 => (
                    "Running",
                    false,
                    ContainerState::Waiting {
                        reason: "CrashLoopBackOff".into(),
                    },
                ),
                _ => (
                    "Running",
                    true,
                    ContainerState::Running { started_ms: None },
                ),
            };
            PodInfo {
                namespace: format!("team-{}", i % 7),
                name: format!("app-{i}-7f9c6d5b8-x2k4q"),
                uid: format!("0000-{i:08}"),
                phase: phase.into(),
                ready,
                labels: [("app".to_string(), format!("app-{i}"))].into(),
                owner_kind: "ReplicaSet".into(),
                created_ms: 1_764_000_000_000 + i as u64,
                containers: vec![ContainerInfo {
                    name: "main".into(),
                    ready,
                    state,
                    ..Default::default()
                }],
                ..PodInfo::default()
            }
        })
        .collect();
    Snapshot::new(
        NodeInfo {
            name: "node-1".into(),
            ready: true,
            ..Default::default()
        },
        pods,
        1_764_000_000_000,
    )
}

/// Median time per call over several timed batches.
fn time_per_call(mut f: impl FnMut()) -> Duration {
    let warm = Instant::now();
    let mut per_batch = 0u32;
    while warm.elapsed() < Duration::from_millis(50) {
        f();
        per_batch += 1;
    }
    let mut samples: Vec<Duration> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch.max(1) {
                f();
            }
            start.elapsed() / per_batch.max(1)
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> String {
    format!("{:>9.2} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let engines: Vec<(Backend, PolicyEngine)> = [Backend::Cranelift, Backend::Pulley]
        .into_iter()
        .filter_map(|backend| {
            PolicyEngine::new(EngineOptions {
                backend,
                ..EngineOptions::default()
            })
            .map(|e| (backend, e))
            .map_err(|e| eprintln!("skipping {backend:?}: {e}"))
            .ok()
        })
        .collect();
    let settings = podlight_priority::Settings::default();

    println!("== evaluate the default policy (8 LEDs), median per call ==");
    println!(
        "{:>6} | {:>12} | {:>12} | {:>12} | {:>10} | {:>10}",
        "pods", "native", "cranelift", "pulley", "cl/native", "pl/native"
    );
    for n in [0, 10, 110, 1000] {
        let snap = Arc::new(snapshot(n));
        let native_t = time_per_call(|| {
            black_box(native::priority_frame(black_box(&snap), &settings, 8));
        });
        let mut wasm_t = Vec::new();
        for (_, engine) in &engines {
            let policy = Arc::new(engine.builtin().expect("builtin loads"));
            let mut instance = policy.instantiate(None).expect("starts");
            wasm_t.push(time_per_call(|| {
                black_box(instance.evaluate(&snap, 8).expect("evaluates"));
            }));
        }
        let ratio = |d: &Duration| format!("{:>9.1}x", d.as_secs_f64() / native_t.as_secs_f64());
        println!(
            "{n:>6} | {} | {} | {} | {} | {}",
            micros(native_t),
            micros(wasm_t[0]),
            wasm_t.get(1).map_or("-".into(), |d| micros(*d)),
            ratio(&wasm_t[0]),
            wasm_t.get(1).map_or("-".into(), ratio),
        );
    }

    println!("\n== the whole step per cluster change: build the snapshot (classify) + evaluate ==");
    println!("{:>6} | {:>12} | {:>12}", "pods", "native", "cranelift");
    let (_, cranelift) = &engines[0];
    let policy = Arc::new(cranelift.builtin().expect("builtin loads"));
    let mut instance = policy.instantiate(None).expect("starts");
    for n in [10, 110, 1000] {
        let template = snapshot(n);
        let native_t = time_per_call(|| {
            let s = Snapshot::new(template.node.clone(), template.pods.clone(), 0);
            black_box(native::priority_frame(&s, &settings, 8));
        });
        let wasm_t = time_per_call(|| {
            let s = Arc::new(Snapshot::new(
                template.node.clone(),
                template.pods.clone(),
                0,
            ));
            black_box(instance.evaluate(&s, 8).expect("evaluates"));
        });
        println!(
            "{n:>6} | {} | {}   ({:.2}x)",
            micros(native_t),
            micros(wasm_t),
            wasm_t.as_secs_f64() / native_t.as_secs_f64()
        );
    }

    println!("\n== a policy that copies every pod into the guest (testkit `pods`), cranelift ==");
    let testkit = Arc::new(
        cranelift
            .load_file(std::path::Path::new(env!("PODLIGHT_TESTKIT_WASM")))
            .expect("testkit loads"),
    );
    let mut pods_instance = testkit.instantiate(Some("pods".into())).expect("starts");
    for n in [10, 110] {
        let snap = Arc::new(snapshot(n));
        let t = time_per_call(|| {
            black_box(pods_instance.evaluate(&snap, 8).expect("evaluates"));
        });
        println!(
            "{n:>6} pods: {}  (pods() and pod-at(i) for each: every pod lowered twice)",
            micros(t)
        );
    }

    println!(
        "\n== contract 0.4 with reasons (the built-in) vs the same rule built for 0.3, cranelift =="
    );
    let v0_3 = Arc::new(
        cranelift
            .load_file(std::path::Path::new(env!("PODLIGHT_PRIORITY_0_3_WASM")))
            .expect("0.3 build loads"),
    );
    let current = Arc::new(cranelift.builtin().expect("builtin loads"));
    let mut old = v0_3.instantiate(None).expect("starts");
    let mut new = current.instantiate(None).expect("starts");
    for n in [10, 110, 1000] {
        let snap = Arc::new(snapshot(n));
        let t_old = time_per_call(|| {
            black_box(old.evaluate(&snap, 8).expect("evaluates"));
        });
        let t_new = time_per_call(|| {
            black_box(new.evaluate(&snap, 8).expect("evaluates"));
        });
        println!(
            "{n:>6} pods: 0.3 {}  0.4 with reasons {}  ({:.2}x)",
            micros(t_old),
            micros(t_new),
            t_new.as_secs_f64() / t_old.as_secs_f64()
        );
    }

    println!(
        "\n== one layer vs three (base, alerts overlay, incident overlay: all the built-in), evaluate + compose, cranelift =="
    );
    let overlay = Some(
        r##"{"rules": [], "alerts": [{"severities": ["critical"], "color": "#300000"}], "otherwise": "see-through"}"##
            .to_string(),
    );
    let mut stack: Vec<_> = [None, overlay.clone(), overlay]
        .into_iter()
        .map(|settings| current.instantiate(settings).expect("starts"))
        .collect();
    let names = ["priority", "alerts", "incident"];
    for n in [10, 110, 1000] {
        let snap = Arc::new(snapshot(n));
        let one = time_per_call(|| {
            let frame = stack[0].evaluate(&snap, 8).expect("evaluates");
            black_box(podlight::layers::compose(
                &[podlight::layers::LayerFrame {
                    name: names[0],
                    frame: Some(&frame),
                    stale: None,
                }],
                8,
            ));
        });
        let three = time_per_call(|| {
            let frames: Vec<_> = stack
                .iter_mut()
                .map(|i| i.evaluate(&snap, 8).expect("evaluates"))
                .collect();
            let layers: Vec<_> = frames
                .iter()
                .zip(names)
                .map(|(frame, name)| podlight::layers::LayerFrame {
                    name,
                    frame: Some(frame),
                    stale: None,
                })
                .collect();
            black_box(podlight::layers::compose(&layers, 8));
        });
        println!(
            "{n:>6} pods: 1 layer {}  3 layers {}  ({:.2}x)",
            micros(one),
            micros(three),
            three.as_secs_f64() / one.as_secs_f64()
        );
    }

    println!("\n== fresh instance per evaluation vs reused, 110 pods ==");
    let snap = Arc::new(snapshot(110));
    for (backend, engine) in &engines {
        let policy = Arc::new(engine.builtin().expect("builtin loads"));
        let fresh = time_per_call(|| {
            let mut one = policy.instantiate(None).expect("starts");
            black_box(one.evaluate(&snap, 8).expect("evaluates"));
        });
        let mut reused = policy.instantiate(None).expect("starts");
        let kept = time_per_call(|| {
            black_box(reused.evaluate(&snap, 8).expect("evaluates"));
        });
        println!(
            "{:>9}: fresh {}  reused {}",
            backend.name(),
            micros(fresh),
            micros(kept)
        );
    }

    println!("\n== load the default plugin: compile cold vs compile-cache hit ==");
    let dir = std::env::temp_dir().join(format!("podlight-bench-cache-{}", std::process::id()));
    for backend in [Backend::Cranelift, Backend::Pulley] {
        let _ = std::fs::remove_dir_all(&dir);
        let options = EngineOptions {
            backend,
            cache_dir: Some(dir.clone()),
            ..EngineOptions::default()
        };
        let Ok(engine) = PolicyEngine::new(options) else {
            continue;
        };
        let start = Instant::now();
        let cold = engine.builtin().expect("loads");
        let cold_t = start.elapsed();
        assert!(!cold.info().cache_hit);
        let start = Instant::now();
        let hit = engine.builtin().expect("loads");
        let hit_t = start.elapsed();
        assert!(hit.info().cache_hit);
        println!(
            "{:>9}: cold {:>8.2} ms  cache hit {:>8.2} ms  ({:.0}x faster)",
            backend.name(),
            cold_t.as_secs_f64() * 1e3,
            hit_t.as_secs_f64() * 1e3,
            cold_t.as_secs_f64() / hit_t.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    languages(&settings);
}

/// Kubernetes refuses a ConfigMap over 1 MiB.
const CONFIGMAP_LIMIT: usize = 1 << 20;

fn gzip_size(bytes: &[u8]) -> usize {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("in memory");
    encoder.finish().expect("in memory").len()
}

/// Every language's example policy beside the Rust ones and the native rule, on one
/// engine: what it weighs, how long it takes to compile, how fast it evaluates.
fn languages(settings: &podlight_priority::Settings) {
    println!("\n== policies by language, 110 pods, 8 LEDs, cranelift ==");
    println!(
        "{:<26} | {:>10} | {:>10} | {:>9} | {:>10} | {:>12}",
        "policy", "size", "gzip", "ConfigMap", "compile", "evaluate"
    );
    let snap = Arc::new(snapshot(110));
    let native_t = time_per_call(|| {
        black_box(native::priority_frame(black_box(&snap), settings, 8));
    });
    println!(
        "{:<26} | {:>10} | {:>10} | {:>9} | {:>10} | {}",
        "native Rust rule (baseline)",
        "-",
        "-",
        "-",
        "-",
        micros(native_t)
    );
    let engine = PolicyEngine::new(EngineOptions::default()).expect("engine");
    let mut plugins: Vec<(String, std::path::PathBuf)> = vec![
        (
            "Rust: priority (default)".into(),
            env!("PODLIGHT_PRIORITY_WASM").into(),
        ),
        ("Rust: breathe".into(), env!("PODLIGHT_BREATHE_WASM").into()),
    ];
    plugins.extend(
        example_policies::example_policies()
            .iter()
            .map(|e| (format!("{}: {}", e.language, e.folder), e.wasm.clone())),
    );
    for (name, path) in plugins {
        let bytes = std::fs::read(&path).expect("plugin built");
        let gz = gzip_size(&bytes);
        let start = Instant::now();
        let policy = Arc::new(engine.load_file(&path).expect("loads"));
        let compile = start.elapsed();
        let mut instance = policy.instantiate(None).expect("starts");
        let t = time_per_call(|| {
            black_box(instance.evaluate(&snap, 8).expect("evaluates"));
        });
        let fits = if bytes.len() <= CONFIGMAP_LIMIT {
            "yes"
        } else if gz <= CONFIGMAP_LIMIT {
            "as .gz"
        } else {
            "no"
        };
        println!(
            "{name:<26} | {:>7.0} KB | {:>7.0} KB | {fits:>9} | {:>7.0} ms | {}",
            bytes.len() as f64 / 1024.0,
            gz as f64 / 1024.0,
            compile.as_secs_f64() * 1e3,
            micros(t)
        );
    }
}
