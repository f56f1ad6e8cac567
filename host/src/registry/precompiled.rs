//! Precompiled artifacts beside a policy in a registry, as OCI 1.1 referrers: each
//! artifact is its own manifest (artifact type [`PRECOMPILED_ARTIFACT`], one layer,
//! `subject` = the policy's manifest, the target, wasmtime version and cosign
//! signature as annotations), listed in the referrers index under the tag
//! `sha256-<hex of the policy's manifest digest>` (the distribution spec's referrers
//! tag schema, which every registry serves and `oras discover` reads). The policy's
//! own manifest stays the plain CNCF Wasm artifact other tools pull, and an agent
//! downloads only its own machine's artifact.

use std::collections::BTreeMap;

use super::client::{
    Descriptor, Manifest, OCI_MANIFEST, PullError, PulledArtifact, RegistryClient,
    is_sha256_digest, sha256_digest,
};
use super::reference::PolicyReference;
use super::transport::Transport;
use crate::policy::CompileTarget;
use crate::policy::precompiled::WASMTIME_VERSION;
use crate::policy::untrusted::sanitize;

/// The artifact type of a precompiled policy, and its layer's media type.
pub const PRECOMPILED_ARTIFACT: &str = "application/vnd.podlight.precompiled.v1";
/// The media type of an OCI image index (the referrers list).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The OCI empty descriptor's media type: artifacts without a config.
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// `dev.podlight.precompiled.target`: the [`CompileTarget`] name.
pub const TARGET_ANNOTATION: &str = "dev.podlight.precompiled.target";
/// `dev.podlight.precompiled.wasmtime`: the wasmtime version that compiled it.
pub const WASMTIME_ANNOTATION: &str = "dev.podlight.precompiled.wasmtime";
/// `dev.podlight.precompiled.signature`: the cosign signature of the artifact file.
pub const SIGNATURE_ANNOTATION: &str = "dev.podlight.precompiled.signature";
/// A cosign P-256 signature is about 96 base64 characters; anything much longer is
/// not one.
const MAX_SIGNATURE_CHARS: usize = 1024;
/// Referrers read at most; the rest are ignored.
const MAX_REFERRERS: usize = 64;
/// A precompiled artifact may be this many times the plugin limit: compiled code is
/// larger than the component (the JavaScript example: 1 MB → about 8 MB).
const ARTIFACT_SIZE_FACTOR: usize = 4;

/// One artifact to push: the file `podlight plugin compile --target` wrote and its
/// cosign signature.
#[derive(Debug, Clone)]
pub struct PrecompiledPush {
    pub bytes: Vec<u8>,
    pub target: CompileTarget,
    pub signature: String,
    /// The layer's file name (`org.opencontainers.image.title`).
    pub title: String,
}

/// An OCI image index: what the referrers tag holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// `sha256:HEX` → `sha256-HEX`, the referrers tag of a manifest.
fn referrers_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

fn empty_config() -> (&'static [u8], Descriptor) {
    let bytes: &'static [u8] = b"{}";
    let descriptor = Descriptor {
        media_type: EMPTY_CONFIG.to_string(),
        digest: sha256_digest(bytes),
        size: bytes.len() as i64,
        artifact_type: None,
        annotations: None,
    };
    (bytes, descriptor)
}

impl RegistryClient {
    /// Pushes `artifacts` as referrers of the policy manifest `subject` (its digest
    /// and size) and lists them in its referrers tag, replacing any earlier artifact
    /// for the same target. The artifacts' manifest digests.
    pub(super) async fn push_precompiled(
        &self,
        reference: &PolicyReference,
        subject: (&str, usize),
        artifacts: &[PrecompiledPush],
    ) -> Result<Vec<String>, PullError> {
        let transport = self.transport(reference)?;
        let mut auth = None;
        let (config, config_descriptor) = empty_config();
        self.push_blob(transport, reference, &mut auth, config)
            .await?;
        let subject = Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: subject.0.to_string(),
            size: subject.1 as i64,
            artifact_type: None,
            annotations: None,
        };
        let mut pushed = Vec::new();
        for artifact in artifacts {
            let layer_digest = self
                .push_blob(transport, reference, &mut auth, &artifact.bytes)
                .await?;
            let annotations = BTreeMap::from([
                (
                    TARGET_ANNOTATION.to_string(),
                    artifact.target.name().to_string(),
                ),
                (
                    WASMTIME_ANNOTATION.to_string(),
                    WASMTIME_VERSION.to_string(),
                ),
                (
                    SIGNATURE_ANNOTATION.to_string(),
                    artifact.signature.trim().to_string(),
                ),
            ]);
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST.to_string()),
                artifact_type: Some(PRECOMPILED_ARTIFACT.to_string()),
                config: config_descriptor.clone(),
                layers: vec![Descriptor {
                    media_type: PRECOMPILED_ARTIFACT.to_string(),
                    digest: layer_digest,
                    size: artifact.bytes.len() as i64,
                    artifact_type: None,
                    annotations: Some(BTreeMap::from([(
                        "org.opencontainers.image.title".to_string(),
                        artifact.title.clone(),
                    )])),
                }],
                subject: Some(subject.clone()),
                annotations: Some(annotations.clone()),
            };
            let bytes = serde_json::to_vec(&manifest).map_err(|e| PullError::Invalid {
                reference: reference.to_string(),
                why: e.to_string(),
            })?;
            let digest = sha256_digest(&bytes);
            self.put_manifest(
                transport,
                reference,
                &mut auth,
                &digest,
                OCI_MANIFEST,
                &bytes,
            )
            .await?;
            // The referrers index lists the target and version, not the signature: an
            // agent reads the signature from the artifact's own manifest.
            let listed = annotations
                .into_iter()
                .filter(|(key, _)| key != SIGNATURE_ANNOTATION)
                .collect();
            pushed.push((
                artifact.target,
                Descriptor {
                    media_type: OCI_MANIFEST.to_string(),
                    digest,
                    size: bytes.len() as i64,
                    artifact_type: Some(PRECOMPILED_ARTIFACT.to_string()),
                    annotations: Some(listed),
                },
            ));
        }
        let tag = referrers_tag(&subject.digest);
        let mut index = match self
            .get_index(transport, reference, &mut auth, &tag, "pull,push")
            .await
        {
            Ok(index) => index,
            Err(PullError::NotFound { .. }) => Index {
                schema_version: 2,
                media_type: Some(OCI_INDEX.to_string()),
                manifests: Vec::new(),
            },
            Err(error) => return Err(error),
        };
        index.manifests.retain(|listed| {
            !pushed
                .iter()
                .any(|(target, _)| target_of(listed) == Some(target.name()))
        });
        let digests = pushed.iter().map(|(_, d)| d.digest.clone()).collect();
        index.manifests.extend(pushed.into_iter().map(|(_, d)| d));
        let bytes = serde_json::to_vec(&index).map_err(|e| PullError::Invalid {
            reference: reference.to_string(),
            why: e.to_string(),
        })?;
        self.put_manifest(transport, reference, &mut auth, &tag, OCI_INDEX, &bytes)
            .await?;
        Ok(digests)
    }

    /// The artifact for `target` among the referrers of manifest `subject`, or why
    /// none can be used (said, never an error: the policy is compiled instead).
    pub(super) async fn pull_precompiled(
        &self,
        transport: &Transport,
        reference: &PolicyReference,
        auth: &mut Option<String>,
        subject: &str,
        target: CompileTarget,
    ) -> Result<PulledArtifact, String> {
        let tag = referrers_tag(subject);
        let index = match self
            .get_index(transport, reference, auth, &tag, "pull")
            .await
        {
            Ok(index) => index,
            Err(PullError::NotFound { .. }) => {
                return Err(format!(
                    "{reference} has no precompiled artifacts (push them with `podlight plugin push --precompiled`)"
                ));
            }
            Err(error) => return Err(format!("cannot list its precompiled artifacts: {error}")),
        };
        let listed = choose_precompiled(reference, &index, target)?;
        let pinned = reference.pinned(&listed.digest);
        let manifest_bytes = self
            .get_manifest(
                transport,
                &pinned,
                auth,
                &listed.digest,
                OCI_MANIFEST,
                "pull",
            )
            .await
            .map_err(|e| e.to_string())?;
        if sha256_digest(&manifest_bytes) != listed.digest {
            return Err(format!(
                "the registry served another manifest than {} for the precompiled artifact",
                sanitize(&listed.digest, 80)
            ));
        }
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            format!(
                "the precompiled artifact's manifest is malformed: {}",
                sanitize(&e.to_string(), 200)
            )
        })?;
        let (layer, signature) = artifact_layer(&manifest)?;
        let limit = self
            .options()
            .max_bytes
            .saturating_mul(ARTIFACT_SIZE_FACTOR);
        let bytes = self
            .pull_blob(
                transport,
                &pinned,
                auth,
                layer,
                "precompiled artifact",
                limit,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(PulledArtifact {
            bytes,
            signature,
            manifest_digest: listed.digest.clone(),
        })
    }

    async fn get_index(
        &self,
        transport: &Transport,
        reference: &PolicyReference,
        auth: &mut Option<String>,
        tag: &str,
        actions: &str,
    ) -> Result<Index, PullError> {
        let bytes = self
            .get_manifest(transport, reference, auth, tag, OCI_INDEX, actions)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| PullError::Invalid {
            reference: reference.to_string(),
            why: format!(
                "the referrers index {} is not an OCI image index: {}",
                sanitize(tag, 80),
                sanitize(&e.to_string(), 200)
            ),
        })
    }
}

/// The artifact for `target` by this wasmtime among a referrers index's first
/// [`MAX_REFERRERS`] entries, or what the index offers instead.
pub(crate) fn choose_precompiled<'a>(
    reference: &PolicyReference,
    index: &'a Index,
    target: CompileTarget,
) -> Result<&'a Descriptor, String> {
    let precompiled: Vec<&Descriptor> = index
        .manifests
        .iter()
        .take(MAX_REFERRERS)
        .filter(|d| d.artifact_type.as_deref() == Some(PRECOMPILED_ARTIFACT))
        .filter(|d| is_sha256_digest(&d.digest))
        .collect();
    let ours = precompiled.iter().find(|d| {
        target_of(d) == Some(target.name())
            && annotation(d, WASMTIME_ANNOTATION) == Some(WASMTIME_VERSION)
    });
    let Some(listed) = ours else {
        let offered: Vec<String> = precompiled
            .iter()
            .take(8)
            .map(|d| {
                format!(
                    "{} (wasmtime {})",
                    sanitize(target_of(d).unwrap_or("?"), 40),
                    sanitize(annotation(d, WASMTIME_ANNOTATION).unwrap_or("?"), 40)
                )
            })
            .collect();
        return Err(format!(
            "{reference} has no precompiled artifact for {} by wasmtime {WASMTIME_VERSION} (it has: {})",
            target.name(),
            if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(", ")
            }
        ));
    };
    Ok(listed)
}

/// The artifact's layer in its manifest, with a digest podlight may put in a URL, and
/// its signature annotation when one of a plausible size is there.
pub(crate) fn artifact_layer(
    manifest: &Manifest,
) -> Result<(&Descriptor, Option<Vec<u8>>), String> {
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == PRECOMPILED_ARTIFACT && is_sha256_digest(&l.digest))
        .ok_or("the precompiled artifact's manifest has no artifact layer with a sha256 digest")?;
    let signature = manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIGNATURE_ANNOTATION))
        .filter(|s| s.len() <= MAX_SIGNATURE_CHARS)
        .map(|s| s.as_bytes().to_vec());
    Ok((layer, signature))
}

fn annotation<'a>(descriptor: &'a Descriptor, key: &str) -> Option<&'a str> {
    descriptor
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn target_of(descriptor: &Descriptor) -> Option<&str> {
    annotation(descriptor, TARGET_ANNOTATION)
}
