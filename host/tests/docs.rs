//! The architecture page stays true: every module it names in its table and every
//! source path it names exists.

use podlight_testsupport::repo_root;

#[test]
fn the_architecture_page_names_only_modules_and_files_that_exist() {
    let root = repo_root();
    let page = std::fs::read_to_string(root.join("docs/architecture.md")).expect("the page");
    let mut missing = Vec::new();
    let mut checked = 0;
    // `code` spans: the names and paths the page gives.
    for span in page.split('`').skip(1).step_by(2) {
        let exists = if span.ends_with(".rs") || span.ends_with(".html") {
            ["host/src", "host", ""]
                .iter()
                .any(|base| root.join(base).join(span).exists())
        } else {
            continue;
        };
        checked += 1;
        if !exists {
            missing.push(span.to_string());
        }
    }
    // The first column of the modules table: `module` or `module::sub`.
    for row in page.lines().filter(|l| l.starts_with("| `")) {
        let Some(module) = row.split('`').nth(1) else {
            continue;
        };
        let path = module.replace("::", "/");
        let src = root.join("host/src");
        checked += 1;
        if !src.join(format!("{path}.rs")).exists() && !src.join(&path).join("mod.rs").exists() {
            missing.push(format!("module {module}"));
        }
    }
    assert!(
        checked > 20,
        "the page names {checked} things: did its format change?"
    );
    assert!(
        missing.is_empty(),
        "docs/architecture.md names what does not exist: {missing:?}"
    );
}
