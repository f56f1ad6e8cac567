//! `podlight plugin new --lang LANG DIR`: a ready-to-build policy project from the
//! language's example — its source, the contract (`wit/`), a build script, sample
//! snapshots and a `podlight test` file that passes — so an author starts green.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    Rust,
    Js,
    Python,
    Go,
}

#[derive(Args)]
pub struct NewArgs {
    /// The language of the policy.
    #[arg(long, value_enum)]
    lang: Language,
    /// The project's directory (created; must not exist or be empty).
    dir: PathBuf,
    /// The policy's name, and its plugin's `NAME.wasm` (default: the directory's name).
    #[arg(long)]
    name: Option<String>,
}

/// The contract every project builds against.
const CONTRACT: &str = include_str!("../../../wit/policy.wit");
/// wit-bindgen for Rust projects: the version the repository's own plugins use (a
/// unit test keeps the two in step).
const RUST_WIT_BINDGEN: &str = "0.61";

/// Sample snapshots the test files read.
const SNAPSHOTS: [(&str, &str); 4] = [
    (
        "all-running.json",
        include_str!("../../../examples/snapshots/all-running.json"),
    ),
    (
        "busy-node.json",
        include_str!("../../../examples/snapshots/busy-node.json"),
    ),
    (
        "crash-loop.json",
        include_str!("../../../examples/snapshots/crash-loop.json"),
    ),
    (
        "deleting.json",
        include_str!("../../../examples/snapshots/deleting.json"),
    ),
];

/// A policy name: what `--policy NAME` and the ConfigMap key `NAME.wasm` take.
fn policy_name(args: &NewArgs) -> Result<String> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default(),
    };
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "{name:?} is not a policy name: use lowercase letters, digits and '-', starting with a letter (--name NAME)"
        );
    }
    Ok(name)
}

/// The files of a new project in `lang` named `name`, relative to its directory;
/// executables marked.
fn project_files(lang: Language, name: &str) -> Vec<(String, String, bool)> {
    let wasm = format!("{name}.wasm");
    let file = |path: &str, text: String| (path.to_string(), text, false);
    let mut files = vec![file("wit/policy.wit", CONTRACT.to_string())];
    for (snapshot, text) in SNAPSHOTS {
        files.push(file(&format!("snapshots/{snapshot}"), text.to_string()));
    }
    let test = |example_test: &str, example_wasm: &str| {
        example_test
            .replace(
                &format!("plugin = \"{example_wasm}\""),
                &format!("plugin = \"{wasm}\""),
            )
            .replace("../../snapshots/", "snapshots/")
    };
    let (build, source) = match lang {
        Language::Rust => {
            let crate_file = name.replace('-', "_");
            files.push(file(
                "Cargo.toml",
                format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
                     [lib]\ncrate-type = [\"cdylib\"]\n\n\
                     [target.'cfg(target_family = \"wasm\")'.dependencies]\n\
                     wit-bindgen = {{ version = \"{RUST_WIT_BINDGEN}\", default-features = false, features = [\"macros\", \"realloc\"] }}\n\n\
                     # Small plugins compile fast on every node.\n\
                     [profile.release]\nopt-level = \"s\"\nlto = true\nstrip = true\ncodegen-units = 1\npanic = \"abort\"\n\n\
                     # A project of its own, also when created inside another workspace.\n[workspace]\n"
                ),
            ));
            files.push(file(
                "src/lib.rs",
                include_str!("../../../examples/policies/rust-breathe/src/lib.rs")
                    .replace("path: \"../../../wit\"", "path: \"wit\""),
            ));
            files.push(file(
                &format!("{name}.test.toml"),
                test(
                    include_str!("../../../examples/policies/rust-breathe/breathe.test.toml"),
                    "breathe.wasm",
                ),
            ));
            (
                format!(
                    "# Rust with the wasm32-wasip2 target: rustup target add wasm32-wasip2\n\
                     cargo build --release --target wasm32-wasip2\n\
                     cp \"${{CARGO_TARGET_DIR:-target}}/wasm32-wasip2/release/{crate_file}.wasm\" {wasm}\n"
                ),
                "src/lib.rs",
            )
        }
        Language::Js => {
            let rename = |text: &str| text.replace("podlight-blinkt", name);
            files.push(file(
                "package.json",
                rename(include_str!(
                    "../../../examples/policies/js-blinkt/package.json"
                ))
                .replace("--wit ../../../wit", "--wit wit")
                .replace("-o blinkt.wasm", &format!("-o {wasm}")),
            ));
            files.push(file(
                "package-lock.json",
                rename(include_str!(
                    "../../../examples/policies/js-blinkt/package-lock.json"
                )),
            ));
            files.push(file(
                "policy.js",
                include_str!("../../../examples/policies/js-blinkt/policy.js").to_string(),
            ));
            files.push(file(
                &format!("{name}.test.toml"),
                test(
                    include_str!("../../../examples/policies/js-blinkt/blinkt.test.toml"),
                    "blinkt.wasm",
                ),
            ));
            files.push(file(".gitignore", "node_modules/\n*.wasm\n".into()));
            (
                "# Node.js and npm; componentize-qjs (npm) embeds QuickJS.\n\
                 npm ci --no-audit --no-fund\nnpm run build\n"
                    .to_string(),
                "policy.js",
            )
        }
        Language::Python => {
            files.push(file(
                "app.py",
                include_str!("../../../examples/policies/python-namespaces/app.py").to_string(),
            ));
            files.push(file(
                "requirements.txt",
                include_str!("../../../examples/policies/python-namespaces/requirements.txt")
                    .to_string(),
            ));
            files.push(file(
                &format!("{name}.test.toml"),
                test(
                    include_str!(
                        "../../../examples/policies/python-namespaces/namespaces.test.toml"
                    ),
                    "namespaces.wasm",
                ),
            ));
            files.push(file(
                ".gitignore",
                ".venv/\nwit_world/\n__pycache__/\n*.wasm\n".into(),
            ));
            (
                format!(
                    "# Python 3.10+; componentize-py (PyPI) embeds CPython. PODLIGHT_VENV: a venv to reuse.\n\
                     venv=\"${{PODLIGHT_VENV:-.venv}}\"\n\
                     [ -x \"$venv/bin/python\" ] || python3 -m venv \"$venv\"\n\
                     \"$venv/bin/pip\" install --quiet --disable-pip-version-check -r requirements.txt\n\
                     \"$venv/bin/componentize-py\" -d wit -w policy componentize app -o {wasm}\n"
                ),
                "app.py",
            )
        }
        Language::Go => {
            files.push(file(
                "go.mod",
                include_str!("../../../examples/policies/go-restart-heat/go.mod").to_string(),
            ));
            files.push(file(
                "export_podlight_policy_evaluator/policy.go",
                include_str!(
                    "../../../examples/policies/go-restart-heat/export_podlight_policy_evaluator/policy.go"
                )
                .to_string(),
            ));
            files.push(file(
                &format!("{name}.test.toml"),
                test(
                    include_str!(
                        "../../../examples/policies/go-restart-heat/restart-heat.test.toml"
                    ),
                    "restart-heat.wasm",
                ),
            ));
            files.push(file(
                ".gitignore",
                "*.wasm\n.runtime/\nwit_exports.go\npodlight_policy_*/\n".into(),
            ));
            (
                format!(
                    "# Go 1.25+; the bindings and the component step come from a podlight checkout's\n\
                     # scripts/build-go-policy (wit-bindgen-go and wit-component, from crates.io).\n\
                     \"${{PODLIGHT_ROOT:?set PODLIGHT_ROOT to a podlight checkout}}/scripts/build-go-policy\" . {wasm}\n"
                ),
                "export_podlight_policy_evaluator/policy.go",
            )
        }
    };
    files.push((
        "build.sh".to_string(),
        format!("#!/usr/bin/env bash\n# Builds {wasm}.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n{build}"),
        true,
    ));
    files.push(file("README.md", readme(name, &wasm, source)));
    files
}

fn readme(name: &str, wasm: &str, source: &str) -> String {
    format!(
        "# {name}\n\n\
         A podlight policy. The rules are in `{source}`; the contract it implements is\n\
         `wit/policy.wit`.\n\n\
         1. Build: `bash build.sh` writes `{wasm}`.\n\
         2. Test: `podlight test` runs `{name}.test.toml`: frames expected for sample\n   \
            snapshots (`snapshots/`) and inline pods, on a virtual clock. Change the rules,\n   \
            then the expectations (or `podlight test --update` and review the diff). In CI:\n   \
            `podlight test --junit report.xml`.\n\
         3. Try it on your own node's state: `podlight snapshot > now.json` and\n   \
            `podlight eval {wasm} now.json`; `podlight record --out day.jsonl` and\n   \
            `podlight replay day.jsonl {wasm}`.\n\
         4. Trial on a live node without touching its light: add `{wasm}` to the\n   \
            `podlight-policies` ConfigMap and run the agent with `--shadow-policy {name}`;\n   \
            its status page shows this policy's frame beside the active one and\n   \
            `podlight_shadow_frames_total` counts how often they differ.\n\
         5. Swap it in: store it as the active policy (`priority.wasm`, or `--policy {name}`)\n   \
            and follow the rollout with `podlight status --wait --policy-sha256 $(sha256sum {wasm} | cut -d' ' -f1)`.\n"
    )
}

pub fn plugin_new(args: NewArgs) -> Result<()> {
    let name = policy_name(&args)?;
    let dir = &args.dir;
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} is not empty: choose a new directory", dir.display());
    }
    for (path, text, executable) in project_files(args.lang, &name) {
        write(&dir.join(&path), &text, executable)?;
    }
    let language = match args.lang {
        Language::Rust => "Rust",
        Language::Js => "JavaScript",
        Language::Python => "Python",
        Language::Go => "Go",
    };
    outln!(
        "created {} ({language} policy {name}): bash {}/build.sh, then podlight test {}",
        dir.display(),
        dir.display(),
        dir.display()
    )?;
    Ok(())
}

fn write(path: &Path, text: &str, executable: bool) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_projects_use_the_repositorys_wit_bindgen() {
        let workspace: toml::Table =
            toml::from_str(include_str!("../../../Cargo.toml")).expect("the workspace manifest");
        let version = workspace["workspace"]["dependencies"]["wit-bindgen"]["version"].as_str();
        assert_eq!(version, Some(RUST_WIT_BINDGEN));
    }

    #[test]
    fn every_project_points_at_its_own_contract_and_samples() {
        for lang in [Language::Rust, Language::Js, Language::Python, Language::Go] {
            let files = project_files(lang, "my-policy");
            for (path, text, _) in &files {
                assert!(
                    !text.contains("../../"),
                    "{lang:?} {path} points outside the project"
                );
            }
            let test = files
                .iter()
                .find(|(p, _, _)| p == "my-policy.test.toml")
                .expect("a test file");
            assert!(
                test.1.contains("plugin = \"my-policy.wasm\""),
                "{lang:?}: {}",
                test.1
            );
            let build = files
                .iter()
                .find(|(p, _, _)| p == "build.sh")
                .expect("build.sh");
            assert!(build.2 && build.1.contains("my-policy.wasm"), "{lang:?}");
        }
    }
}
