//! The policy engine against real components: the default plugin on every sample, and
//! hostile plugins that must each fail cleanly while the engine keeps serving.

use podlight_testsupport as support;

use std::sync::Arc;

use podlight::frame::Rgb;
use podlight::policy::native;
use podlight::policy::{Backend, EngineOptions, PolicyEngine, PolicyError};
use podlight::state::Snapshot;
use support::{BACKENDS, TESTKIT_WASM, engine, sample, sample_snapshots, wat};

const RED: Rgb = Rgb::new(50, 0, 0);
const BLUE: Rgb = Rgb::new(0, 0, 50);
const YELLOW: Rgb = Rgb::new(50, 50, 0);
const GREEN: Rgb = Rgb::new(0, 25, 0);

fn expected_colour(sample: &str) -> Rgb {
    match sample {
        "empty-node" => Rgb::OFF,
        "all-running" | "completed-job" | "node-not-ready" => GREEN,
        "one-pending" | "running-not-ready" => YELLOW,
        "crash-loop"
        | "image-pull-error"
        | "oom-killed"
        | "evicted"
        | "init-container-failing"
        | "busy-node" => RED,
        "deleting" => BLUE,
        other => panic!("sample {other} has no expected colour here: add it"),
    }
}

#[test]
fn default_plugin_gives_the_expected_frame_for_every_sample() {
    let samples = sample_snapshots();
    assert!(samples.len() >= 10, "the samples cover every state");
    for backend in BACKENDS {
        let engine = engine(backend);
        let policy = Arc::new(engine.builtin().expect("builtin loads"));
        let mut instance = policy.instantiate(None).expect("starts");
        for (name, snapshot) in &samples {
            let frame = instance.evaluate(snapshot, 8).expect("evaluates");
            assert_eq!(
                frame.leds,
                vec![expected_colour(name); 8],
                "{name} on {backend:?}"
            );
            assert_eq!(frame.again_after_ms, None);
        }
    }
}

#[test]
fn native_and_wasm_agree_on_every_sample_and_led_count() {
    let engine = engine(Backend::native());
    let policy = Arc::new(engine.builtin().expect("builtin loads"));
    let mut instance = policy.instantiate(None).expect("starts");
    let settings = podlight_priority::Settings::default();
    for (name, snapshot) in sample_snapshots() {
        for leds in [0, 1, 2, 8, 32] {
            let wasm = instance.evaluate(&snapshot, leds).expect("evaluates").leds;
            let native = native::priority_frame(&snapshot, &settings, leds);
            assert_eq!(wasm, native, "{name} with {leds} LEDs");
        }
    }
}

#[test]
fn settings_change_colours_and_malformed_settings_fall_back() {
    let engine = engine(Backend::native());
    let policy = Arc::new(engine.builtin().expect("builtin loads"));
    let settings =
        r##"{"brightness": 1.0, "rules": [{"states": ["failed"], "color": "#ff00ff"}]}"##;
    let mut instance = policy.instantiate(Some(settings.into())).expect("starts");
    let crash = sample("crash-loop");
    assert_eq!(
        instance.evaluate(&crash, 1).expect("evaluates").leds,
        vec![Rgb::new(255, 0, 255)]
    );
    assert_eq!(
        instance
            .evaluate(&sample("all-running"), 1)
            .expect("evaluates")
            .leds,
        vec![Rgb::OFF]
    );

    let problem = instance
        .configure(Some("{not json".into()))
        .expect("configure runs");
    assert!(problem.is_some_and(|p| p.contains("using the defaults")));
    assert_eq!(
        instance.evaluate(&crash, 1).expect("evaluates").leds,
        vec![RED]
    );

    assert_eq!(instance.configure(None).expect("configure runs"), None);
    assert_eq!(
        instance.evaluate(&crash, 1).expect("evaluates").leds,
        vec![RED]
    );
}

fn testkit(engine: &PolicyEngine) -> Arc<podlight::policy::Policy> {
    Arc::new(
        engine
            .load_file(std::path::Path::new(TESTKIT_WASM))
            .expect("testkit loads"),
    )
}

/// Runs the testkit in `mode`, expects an error, then checks that the same instance
/// and a new one still evaluate correctly.
fn fails_then_recovers(engine: &PolicyEngine, mode: &str) -> PolicyError {
    let policy = testkit(engine);
    let snapshot = sample("crash-loop");
    let mut instance = policy.instantiate(Some(mode.into())).expect("starts");
    let error = instance.evaluate(&snapshot, 1).expect_err(mode);
    // The same instance starts afresh; switched to a good mode it serves again.
    instance
        .configure(Some("counts".into()))
        .expect("configure after failure");
    let frame = instance
        .evaluate(&snapshot, 1)
        .expect("good call after failure");
    assert_eq!(
        frame.leds,
        vec![Rgb::new(1, 3, 0)],
        "failed=1 running=3 deleting=0"
    );
    // And the engine serves other policies.
    let builtin = Arc::new(engine.builtin().expect("builtin loads"));
    let frame = builtin
        .instantiate(None)
        .expect("starts")
        .evaluate(&snapshot, 1)
        .expect("evaluates");
    assert_eq!(frame.leds, vec![RED]);
    error
}

#[test]
fn infinite_loop_hits_the_deadline() {
    for backend in BACKENDS {
        let engine = engine(backend);
        let started = std::time::Instant::now();
        let error = fails_then_recovers(&engine, "loop");
        assert!(
            matches!(
                error,
                PolicyError::Timeout {
                    deadline_ms: 50,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("50 ms deadline"), "{error}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the loop was stopped"
        );
    }
}

#[test]
fn huge_allocation_hits_the_memory_limit() {
    for backend in BACKENDS {
        let error = fails_then_recovers(&engine(backend), "alloc");
        assert!(
            matches!(error, PolicyError::MemoryLimit { limit_mib: 32, .. }),
            "{error}"
        );
    }
}

#[test]
fn trap_is_an_error_value() {
    for backend in BACKENDS {
        let error = fails_then_recovers(&engine(backend), "trap");
        assert!(matches!(error, PolicyError::Trap { .. }), "{error}");
        assert!(error.to_string().contains("unreachable"), "{error}");
    }
}

#[test]
fn reading_a_file_is_denied() {
    let error = fails_then_recovers(&engine(Backend::native()), "read-file");
    let text = error.to_string();
    assert!(text.contains("read denied"), "{text}");
    assert!(!text.contains("read succeeded"), "{text}");
}

#[test]
fn frame_over_the_maximum_is_invalid() {
    let error = fails_then_recovers(&engine(Backend::native()), "huge-frame");
    assert!(matches!(error, PolicyError::InvalidFrame { .. }), "{error}");
    assert!(error.to_string().contains("10000 LEDs"), "{error}");
}

#[test]
fn frames_are_padded_and_truncated_to_the_device() {
    let engine = engine(Backend::native());
    let mut instance = testkit(&engine)
        .instantiate(Some("counts".into()))
        .expect("starts");
    let snapshot = sample("crash-loop");
    let padded = instance.evaluate(&snapshot, 3).expect("evaluates").leds;
    assert_eq!(padded, vec![Rgb::new(1, 3, 0), Rgb::OFF, Rgb::OFF]);
    assert!(
        instance
            .evaluate(&snapshot, 0)
            .expect("evaluates")
            .leds
            .is_empty()
    );
}

#[test]
fn pod_accessors_carry_every_pod() {
    for backend in BACKENDS {
        let engine = engine(backend);
        let mut instance = testkit(&engine)
            .instantiate(Some("pods".into()))
            .expect("starts");
        let snapshot = sample("crash-loop");
        let frame = instance.evaluate(&snapshot, 8).expect("evaluates");
        let expected: Vec<Rgb> = snapshot
            .pods
            .iter()
            .map(|p| Rgb::new(p.restarts() as u8, p.state as u8, p.containers.len() as u8))
            .chain(std::iter::repeat(Rgb::OFF))
            .take(8)
            .collect();
        assert_eq!(frame.leds, expected, "{backend:?}");
        assert_eq!(
            frame.leds[0],
            Rgb::new(7, 1, 1),
            "default/api-1 is failed with 7 restarts"
        );
    }
}

/// Everything logged while `f` runs, without ANSI colours.
fn capture_log(f: impl FnOnce()) -> String {
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned()
}

#[test]
fn plugin_output_goes_to_the_log_tagged_with_its_name() {
    let log = capture_log(|| {
        let engine = engine(Backend::native());
        let mut instance = testkit(&engine)
            .instantiate(Some("print".into()))
            .expect("starts");
        let frame = instance
            .evaluate(&sample("empty-node"), 1)
            .expect("evaluates");
        assert_eq!(frame.leds, vec![Rgb::new(255, 255, 255)]);
    });
    assert!(
        log.contains("hello from stdout") && log.contains("stream=\"stdout\""),
        "{log}"
    );
    assert!(
        log.contains("hello from stderr") && log.contains("stream=\"stderr\""),
        "{log}"
    );
    assert!(log.contains("plugin=podlight_testkit"), "{log}");
}

#[test]
fn plugin_text_is_bounded_and_stripped_of_control_characters() {
    let mut error = None;
    let log = capture_log(|| {
        let engine = engine(Backend::native());
        let mut instance = testkit(&engine)
            .instantiate(Some("hostile-text".into()))
            .expect("starts");
        error = Some(
            instance
                .evaluate(&sample("empty-node"), 1)
                .expect_err("reports an error"),
        );
    });
    let message = error.expect("an error").to_string();
    assert!(message.len() < 2048, "bounded: {} bytes", message.len());
    assert!(message.contains("more bytes cut"), "says it was cut");
    assert!(
        !message.chars().any(char::is_control),
        "no control characters: {message:?}"
    );
    assert!(
        message.contains("\\u{1b}[2J"),
        "escapes shown, not run: {message:?}"
    );
    // Its output too: escapes shown as text, the long line cut.
    assert!(
        log.contains("\\u{1b}[2J\\u{1b}[Hcleared\\u{d}forged"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "no raw escape reached the log");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2048, "the 100 KB line is cut: {longest} bytes");
}

fn load_error(engine: &PolicyEngine, bytes: &[u8]) -> PolicyError {
    match engine.load_bytes("bad", bytes) {
        Ok(_) => panic!("a bad plugin loaded"),
        Err(e) => e,
    }
}

#[test]
fn malformed_plugins_are_refused_with_their_own_message() {
    let engine = engine(Backend::native());

    let garbage = load_error(&engine, b"#!/bin/sh\necho not wasm\n");
    assert!(matches!(garbage, PolicyError::NotWasm { .. }), "{garbage}");

    let core = load_error(&engine, &wat("(module (func (export \"evaluate\")))"));
    assert!(matches!(core, PolicyError::CoreModule { .. }), "{core}");
    assert!(
        core.to_string().contains("wasm32-wasip2"),
        "says how to build a component: {core}"
    );

    let no_export = load_error(&engine, &wat("(component)"));
    assert!(
        matches!(no_export, PolicyError::MissingExport { .. }),
        "{no_export}"
    );

    let wrong_export = load_error(
        &engine,
        &wat(r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $e (export "run" (func $f)))
            (export "acme:other/runner@1.0.0" (instance $e)))"#),
    );
    assert!(
        wrong_export.to_string().contains("acme:other/runner@1.0.0"),
        "{wrong_export}"
    );

    let other_version = load_error(
        &engine,
        &wat(r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $e (export "evaluate" (func $f)))
            (export "podlight:policy/evaluator@0.1.0" (instance $e)))"#),
    );
    let text = other_version.to_string();
    assert!(
        matches!(other_version, PolicyError::ContractVersion { .. }),
        "{text}"
    );
    assert!(
        text.contains("0.1.0") && text.contains(podlight::policy::CONTRACT_VERSION),
        "{text}"
    );

    let ungranted = load_error(
        &engine,
        &wat(r#"(component
            (import "acme:vault/secrets@1.0.0" (instance))
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $e (export "evaluate" (func $f)))
            (export "podlight:policy/evaluator@0.2.0" (instance $e)))"#),
    );
    assert!(
        matches!(ungranted, PolicyError::UngrantedImport { .. }),
        "{ungranted}"
    );
    assert!(
        ungranted.to_string().contains("acme:vault/secrets@1.0.0"),
        "{ungranted}"
    );

    let mistyped = load_error(
        &engine,
        &wat(r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $e (export "evaluate" (func $f)))
            (export "podlight:policy/evaluator@0.2.0" (instance $e)))"#),
    );
    assert!(
        matches!(mistyped, PolicyError::Invalid { .. }),
        "{mistyped}"
    );

    // After all of that, the engine still serves.
    let policy = Arc::new(engine.builtin().expect("builtin loads"));
    let frame = policy
        .instantiate(None)
        .expect("starts")
        .evaluate(&sample("deleting"), 1)
        .expect("evaluates");
    assert_eq!(frame.leds, vec![BLUE]);
}

#[test]
fn wasm_features_no_toolchain_needs_are_refused_when_loading() {
    let engine = engine(Backend::native());
    let cases = [
        ("64-bit memory", "(memory i64 1)", "memory64"),
        ("custom page size", "(memory 1 (pagesize 1))", "page size"),
        (
            "relaxed SIMD",
            "(func (param v128 v128 v128) (result v128) \
               (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2)))",
            "relaxed SIMD",
        ),
        (
            "wide arithmetic",
            "(func (param i64 i64 i64 i64) (result i64 i64) \
               (i64.add128 (local.get 0) (local.get 1) (local.get 2) (local.get 3)))",
            "wide arithmetic",
        ),
        ("GC types", "(type (struct (field i32)))", "gc types"),
        ("shared memory (threads)", "(memory 1 1 shared)", "threads"),
    ];
    for (what, module, said) in cases {
        let bytes = wat(&format!("(component (core module {module}))"));
        let error = load_error(&engine, &bytes);
        let text = error.to_string();
        assert!(
            matches!(error, PolicyError::Invalid { .. }),
            "{what}: {text}"
        );
        println!("{what}: {text}");
        assert!(
            text.to_lowercase().contains(&said.to_lowercase())
                && ["not enabled", "must be enabled", "disabled"]
                    .iter()
                    .any(|refused| text.contains(refused)),
            "{what}: the message names the feature: {text}"
        );
    }
    // What the toolchains do use still loads: SIMD, tail calls, extended constants,
    // several memories (the example policies load them for real).
    let allowed = wat(r#"(component (core module
        (memory 1) (memory 1)
        (global i32 (i32.add (i32.const 1) (i32.const 2)))
        (func $f (result v128) (v128.const i64x2 0 0))
        (func (result v128) (return_call $f))))"#);
    match engine.load_bytes("allowed", &allowed) {
        Err(PolicyError::MissingExport { .. }) => {}
        other => panic!("only the missing export is wrong: {:?}", other.err()),
    }
}

#[test]
fn size_cap_applies_before_and_after_decompression() {
    let engine = PolicyEngine::new(EngineOptions {
        max_plugin_size: 150_000,
        ..EngineOptions::default()
    })
    .expect("engine");
    let bytes = std::fs::read(TESTKIT_WASM).expect("testkit built");
    assert!(bytes.len() < 150_000, "the testkit fits the test's cap");
    engine.load_bytes("small", &bytes).expect("under the cap");
    let builtin = podlight::policy::BUILTIN_PRIORITY;
    assert!(builtin.len() > 150_000);
    assert!(matches!(
        engine.load_bytes("big", builtin),
        Err(PolicyError::TooLarge { .. })
    ));
    let gz = gzip(builtin);
    assert!(gz.len() < 100_000, "compresses under the cap");
    assert!(matches!(
        engine.load_bytes("big-gz", &gz),
        Err(PolicyError::DecompressesTooLarge { .. })
    ));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("in memory");
    encoder.finish().expect("in memory")
}

#[test]
fn gzip_plugin_loads_from_a_file_and_is_named_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("priority.wasm.gz");
    std::fs::write(&path, gzip(podlight::policy::BUILTIN_PRIORITY)).expect("write");
    let engine = engine(Backend::native());
    let policy = Arc::new(engine.load_file(&path).expect("gzip plugin loads"));
    assert_eq!(policy.name(), "priority");
    assert!(policy.info().gzip);
    assert_eq!(
        policy.info().component_bytes,
        podlight::policy::BUILTIN_PRIORITY.len()
    );
    let frame = policy
        .instantiate(None)
        .expect("starts")
        .evaluate(&sample("one-pending"), 2)
        .expect("evaluates");
    assert_eq!(frame.leds, vec![YELLOW; 2]);
    let missing = engine
        .load_file(&dir.path().join("absent.wasm"))
        .err()
        .expect("missing file");
    assert!(missing.to_string().contains("absent.wasm"), "{missing}");
}

#[test]
fn second_load_hits_the_compile_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    for backend in BACKENDS {
        let options = EngineOptions {
            cache_dir: Some(dir.path().to_path_buf()),
            backend,
            ..EngineOptions::default()
        };
        let first = PolicyEngine::new(options.clone())
            .expect("engine")
            .builtin()
            .expect("loads");
        assert!(!first.info().cache_hit, "{backend:?}: cold");
        // A new engine, as after a restart.
        let engine = PolicyEngine::new(options).expect("engine");
        let second = Arc::new(engine.builtin().expect("loads"));
        assert!(second.info().cache_hit, "{backend:?}: cached");
        let frame = second
            .instantiate(None)
            .expect("starts")
            .evaluate(&sample("crash-loop"), 1)
            .expect("evaluates");
        assert_eq!(frame.leds, vec![RED]);
    }
    let entries = std::fs::read_dir(dir.path()).expect("cache dir").count();
    assert_eq!(entries, 2, "one entry per backend fingerprint");
}

#[test]
fn a_snapshot_built_in_code_evaluates_like_its_json() {
    let json = sample("oom-killed");
    let rebuilt = Snapshot::new(json.node.clone(), json.pods.clone(), json.now_ms);
    assert_eq!(*json, rebuilt);
}

#[test]
fn a_policys_reasons_are_bounded_checked_and_stripped() {
    let engine = engine(Backend::native());
    let mut instance = testkit(&engine)
        .instantiate(Some("hostile-reasons".into()))
        .expect("starts");
    let snapshot = sample("crash-loop");
    let frame = instance.evaluate(&snapshot, 4).expect("evaluates");
    assert!(
        frame.reasons.len() <= 4096,
        "{} reasons kept",
        frame.reasons.len()
    );
    let reason = &frame.reasons[0];
    assert_eq!(reason.leds, vec![0, 1], "only LEDs that exist");
    assert!(
        reason
            .pods
            .iter()
            .all(|&i| (i as usize) < snapshot.pods.len()),
        "only pods that exist: {:?}",
        reason.pods
    );
    assert!(reason.pods.len() <= 64);
    assert_eq!(reason.nodes, vec![0], "node scope has one node");
    assert!(reason.alerts.is_empty(), "no alerts to point at");
    assert!(
        !reason.rule.chars().any(char::is_control),
        "{:?}",
        reason.rule
    );
    assert!(reason.rule.chars().count() < 260, "bounded");
    assert_eq!(frame.see_through, vec![1, 2, 3], "within the device");
    let explained = podlight::explain::explain(
        &snapshot,
        &frame,
        &frame.leds,
        &podlight::explain::PolicyName {
            name: "testkit",
            sha256: "",
        },
    );
    assert!(explained.leds[2].see_through);
    assert_eq!(explained.leds[3].rule, podlight::explain::NO_REASON);
}

#[test]
fn a_policy_sees_silences_in_force_and_not_after() {
    let engine = engine(Backend::native());
    let mut instance = testkit(&engine)
        .instantiate(Some("silences".into()))
        .expect("starts");
    let text = |until_ms: u64| {
        format!(
            r#"{{"nowMs": 1000, "node": {{"name": "n"}}, "pods": [
              {{"namespace": "a", "name": "crash", "phase": "Failed",
                "silence": {{"untilMs": {until_ms}, "reason": "known", "by": "me"}}}},
              {{"namespace": "b", "name": "other", "phase": "Failed"}}]}}"#
        )
    };
    let silenced = Arc::new(podlight::state::Snapshot::from_json(&text(5000)).expect("valid"));
    assert_eq!(
        silenced.reclassified_at_ms(),
        Some(5000),
        "evaluated again when it ends"
    );
    let frame = instance.evaluate(&silenced, 2).expect("evaluates");
    assert_eq!(
        frame.leds[0],
        Rgb::new(1, 1, 5),
        "silenced, one silenced failure, reason length 5"
    );
    assert_eq!(frame.leds[1], Rgb::new(0, 1, 0));
    assert_eq!(
        frame.reasons[0].pods,
        vec![1],
        "pods-in: the failed pod without a silence"
    );
    let ended = Arc::new(podlight::state::Snapshot::from_json(&text(1000)).expect("valid"));
    let frame = instance.evaluate(&ended, 2).expect("evaluates");
    assert_eq!(
        frame.leds[0],
        Rgb::new(0, 0, 0),
        "an ended silence is not shown"
    );
    assert_eq!(frame.reasons[0].pods, vec![0, 1]);
}
