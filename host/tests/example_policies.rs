//! The example policies under examples/policies, built by the real toolchain, checked
//! with `podlight plugin check` and `podlight eval` on the sample snapshots.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{BREATHE_WASM, repo_root};

/// `podlight eval --json --leds 4` of a snapshot file.
fn eval_file(plugin: &str, snapshot: &Path, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(["eval", plugin])
        .arg(snapshot)
        .args(["--json", "--leds", "4"])
        .args(extra)
        .output()
        .expect("podlight runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON frame")
}

/// The same, for a sample under examples/snapshots.
fn eval(plugin: &str, sample: &str, extra: &[&str]) -> Value {
    eval_file(
        plugin,
        &repo_root().join(format!("examples/snapshots/{sample}.json")),
        extra,
    )
}

fn blue(frame: &Value) -> u64 {
    frame["leds"][0]["b"].as_u64().expect("blue channel")
}

#[test]
fn breathe_passes_plugin_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(["plugin", "check", BREATHE_WASM])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn breathe_pulses_blue_while_pods_are_deleted() {
    // deleting.json is at nowMs 1764000000000, which is 0 ms into a 2000 ms breath.
    let start = eval(BREATHE_WASM, "deleting", &[]);
    assert_eq!(start["againAfterMs"], 40, "asks to be evaluated again");
    assert_eq!(blue(&start), 0, "a breath starts dark");
    let dir = tempfile::tempdir().expect("temp dir");
    let shifted = |ms: u64| {
        let text = std::fs::read_to_string(repo_root().join("examples/snapshots/deleting.json"))
            .expect("sample");
        let text = text.replace(
            "\"nowMs\": 1764000000000",
            &format!("\"nowMs\": {}", 1_764_000_000_000u64 + ms),
        );
        let path = dir.path().join(format!("deleting-{ms}.json"));
        std::fs::write(&path, text).expect("write");
        path
    };
    let at = |ms: u64, extra: &[&str]| eval_file(BREATHE_WASM, &shifted(ms), extra);
    assert_eq!(blue(&at(1000, &[])), 80, "peak halfway through");
    assert_eq!(blue(&at(500, &[])), 40, "half way up");
    assert_eq!(
        at(500, &[]),
        at(500, &[]),
        "the same snapshot gives the same frame"
    );
    let settings = dir.path().join("breathe.json");
    std::fs::write(&settings, r#"{"periodMs": 4000, "peak": 200}"#).expect("write");
    let s = settings.to_string_lossy().into_owned();
    assert_eq!(
        blue(&at(2000, &["--settings", &s])),
        200,
        "settings change the breath"
    );
    std::fs::write(&settings, "not json").expect("write");
    assert_eq!(
        blue(&at(1000, &["--settings", &s])),
        80,
        "malformed settings: the defaults, no trap"
    );
}

#[test]
fn breathe_is_steady_otherwise() {
    let running = eval(BREATHE_WASM, "all-running", &[]);
    assert_eq!(
        running["leds"][0],
        serde_json::json!({"r": 0, "g": 20, "b": 0})
    );
    assert!(
        running.get("againAfterMs").is_none(),
        "no animation, no timer"
    );
    assert_eq!(
        eval(BREATHE_WASM, "crash-loop", &[])["leds"][3],
        serde_json::json!({"r": 60, "g": 0, "b": 0})
    );
    assert_eq!(
        eval(BREATHE_WASM, "empty-node", &[])["leds"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
}
