//! The example policies in other languages, built once per test process by
//! `scripts/build-example-policies` with their real toolchains (npm, PyPI, Go).
//! Shared by the tests and the policy benchmark, which each use part of it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// One built example: its language, folder and component.
#[derive(Debug, Clone)]
pub struct ExamplePolicy {
    pub language: &'static str,
    pub folder: &'static str,
    pub wasm: PathBuf,
}

const EXAMPLES: [(&str, &str, &str); 3] = [
    ("JavaScript", "js-blinkt", "blinkt.wasm"),
    ("Python", "python-namespaces", "namespaces.wasm"),
    ("Go", "go-restart-heat", "restart-heat.wasm"),
];

use crate::repo_root;

/// Builds every example (once) and returns them; panics with the build's output if
/// a toolchain fails.
pub fn example_policies() -> &'static [ExamplePolicy] {
    static BUILT: OnceLock<Vec<ExamplePolicy>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let out = Command::new("bash")
            .arg(root.join("scripts/build-example-policies"))
            .output()
            .expect("scripts/build-example-policies runs");
        assert!(
            out.status.success(),
            "building the example policies failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        EXAMPLES
            .iter()
            .map(|&(language, folder, file)| ExamplePolicy {
                language,
                folder,
                wasm: root.join("examples/policies").join(folder).join(file),
            })
            .collect()
    })
}

/// The example of this folder.
pub fn example(folder: &str) -> &'static ExamplePolicy {
    example_policies()
        .iter()
        .find(|e| e.folder == folder)
        .unwrap_or_else(|| panic!("no example policy {folder}"))
}
