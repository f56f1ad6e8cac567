//! `podlight plugin push FILE REF` and `podlight plugin pull REF FILE`: policies in OCI
//! registries, in the CNCF Wasm OCI artifact format.

use std::path::PathBuf;

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use podlight::policy::{CompileTarget, inspect, precompiled};
use podlight::registry::{PolicyReference, PrecompiledPush};

use super::args::RegistryArgs;

/// Largest plugin `push` and `pull` handle, in MiB (the agent's own limit is
/// `--max-plugin-mib`).
const MAX_PLUGIN_MIB: usize = 64;

#[derive(Args)]
pub struct PushArgs {
    /// The plugin: a .wasm component (a .wasm.gz is decompressed first: the artifact's
    /// layer is the component itself).
    file: PathBuf,
    /// Where to push: oci://REGISTRY/REPOSITORY:TAG.
    reference: String,
    /// A precompiled artifact of this component (`podlight plugin compile --target`),
    /// pushed beside it for agents on that machine; its cosign signature must be
    /// beside it as FILE.sig (`cosign sign-blob --key cosign.key --output-signature
    /// FILE.sig FILE`). Repeat for each machine.
    #[arg(long = "precompiled")]
    precompiled: Vec<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args)]
pub struct PullArgs {
    /// What to pull: oci://REGISTRY/REPOSITORY:TAG or …@sha256:DIGEST.
    reference: String,
    /// Where to write the component.
    file: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn plugin_push(args: PushArgs) -> Result<()> {
    let reference = PolicyReference::parse(&args.reference)?;
    let file = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let component = inspect::unpacked(
        &args.file.display().to_string(),
        &file,
        MAX_PLUGIN_MIB << 20,
    )?;
    if !inspect::is_component(&component) {
        bail!(
            "{} is not a WebAssembly component: podlight policies are components (see docs/policies.md)",
            args.file.display()
        );
    }
    let client = args.registry.client(MAX_PLUGIN_MIB << 20, None)?;
    // The artifact config's `created`, RFC 3339.
    let created = k8s_openapi::jiff::Timestamp::now().to_string();
    // The layer's file name: the component, whatever the file pushed was called.
    let title = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".gz").to_string())
        .unwrap_or_else(|| "policy.wasm".into());
    let artifacts = args
        .precompiled
        .iter()
        .map(|path| precompiled_push(path, &component))
        .collect::<Result<Vec<_>>>()?;
    let digest = super::runtime()?.block_on(
        client.push_with_precompiled(&reference, &component, &title, &created, &artifacts),
    )?;
    outln!("{}", reference.pinned(&digest))?;
    for artifact in &artifacts {
        outln!(
            "  precompiled for {}: {}",
            artifact.target.name(),
            artifact.title
        )?;
    }
    Ok(())
}

/// A precompiled artifact to push: it must be of `component` and signed.
fn precompiled_push(path: &Path, component: &[u8]) -> Result<PrecompiledPush> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let artifact =
        precompiled::parse(&bytes).map_err(|why| anyhow!("{}: {why}", path.display()))?;
    let header = &artifact.header;
    let target =
        CompileTarget::parse(&header.target).map_err(|why| anyhow!("{}: {why}", path.display()))?;
    if let Some(mismatch) = header.mismatch(component, target) {
        bail!(
            "{}: {mismatch}; compile it again from this component",
            path.display()
        );
    }
    let signature_path = PathBuf::from(format!("{}.sig", path.display()));
    let signature = std::fs::read_to_string(&signature_path).with_context(|| {
        format!(
            "{} is not signed: agents run precompiled code only when a trusted key signed it. Sign it with `cosign sign-blob --key cosign.key --output-signature {} {}`",
            path.display(),
            signature_path.display(),
            path.display()
        )
    })?;
    let title = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("policy.{}.cwasm", target.name()));
    Ok(PrecompiledPush {
        bytes,
        target,
        signature,
        title,
    })
}

pub fn plugin_pull(args: PullArgs) -> Result<()> {
    let reference = PolicyReference::parse(&args.reference)?;
    let client = args.registry.client(MAX_PLUGIN_MIB << 20, None)?;
    let pulled = super::runtime()?.block_on(client.pull(&reference))?;
    std::fs::write(&args.file, &pulled.bytes)
        .with_context(|| format!("cannot write {}", args.file.display()))?;
    outln!(
        "{} → {} ({} bytes, layer {})",
        reference.pinned(&pulled.manifest_digest),
        args.file.display(),
        pulled.bytes.len(),
        pulled.layer_digest
    )?;
    Ok(())
}
