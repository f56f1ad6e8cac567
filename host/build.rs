//! Builds the default policy (`plugins/priority`) for `wasm32-wasip2` so the binary
//! embeds it built from the current sources (never a stale copy), and reads the
//! contract version from `wit/`. With the `test-support` feature (tests and benches
//! turn it on) it also builds the plugins they load: the testkit and the breathing
//! example.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SHIPPED: &[(&str, &str)] = &[("podlight-priority", "PODLIGHT_PRIORITY_WASM")];
/// Where each plugin's sources are, relative to the workspace root.
const SOURCES: &[(&str, &str)] = &[
    ("podlight-priority", "plugins/priority"),
    ("podlight-testkit", "plugins/testkit"),
    ("podlight-breathe", "examples/policies/rust-breathe"),
];
/// The default policy built against each frozen earlier contract: (feature, the
/// contract's version, the variable naming the built plugin).
const FOR_TESTS_EARLIER: &[(&str, &str, &str)] = &[
    ("contract-0-2", "0.2", "PODLIGHT_PRIORITY_0_2_WASM"),
    ("contract-0-3", "0.3", "PODLIGHT_PRIORITY_0_3_WASM"),
];
const FOR_TESTS: &[(&str, &str)] = &[
    ("podlight-testkit", "PODLIGHT_TESTKIT_WASM"),
    ("podlight-breathe", "PODLIGHT_BREATHE_WASM"),
];

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir
        .parent()
        .ok_or("host/ has no parent directory")?
        .to_path_buf();
    // What this script reads itself; the plugins' own inputs come from their builds'
    // dep-info below. The frozen earlier contracts are inputs of the plugins built for
    // them.
    for watched in ["wit/policy.wit", "Cargo.lock", "host/compat"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let wit = std::fs::read_to_string(root.join("wit/policy.wit"))
        .map_err(|e| format!("cannot read wit/policy.wit: {e}"))?;
    println!(
        "cargo:rustc-env=PODLIGHT_CONTRACT_VERSION={}",
        contract_version(&wit)?
    );

    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out: the plugins get
    // <target>/<profile>/podlight-plugins, shared by every feature set of this crate.
    let target_dir = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(Path::parent)
        .ok_or_else(|| {
            format!(
                "OUT_DIR {} is not under a build directory",
                out_dir.display()
            )
        })?
        .join("podlight-plugins");
    let mut plugins = SHIPPED.to_vec();
    if env::var_os("CARGO_FEATURE_TEST_SUPPORT").is_some() {
        plugins.extend_from_slice(FOR_TESTS);
    }
    build_plugins(&root, &target_dir, &plugins, None)?;
    for (package, var) in &plugins {
        announce(&root, &target_dir, package, var)?;
    }
    if env::var_os("CARGO_FEATURE_TEST_SUPPORT").is_some() {
        // The default policy built against each frozen earlier contract, each in its
        // own target directory (same package, other features).
        for &(feature, version, var) in FOR_TESTS_EARLIER {
            let package = "podlight-priority";
            let target = target_dir.with_file_name(format!("podlight-plugins-{version}"));
            build_plugins(&root, &target, &[(package, var)], Some(feature))?;
            announce(&root, &target, package, var)?;
        }
    }
    Ok(())
}

/// Tells the host crate where a built plugin is, and to build again when any file
/// its build read changes: its sources in this checkout, and what cargo's dep-info
/// beside it lists. The plugins' target directory is shared by every checkout (it
/// lives outside the clone), so the dep-info may name another checkout's files: those
/// are not watched, this checkout's sources are.
fn announce(root: &Path, target_dir: &Path, package: &str, var: &str) -> Result<(), String> {
    if let Some((_, dir)) = SOURCES.iter().find(|(name, _)| name == &package) {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let wasm = target_dir
        .join("wasm32-wasip2/plugin")
        .join(format!("{}.wasm", package.replace('-', "_")));
    if !wasm.is_file() {
        return Err(format!(
            "the plugin build did not produce {}",
            wasm.display()
        ));
    }
    let dep_info = wasm.with_extension("d");
    let listed = std::fs::read_to_string(&dep_info)
        .map_err(|e| format!("cannot read {}: {e}", dep_info.display()))?;
    for input in dep_info_inputs(&listed) {
        let inside_a_checkout = Path::new(&input)
            .ancestors()
            .any(|dir| dir.join("wit/policy.wit").is_file());
        if !Path::new(&input).exists()
            || (inside_a_checkout && !input.starts_with(&*root.to_string_lossy()))
        {
            continue;
        }
        println!("cargo:rerun-if-changed={input}");
        // A package's manifest is an input too, though dep-info does not list it.
        if let Some(manifest) = Path::new(&input)
            .ancestors()
            .map(|dir| dir.join("Cargo.toml"))
            .find(|manifest| manifest.is_file())
        {
            println!("cargo:rerun-if-changed={}", manifest.display());
        }
    }
    println!("cargo:rustc-env={var}={}", wasm.display());
    Ok(())
}

/// The inputs in a Makefile-style dep-info file (`out: in1 in2`, spaces in names
/// escaped with a backslash).
fn dep_info_inputs(text: &str) -> Vec<String> {
    let mut inputs = Vec::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once(": ") else {
            continue;
        };
        let mut current = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ' ' => {
                    if !current.is_empty() {
                        inputs.push(std::mem::take(&mut current));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            inputs.push(current);
        }
    }
    inputs.sort();
    inputs.dedup();
    inputs
}

/// `package podlight:policy@0.2.0;` → `0.2.0`
fn contract_version(wit: &str) -> Result<String, String> {
    wit.lines()
        .find_map(|line| line.trim().strip_prefix("package podlight:policy@"))
        .map(|rest| rest.trim_end_matches(';').trim().to_string())
        .ok_or_else(|| {
            "wit/policy.wit has no `package podlight:policy@<version>;` line".to_string()
        })
}

fn build_plugins(
    root: &Path,
    target_dir: &Path,
    plugins: &[(&str, &str)],
    features: Option<&str>,
) -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    for (package, _) in plugins {
        command.args(["-p", package]);
    }
    if let Some(features) = features {
        command.args(["--features", features]);
    }
    // The outer build's flags and target are for the host, not for the plugins.
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_BUILD_")
            || key.starts_with("CARGO_ENCODED_RUSTFLAGS")
            || key == "RUSTFLAGS"
            || key == "CARGO_TARGET_DIR"
            || key.starts_with("CARGO_PROFILE_")
            // A lint pass of the outer build (clippy-driver wrapping rustc) is not for the
            // plugins: clippy compiles without MIR optimisations, so the embedded plugin
            // would differ from the one every other build makes.
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key.starts_with("CLIPPY_")
        {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo to build the plugins: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed")
    {
        "\nhint: install the plugin target with `rustup target add wasm32-wasip2` (scripts/setup does this)"
    } else {
        ""
    };
    Err(format!(
        "building the plugins for wasm32-wasip2 failed:\n{stderr}{hint}"
    ))
}
