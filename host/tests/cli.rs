//! The real `podlight` binary: output for people and machines, and clear failures.

use podlight_testsupport as support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::repo_root;

fn podlight(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podlight runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("podlight exits")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn eval_prints_the_frame_as_json() {
    let out = podlight(
        &[
            "eval",
            "builtin",
            "examples/snapshots/crash-loop.json",
            "--leds",
            "2",
            "--json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let frame: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON frame");
    assert_eq!(
        frame["leds"],
        serde_json::json!([{"r": 50, "g": 0, "b": 0}, {"r": 50, "g": 0, "b": 0}])
    );
    assert_eq!(
        frame["reasons"],
        serde_json::json!([{"leds": [0, 1], "rule": "rule 1: failed pods → #320000", "pods": [0]}]),
        "the policy says why"
    );
}

#[test]
fn eval_reads_stdin_and_draws_colour_blocks() {
    let text = std::fs::read_to_string(repo_root().join("examples/snapshots/deleting.json"))
        .expect("sample");
    let out = podlight(&["eval", "builtin", "-", "--leds", "3"], Some(&text));
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert_eq!(shown.matches("\x1b[38;2;0;0;50m██").count(), 3, "{shown:?}");
    assert!(
        shown.trim_end().ends_with("#000032 #000032 #000032"),
        "{shown:?}"
    );
}

#[test]
fn eval_on_pulley_gives_the_same_frame() {
    let args = [
        "eval",
        "builtin",
        "examples/snapshots/one-pending.json",
        "--json",
    ];
    let cranelift = podlight(&args, None);
    let pulley = podlight(&[&args[..], &["--pulley"]].concat(), None);
    assert!(
        cranelift.status.success() && pulley.status.success(),
        "{}",
        stderr(&pulley)
    );
    assert_eq!(stdout(&cranelift), stdout(&pulley));
    assert!(stdout(&pulley).contains(r#"{"r":50,"g":50,"b":0}"#));
}

#[test]
fn eval_with_a_settings_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = dir.path().join("priority.json");
    std::fs::write(
        &settings,
        r##"{"rules": [{"states": ["running"], "color": "#0000ff"}]}"##,
    )
    .expect("write");
    let out = podlight(
        &[
            "eval",
            "builtin",
            "examples/snapshots/all-running.json",
            "--leds",
            "1",
            "--json",
            "--settings",
        ],
        None,
    );
    assert!(!out.status.success(), "--settings needs a value");
    let settings = settings.to_string_lossy().into_owned();
    let out = podlight(
        &[
            "eval",
            "builtin",
            "examples/snapshots/all-running.json",
            "--leds",
            "1",
            "--json",
            "--settings",
            &settings,
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(r#"{"r":0,"g":0,"b":255}"#),
        "{}",
        stdout(&out)
    );
}

#[test]
fn malformed_snapshot_fails_with_a_clear_message() {
    let out = podlight(&["eval", "builtin", "-"], Some("{\"pods\": 3}"));
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("snapshot -") && message.contains("examples/snapshots"),
        "{message}"
    );
    assert!(stdout(&out).is_empty());

    let out = podlight(&["eval", "builtin", "no/such/snapshot.json"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the snapshot file no/such/snapshot.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_plugin_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = dir.path().join("policy.wasm");
    std::fs::write(&plugin, "not a plugin").expect("write");
    let plugin = plugin.to_string_lossy().into_owned();
    let out = podlight(
        &["eval", &plugin, "examples/snapshots/empty-node.json"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("plugin policy is not WebAssembly"),
        "{}",
        stderr(&out)
    );
    let out = podlight(&["plugin", "check", &plugin], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not WebAssembly"), "{}", stderr(&out));
}

#[test]
fn plugin_check_describes_a_plugin() {
    let out = podlight(&["plugin", "check", support::TESTKIT_WASM, "--json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(info["name"], "podlight_testkit");
    assert_eq!(info["contractVersion"], podlight::policy::CONTRACT_VERSION);
    let imports = info["imports"].as_array().expect("imports");
    assert!(imports.iter().any(|i| {
        i.as_str()
            .is_some_and(|s| s.starts_with("podlight:policy/snapshot@"))
    }));

    let out = podlight(&["plugin", "check", "builtin"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "contract:   podlight:policy@{}",
            podlight::policy::CONTRACT_VERSION
        )),
        "{text}"
    );
    assert!(text.contains("ok: loads, starts and evaluates"), "{text}");
}

#[test]
fn set_on_the_virtual_device_draws_the_colour() {
    let out = podlight(
        &[
            "set", "#00ff80", "--device", "virtual", "--leds", "3", "--fade", "100",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let drawn = stderr(&out);
    let line = drawn
        .lines()
        .find(|l| l.starts_with("leds: "))
        .unwrap_or_else(|| panic!("{drawn}"));
    assert_eq!(
        line.matches("\x1b[38;2;0;255;128m██").count(),
        3,
        "{line:?}"
    );
    assert!(line.ends_with("#00ff80 #00ff80 #00ff80"), "{line:?}");
    assert_eq!(
        drawn.lines().filter(|l| l.starts_with("leds: ")).count(),
        1,
        "one line per settled frame off a TTY"
    );

    let capped = podlight(
        &[
            "set",
            "white",
            "--device",
            "virtual",
            "--leds",
            "1",
            "--fade",
            "0",
            "--brightness-cap",
            "64",
        ],
        None,
    );
    assert!(capped.status.success(), "{}", stderr(&capped));
    assert!(stderr(&capped).contains("#404040"), "{}", stderr(&capped));
}

#[test]
fn bad_colour_is_refused_before_touching_a_device() {
    let out = podlight(&["set", "purple", "--device", "virtual"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("use #rrggbb"), "{}", stderr(&out));
}

#[test]
fn devices_without_a_stick_says_so_and_prints_the_udev_rule() {
    let out = podlight(&["devices"], None);
    if out.status.success() {
        // A machine with a stick plugged in: then it must be listed.
        assert!(stdout(&out).contains("BS"), "{}", stdout(&out));
        return;
    }
    let message = stderr(&out);
    assert!(message.contains("no BlinkStick found"), "{message}");
    assert!(message.contains(r#"ATTRS{idVendor}=="20a0""#), "{message}");
    let set = podlight(&["set", "red", "--fade", "0"], None);
    assert_eq!(set.status.code(), Some(1));
    assert!(
        stderr(&set).contains("no BlinkStick found"),
        "{}",
        stderr(&set)
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [
        &[
            "eval",
            "builtin",
            "examples/snapshots/busy-node.json",
            "--json",
        ][..],
        &["plugin", "check", "builtin"],
    ] {
        // The reader is gone before podlight writes a byte (`podlight … | head -0`).
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_podlight"))
            .args(args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("podlight runs");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked") && !stderr(&out).contains("podlight:"),
            "{args:?}: no panic, no error message: {}",
            stderr(&out)
        );
    }
}

/// Peak RSS of finished children of this process (getrusage), in MiB.
fn children_peak_mib() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

#[test]
fn a_plugin_too_expensive_to_compile_is_refused_by_its_budget() {
    let dir = tempfile::tempdir().expect("temp dir");
    // About 90 KB; compiling it unbounded takes about 1 GB and 5 s.
    let bomb = dir.path().join("bomb.wasm");
    std::fs::write(&bomb, support::expensive_to_compile(3000)).expect("write");
    let bomb = bomb.to_string_lossy().into_owned();
    for (what, budget, says) in [
        (
            "memory",
            &["--compile-memory-mib", "96"][..],
            "96 MiB of memory",
        ),
        (
            "time",
            &["--compile-memory-mib", "8192", "--compile-cpu-seconds", "1"],
            "1 s of CPU time",
        ),
    ] {
        for command in ["check", "eval"] {
            let mut args = vec!["plugin", "check", bomb.as_str()];
            if command == "eval" {
                args = vec!["eval", bomb.as_str(), "examples/snapshots/crash-loop.json"];
            }
            args.extend_from_slice(budget);
            let started = std::time::Instant::now();
            let out = podlight(&args, None);
            let message = stderr(&out);
            println!(
                "{command} over the {what} budget: exit {:?} in {:.2} s, children's peak so far {:.0} MiB: {}",
                out.status.code(),
                started.elapsed().as_secs_f64(),
                children_peak_mib(),
                message.trim()
            );
            assert_eq!(out.status.code(), Some(1), "{message}");
            assert!(
                message.contains("compile budget") && message.contains(says),
                "{command}, {what}: {message}"
            );
        }
    }
    // Within the budget, an ordinary plugin compiles in the child as before.
    let out = podlight(
        &[
            "plugin",
            "check",
            support::TESTKIT_WASM,
            "--compile-memory-mib",
            "96",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn eval_explains_each_led() {
    let snapshot = repo_root().join("examples/snapshots/crash-loop.json");
    let out = podlight(
        &[
            "eval",
            "builtin",
            &snapshot.to_string_lossy(),
            "--leds",
            "2",
            "--explain",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("LED 1 #320000  rule 1: failed pods"),
        "{text}"
    );
    assert!(
        text.contains("pod default/api-1: failed, CrashLoopBackOff"),
        "{text}"
    );
    let out = podlight(
        &[
            "eval",
            "builtin",
            &snapshot.to_string_lossy(),
            "--explain",
            "--json",
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        json["leds"][0]["pods"][0]["reason"], "CrashLoopBackOff",
        "{json}"
    );
}

#[test]
fn the_colour_vision_lint_flags_red_and_green_and_passes_the_safe_palette() {
    let priority = repo_root().join("plugins/priority");
    let out = podlight(
        &[
            "test",
            "--lint",
            "colour-vision",
            &priority.join("priority.test.toml").to_string_lossy(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("failed #320000 and running #001900: indistinguishable with deuteranopia"),
        "{text}"
    );
    let out = podlight(
        &[
            "test",
            "--lint",
            "colour-vision",
            &priority.join("colour-blind.test.toml").to_string_lossy(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("apart for all three"),
        "{}",
        stdout(&out)
    );
}
