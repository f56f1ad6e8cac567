//! Builds podlight policies with toolchains that stop at a core Wasm module (Go):
//!
//! - `go-bindings DIR`: writes the Go bindings of the contract's `policy` world into
//!   the Go module at DIR (the files the policy's own package builds against);
//! - `componentize CORE OUT`: turns a WASI preview 1 core module into a podlight
//!   plugin: embeds the contract's types and adapts WASI preview 1 to the preview 2
//!   imports podlight's sandbox grants.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wit_bindgen_core::Files;
use wit_parser::{Resolve, WorldId};

const USAGE: &str =
    "usage: podlight-policy-build go-bindings DIR | componentize CORE.wasm OUT.wasm";

/// The contract: `PODLIGHT_WIT_DIR` (the scripts set it to their checkout's `wit/`,
/// which a binary cached from another checkout would not know), else this
/// repository's.
fn contract() -> PathBuf {
    std::env::var_os("PODLIGHT_WIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit"))
}

fn policy_world() -> Result<(Resolve, WorldId)> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(contract())
        .with_context(|| format!("cannot read the contract in {}", contract().display()))?;
    let world = resolve.select_world(&[package], Some("policy"))?;
    Ok((resolve, world))
}

fn go_bindings(out: &Path) -> Result<()> {
    let (mut resolve, world) = policy_world()?;
    let mut files = Files::default();
    wit_bindgen_go::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    for (name, contents) in files.iter() {
        // The Go module's own go.mod (its name, the runtime's replace) is the
        // policy's, not generated.
        if name == "go.mod" {
            continue;
        }
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn componentize(core: &Path, out: &Path) -> Result<()> {
    let (resolve, world) = policy_world()?;
    let mut module =
        std::fs::read(core).with_context(|| format!("cannot read {}", core.display()))?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )?;
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
        .with_context(|| format!("cannot make a component of {}", core.display()))?;
    std::fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["go-bindings", dir] => go_bindings(Path::new(dir)),
        ["componentize", core, out] => componentize(Path::new(core), Path::new(out)),
        _ => bail!(USAGE),
    }
}
