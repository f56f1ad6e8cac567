//! Fetching: a plugin's bytes as the agent gets them, read from the source or pulled
//! for a reference.

use sha2::{Digest, Sha256};

use super::ReloadError;
use crate::agent::source::{PluginContent, PluginFile, PolicySource};
use crate::policy::CompileTarget;
use crate::registry::{PolicyReference, PulledArtifact};

/// A plugin's bytes as the agent got them — read, or pulled for a reference — and
/// checked against the trusted keys before anything compiles them.
pub(super) struct Fetched {
    pub(super) name: String,
    pub(super) bytes: Vec<u8>,
    /// Where they came from, for people.
    pub(super) origin: String,
    /// For a pull: the layer's sha256, reported as the plugin file's.
    pub(super) pulled_layer: Option<String>,
    /// For a pull: the precompiled artifact for this agent's machine pushed beside
    /// it (not yet verified), or why there is none.
    pub(super) precompiled: Option<Result<PulledArtifact, String>>,
}

impl Fetched {
    /// What was tried, by the hashes `podlight status --wait` may be given: the file's
    /// (or pulled layer's) and the component's inside a `.wasm.gz`.
    pub(super) fn tried(&self, max_plugin_size: usize) -> Tried {
        let file_sha256 = self
            .pulled_layer
            .clone()
            .unwrap_or_else(|| hex::encode(Sha256::digest(&self.bytes)));
        let sha256 = crate::policy::inspect::unpacked(&self.name, &self.bytes, max_plugin_size)
            .ok()
            .map(|component| hex::encode(Sha256::digest(&component)))
            .filter(|component| *component != file_sha256);
        Tried {
            file_sha256: Some(file_sha256),
            sha256,
        }
    }
}

/// The hashes of a plugin that was tried.
#[derive(Debug, Clone, Default)]
pub(super) struct Tried {
    pub(super) file_sha256: Option<String>,
    /// The component's, when it differs from the file's (a `.wasm.gz`).
    pub(super) sha256: Option<String>,
}

/// Reads or pulls `file`; a pull also looks for a precompiled artifact for `target`.
pub(super) async fn fetch(
    source: &PolicySource,
    file: &PluginFile,
    target: CompileTarget,
) -> Result<Fetched, ReloadError> {
    let fetched = match &file.content {
        PluginContent::Bytes(bytes) => Fetched {
            name: file.name.clone(),
            bytes: bytes.clone(),
            origin: file.origin.clone(),
            pulled_layer: None,
            precompiled: None,
        },
        PluginContent::Reference(text) => {
            let reference = PolicyReference::parse(text)?;
            let registry =
                source
                    .trust
                    .registry
                    .as_ref()
                    .ok_or_else(|| ReloadError::NoRegistry {
                        name: file.name.clone(),
                        reference: reference.to_string(),
                    })?;
            let pulled = registry.pull_for(&reference, Some(target)).await?;
            tracing::info!(%reference, manifest = %pulled.manifest_digest, layer = %pulled.layer_digest, bytes = pulled.bytes.len(), from_cache = pulled.from_cache, "policy pulled");
            Fetched {
                name: file.name.clone(),
                origin: format!(
                    "{} ({}) from {}",
                    reference.pinned(&pulled.manifest_digest),
                    if pulled.from_cache {
                        "cached"
                    } else {
                        "pulled"
                    },
                    file.origin
                ),
                pulled_layer: Some(
                    pulled
                        .layer_digest
                        .trim_start_matches("sha256:")
                        .to_string(),
                ),
                bytes: pulled.bytes,
                precompiled: pulled.precompiled,
            }
        }
    };
    Ok(fetched)
}
