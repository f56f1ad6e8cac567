//! Pulling and pushing policies. A pull fetches the manifest (bounded, checked against
//! a pinned digest), takes its one `application/wasm` layer (size checked before and
//! while downloading, digest checked after) and keeps both in `CACHE/oci/`, so a
//! restart or a second reference to the same digest does not pull again. A push writes
//! the CNCF Wasm OCI artifact format (`wkg oci push` writes the same), so other Wasm
//! tooling and podlight read each other's. Every exchange goes through
//! [`transport`](super::transport): bounded reads, overall deadlines, sanitised
//! registry text.

use std::path::PathBuf;

use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Credentials;
use super::reference::PolicyReference;
use super::transport::{
    Exchange, MANIFEST_DEADLINE, MAX_MANIFEST_BYTES, Transport, TransportError, blob_deadline,
};
use crate::policy::CompileTarget;
use crate::policy::untrusted::sanitize;

/// The media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The layer media type of a Wasm component in the CNCF Wasm OCI artifact format.
pub const WASM_LAYER: &str = "application/wasm";
/// Its config media type.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    pub credentials: Credentials,
    /// `host[:port]` spoken to over plain HTTP (a registry on loopback, a lab).
    pub insecure: Vec<String>,
    /// PEM CA certificates trusted besides the system's (a private registry's CA).
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Largest plugin accepted, in bytes.
    pub max_bytes: usize,
    /// Where pulled blobs are kept (`DIR/oci/`); none: nothing is kept.
    pub cache_dir: Option<PathBuf>,
    /// The overall deadline of a manifest exchange; a blob gets this plus its size at
    /// [`MIN_BLOB_BYTES_PER_SECOND`](super::transport::MIN_BLOB_BYTES_PER_SECOND).
    pub deadline: std::time::Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            credentials: Credentials::default(),
            insecure: Vec::new(),
            extra_ca_pem: Vec::new(),
            max_bytes: 32 << 20,
            cache_dir: None,
            deadline: MANIFEST_DEADLINE,
        }
    }
}

/// A pulled policy.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub bytes: Vec<u8>,
    /// `sha256:…` of the manifest the reference resolved to.
    pub manifest_digest: String,
    /// `sha256:…` of the Wasm layer.
    pub layer_digest: String,
    /// The manifest and layer came from the cache: no request was made.
    pub from_cache: bool,
    /// The precompiled artifact asked for, or why there is none; none when none was
    /// asked for (or the policy came from the cache).
    pub precompiled: Option<Result<PulledArtifact, String>>,
}

/// A precompiled artifact as pulled: not yet verified.
#[derive(Debug, Clone)]
pub struct PulledArtifact {
    pub bytes: Vec<u8>,
    /// The cosign signature its manifest carries (base64).
    pub signature: Option<Vec<u8>>,
    /// `sha256:…` of its manifest.
    pub manifest_digest: String,
}

/// Why a pull or push failed. Each says what to do; the running policy is never
/// replaced because of one.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "registry {registry} is unreachable or too slow ({source}); podlight keeps the running policy and tries again"
    )]
    Unreachable {
        registry: String,
        #[source]
        source: TransportError,
    },
    #[error(
        "registry {registry} refused the credentials for {reference} (401/403): check the dockerconfigjson Secret (--registry-auth) has a user that may pull it"
    )]
    Unauthorized { registry: String, reference: String },
    #[error(
        "{reference} does not exist in the registry (404): check the repository, tag or digest"
    )]
    NotFound { reference: String },
    #[error(
        "{reference}: the {what} has digest {actual}, not the {expected} asked for — the registry served other content; refused"
    )]
    DigestMismatch {
        reference: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error(
        "{reference}'s Wasm layer is {size} bytes, over the {max}-byte limit (--max-plugin-mib)"
    )]
    TooLarge {
        reference: String,
        size: u64,
        max: usize,
    },
    #[error(
        "{reference} is not a Wasm component artifact: no `application/wasm` layer (found: {found}); push it with `podlight plugin push` or `wkg oci push`"
    )]
    NotWasm { reference: String, found: String },
    #[error("registry {registry}, {reference}: {source}")]
    Registry {
        registry: String,
        reference: String,
        #[source]
        source: TransportError,
    },
    #[error("{reference}: {why}")]
    Invalid { reference: String, why: String },
}

impl PullError {
    /// Worth trying again without a change: the registry was down, failing or slow.
    pub fn is_transient(&self) -> bool {
        match self {
            PullError::Unreachable { .. } => true,
            PullError::Registry { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}

/// The roots registries are checked against, as DER: Mozilla's, built in, so every
/// node trusts the same authorities whatever its image carries, and the certificates of
/// `extra_ca_pem` (a private registry's CA).
pub(crate) fn trusted_roots(extra_ca_pem: &[Vec<u8>]) -> Vec<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots: Vec<Vec<u8>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|cert| cert.as_ref().to_vec())
        .collect();
    for pem in extra_ca_pem {
        roots.extend(
            CertificateDer::pem_slice_iter(pem)
                .filter_map(Result::ok)
                .map(|cert| cert.as_ref().to_vec()),
        );
    }
    roots
}

/// The certificates in a PEM file; an error when it holds none.
pub fn certificates_in(pem: &[u8]) -> Result<usize, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    match certificates.len() {
        0 => Err("no PEM certificate in it".into()),
        n => Ok(n),
    }
}

/// An OCI content descriptor: what a manifest says of its config, layers and
/// subject, and an index of its manifests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(super) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// An OCI image manifest: only what podlight reads and writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(super) schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) artifact_type: Option<String>,
    pub(super) config: Descriptor,
    pub(super) layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// A registry's manifest for a policy: an OCI image manifest, or why not.
pub(crate) fn parse_manifest(
    reference: &PolicyReference,
    bytes: &[u8],
) -> Result<Manifest, PullError> {
    serde_json::from_slice(bytes).map_err(|e| PullError::Invalid {
        reference: reference.to_string(),
        why: format!(
            "the manifest is not an OCI image manifest: {}",
            sanitize(&e.to_string(), 200)
        ),
    })
}

/// The policy's Wasm layer in its manifest, within `max_bytes` and with a digest
/// podlight may put in a URL.
pub(crate) fn wasm_layer(
    reference: &PolicyReference,
    manifest: &Manifest,
    max_bytes: usize,
) -> Result<Descriptor, PullError> {
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == WASM_LAYER)
        .ok_or_else(|| PullError::NotWasm {
            reference: reference.to_string(),
            found: manifest
                .layers
                .iter()
                .take(8)
                .map(|l| sanitize(&l.media_type, 80))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
    if size > max_bytes as u64 {
        return Err(PullError::TooLarge {
            reference: reference.to_string(),
            size,
            max: max_bytes,
        });
    }
    if !is_sha256_digest(&layer.digest) {
        return Err(PullError::Invalid {
            reference: reference.to_string(),
            why: format!(
                "the Wasm layer's digest {} is not sha256:<64 hex digits>",
                sanitize(&layer.digest, 80)
            ),
        });
    }
    Ok(layer.clone())
}

pub struct RegistryClient {
    /// Built at the first pull or push: an agent that never uses a reference never
    /// sets up TLS for registries.
    transport: std::sync::OnceLock<Result<Transport, String>>,
    options: RegistryOptions,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("options", &self.options)
            .finish()
    }
}

pub(super) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:` and 64 lowercase hex digits: the only digests podlight puts in a URL or
/// a file name (a registry's text could otherwise steer either).
pub(crate) fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// `sha256:HEX` → a file name.
fn cache_name(digest: &str) -> String {
    digest.replace(':', "-")
}

impl RegistryClient {
    pub fn new(options: RegistryOptions) -> RegistryClient {
        RegistryClient {
            transport: std::sync::OnceLock::new(),
            options,
        }
    }

    pub(super) fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The HTTP transport, or why there is none.
    pub(super) fn transport(&self, reference: &PolicyReference) -> Result<&Transport, PullError> {
        let built = self.transport.get_or_init(|| {
            super::transport::use_ring_crypto();
            let options = &self.options;
            Transport::new(
                trusted_roots(&options.extra_ca_pem),
                options.insecure.clone(),
                options.credentials.clone(),
            )
            .map_err(|e| e.to_string())
        });
        built.as_ref().map_err(|why| PullError::Invalid {
            reference: reference.to_string(),
            why: why.clone(),
        })
    }

    pub(super) fn classify(&self, reference: &PolicyReference, error: TransportError) -> PullError {
        let registry = reference.registry.clone();
        let text = reference.to_string();
        match error {
            TransportError::Connect(_)
            | TransportError::Broken(_)
            | TransportError::TooSlow { .. } => PullError::Unreachable {
                registry,
                source: error,
            },
            TransportError::Status { status, .. }
                if status.as_u16() == 401 || status.as_u16() == 403 =>
            {
                PullError::Unauthorized {
                    registry,
                    reference: text,
                }
            }
            TransportError::Status {
                status, ref codes, ..
            } if status.as_u16() == 404
                || codes.iter().any(|c| {
                    matches!(
                        c.as_str(),
                        "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN"
                    )
                }) =>
            {
                PullError::NotFound { reference: text }
            }
            TransportError::Status { ref codes, .. }
                if codes
                    .iter()
                    .any(|c| matches!(c.as_str(), "UNAUTHORIZED" | "DENIED")) =>
            {
                PullError::Unauthorized {
                    registry,
                    reference: text,
                }
            }
            other => PullError::Registry {
                registry,
                reference: text,
                source: other,
            },
        }
    }

    /// `repository:REPO:ACTIONS`, the token scope of an operation on `reference`.
    pub(super) fn scope(reference: &PolicyReference, actions: &str) -> String {
        format!("repository:{}:{actions}", reference.repository)
    }

    pub(super) fn cached(&self, kind: &str, digest: &str) -> Option<Vec<u8>> {
        let dir = self.options.cache_dir.as_ref()?;
        std::fs::read(dir.join("oci").join(kind).join(cache_name(digest))).ok()
    }

    /// Keeps `bytes` under `oci/KIND/DIGEST`, written whole or not at all.
    pub(super) fn keep(&self, kind: &str, digest: &str, bytes: &[u8]) {
        let Some(dir) = &self.options.cache_dir else {
            return;
        };
        let dir = dir.join("oci").join(kind);
        if let Err(error) = crate::atomic_file::write(&dir.join(cache_name(digest)), bytes) {
            tracing::warn!(dir = %dir.display(), %error, "cannot keep a pulled policy in the cache; the next start pulls it again");
        }
    }

    /// Pulls the policy `reference` names. With a pinned digest that was pulled before,
    /// no request is made. The manifest is read within [`MAX_MANIFEST_BYTES`] and the
    /// deadline, the layer within the plugin limit and its [`blob_deadline`].
    pub async fn pull(&self, reference: &PolicyReference) -> Result<Pulled, PullError> {
        self.pull_for(reference, None).await
    }

    /// [`pull`](Self::pull), and the precompiled artifact for `target` pushed beside
    /// the policy, if any (see [`precompiled`](super::precompiled)). A missing or
    /// unreadable artifact never fails the pull: the policy is compiled instead.
    pub async fn pull_for(
        &self,
        reference: &PolicyReference,
        target: Option<CompileTarget>,
    ) -> Result<Pulled, PullError> {
        if let Some(pulled) = self.pull_cached(reference) {
            return Ok(pulled);
        }
        let transport = self.transport(reference)?;
        let tag_or_digest = reference
            .digest
            .as_deref()
            .or(reference.tag.as_deref())
            .unwrap_or("latest");
        let mut auth = None;
        let manifest_bytes = self
            .get_manifest(
                transport,
                reference,
                &mut auth,
                tag_or_digest,
                OCI_MANIFEST,
                "pull",
            )
            .await?;
        let manifest_digest = sha256_digest(&manifest_bytes);
        if let Some(expected) = &reference.digest
            && *expected != manifest_digest
        {
            return Err(PullError::DigestMismatch {
                reference: reference.to_string(),
                what: "manifest",
                expected: expected.clone(),
                actual: manifest_digest,
            });
        }
        let manifest = parse_manifest(reference, &manifest_bytes)?;
        let layer = wasm_layer(reference, &manifest, self.options.max_bytes)?;
        let bytes = self
            .pull_blob(
                transport,
                reference,
                &mut auth,
                &layer,
                "Wasm layer",
                self.options.max_bytes,
            )
            .await?;
        self.keep("manifests", &manifest_digest, layer.digest.as_bytes());
        let precompiled = match target {
            Some(target) => Some(
                self.pull_precompiled(transport, reference, &mut auth, &manifest_digest, target)
                    .await,
            ),
            None => None,
        };
        Ok(Pulled {
            bytes,
            manifest_digest,
            layer_digest: layer.digest,
            from_cache: false,
            precompiled,
        })
    }

    /// Where a manifest (by tag or digest) of the reference's repository lives.
    fn manifest_url(
        &self,
        transport: &Transport,
        reference: &PolicyReference,
        tag_or_digest: &str,
    ) -> Result<reqwest::Url, PullError> {
        transport
            .url(
                &reference.registry,
                &format!("{}/manifests/{tag_or_digest}", reference.repository),
            )
            .map_err(|e| self.classify(reference, e))
    }

    /// A pinned reference pulled before: its layer from the cache, checked again.
    fn pull_cached(&self, reference: &PolicyReference) -> Option<Pulled> {
        let manifest_digest = reference.digest.as_ref()?;
        let layer_digest = String::from_utf8(self.cached("manifests", manifest_digest)?).ok()?;
        let bytes = self.cached("blobs", &layer_digest)?;
        (sha256_digest(&bytes) == layer_digest && bytes.len() <= self.options.max_bytes).then(
            || Pulled {
                bytes,
                manifest_digest: manifest_digest.clone(),
                layer_digest,
                from_cache: true,
                precompiled: None,
            },
        )
    }

    /// A manifest (or index) by tag or digest, read within [`MAX_MANIFEST_BYTES`] and
    /// the deadline; its bytes, unchecked.
    pub(super) async fn get_manifest(
        &self,
        transport: &Transport,
        reference: &PolicyReference,
        auth: &mut Option<String>,
        tag_or_digest: &str,
        accept: &str,
        actions: &str,
    ) -> Result<Vec<u8>, PullError> {
        let url = self.manifest_url(transport, reference, tag_or_digest)?;
        transport
            .send(
                &reference.registry,
                &Self::scope(reference, actions),
                auth,
                Exchange {
                    method: Method::GET,
                    url,
                    what: "manifest",
                    accept: Some(accept),
                    content_type: None,
                    body: None,
                    limit: MAX_MANIFEST_BYTES,
                    hint: " (the OCI distribution spec's manifest limit)",
                    expected: 0,
                },
                self.options.deadline,
            )
            .await
            .map(|body| body.bytes)
            .map_err(|e| self.classify(reference, e))
    }

    /// A layer's bytes: from the cache when it holds them (checked again), else
    /// pulled within `limit`, checked against its digest and kept.
    pub(super) async fn pull_blob(
        &self,
        transport: &Transport,
        reference: &PolicyReference,
        auth: &mut Option<String>,
        layer: &Descriptor,
        what: &'static str,
        limit: usize,
    ) -> Result<Vec<u8>, PullError> {
        if let Some(bytes) = self
            .cached("blobs", &layer.digest)
            .filter(|b| sha256_digest(b) == layer.digest)
        {
            return Ok(bytes);
        }
        let bytes = self
            .download_blob(transport, reference, auth, layer, what, limit)
            .await?;
        self.keep("blobs", &layer.digest, &bytes);
        Ok(bytes)
    }

    /// A layer's bytes, read within `limit` and checked against its digest.
    async fn download_blob(
        &self,
        transport: &Transport,
        reference: &PolicyReference,
        auth: &mut Option<String>,
        layer: &Descriptor,
        what: &'static str,
        limit: usize,
    ) -> Result<Vec<u8>, PullError> {
        let scope = Self::scope(reference, "pull");
        let url = transport
            .url(
                &reference.registry,
                &format!("{}/blobs/{}", reference.repository, layer.digest),
            )
            .map_err(|e| self.classify(reference, e))?;
        let declared = usize::try_from(layer.size).unwrap_or(0).min(limit);
        let pulled = transport
            .send(
                &reference.registry,
                &scope,
                auth,
                Exchange {
                    method: Method::GET,
                    url,
                    what,
                    accept: None,
                    content_type: None,
                    body: None,
                    // The manifest's size is the registry's word; the bytes are counted.
                    limit,
                    hint: " (--max-plugin-mib)",
                    expected: declared,
                },
                blob_deadline(self.options.deadline, declared as u64),
            )
            .await;
        let bytes = match pulled {
            Ok(body) => body.bytes,
            Err(TransportError::TooLarge { .. }) => {
                return Err(PullError::TooLarge {
                    reference: reference.to_string(),
                    size: limit as u64 + 1,
                    max: limit,
                });
            }
            Err(e) => return Err(self.classify(reference, e)),
        };
        let actual = sha256_digest(&bytes);
        if actual != layer.digest {
            return Err(PullError::DigestMismatch {
                reference: reference.to_string(),
                what,
                expected: layer.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Uploads a blob unless the registry has it: `POST …/blobs/uploads/`, then `PUT`
    /// to the location it answers with the digest (the distribution spec's monolithic
    /// upload).
    pub(super) async fn push_blob(
        &self,
        transport: &Transport,
        reference: &PolicyReference,
        auth: &mut Option<String>,
        bytes: &[u8],
    ) -> Result<String, PullError> {
        let scope = Self::scope(reference, "pull,push");
        let digest = sha256_digest(bytes);
        let classify = |e| self.classify(reference, e);
        let exchange = |method, url, what, body: Option<Bytes>| Exchange {
            method,
            url,
            what,
            accept: None,
            content_type: body.as_ref().map(|_| "application/octet-stream"),
            body,
            limit: super::transport::MAX_ERROR_BYTES,
            hint: "",
            expected: 0,
        };
        let blob_url = transport
            .url(
                &reference.registry,
                &format!("{}/blobs/{digest}", reference.repository),
            )
            .map_err(classify)?;
        let registry = &reference.registry;
        let exists = transport
            .send(
                registry,
                &scope,
                auth,
                exchange(Method::HEAD, blob_url, "blob check", None),
                self.options.deadline,
            )
            .await;
        if exists.is_ok() {
            return Ok(digest);
        }
        let uploads = transport
            .url(
                registry,
                &format!("{}/blobs/uploads/", reference.repository),
            )
            .map_err(classify)?;
        let started = transport
            .send(
                registry,
                &scope,
                auth,
                exchange(Method::POST, uploads.clone(), "upload start", None),
                self.options.deadline,
            )
            .await
            .map_err(classify)?;
        let location = started
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PullError::Invalid {
                reference: reference.to_string(),
                why: "the registry started an upload but gave no Location".into(),
            })?;
        let mut put = uploads.join(location).map_err(|e| PullError::Invalid {
            reference: reference.to_string(),
            why: format!("the upload Location is not a URL: {e}"),
        })?;
        put.query_pairs_mut().append_pair("digest", &digest);
        transport
            .send(
                registry,
                &scope,
                auth,
                exchange(
                    Method::PUT,
                    put,
                    "blob upload",
                    Some(Bytes::copy_from_slice(bytes)),
                ),
                blob_deadline(self.options.deadline, bytes.len() as u64),
            )
            .await
            .map_err(classify)?;
        Ok(digest)
    }

    /// Pushes a component as a CNCF Wasm OCI artifact; the manifest's digest.
    /// `title` names the layer's file (`org.opencontainers.image.title`), which tools
    /// such as `oras pull` write it as.
    pub async fn push(
        &self,
        reference: &PolicyReference,
        component: &[u8],
        title: &str,
        created: &str,
    ) -> Result<String, PullError> {
        self.push_with_precompiled(reference, component, title, created, &[])
            .await
    }

    /// [`push`](Self::push), then `artifacts` as its referrers (see
    /// [`precompiled`](super::precompiled)).
    pub async fn push_with_precompiled(
        &self,
        reference: &PolicyReference,
        component: &[u8],
        title: &str,
        created: &str,
        artifacts: &[super::PrecompiledPush],
    ) -> Result<String, PullError> {
        let transport = self.transport(reference)?;
        let mut auth = None;
        let layer_digest = sha256_digest(component);
        let config = serde_json::json!({
            "created": created,
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [layer_digest],
            "component": {
                "exports": [format!("podlight:policy/evaluator@{}", crate::policy::CONTRACT_VERSION)],
                "imports": [],
                "target": null,
            },
        })
        .to_string()
        .into_bytes();
        let config_digest = self
            .push_blob(transport, reference, &mut auth, &config)
            .await?;
        self.push_blob(transport, reference, &mut auth, component)
            .await?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: WASM_CONFIG.to_string(),
                digest: config_digest,
                size: config.len() as i64,
                artifact_type: None,
                annotations: None,
            },
            layers: vec![Descriptor {
                media_type: WASM_LAYER.to_string(),
                digest: layer_digest,
                size: component.len() as i64,
                artifact_type: None,
                annotations: Some(std::collections::BTreeMap::from([(
                    "org.opencontainers.image.title".to_string(),
                    title.to_string(),
                )])),
            }],
            artifact_type: None,
            subject: None,
            annotations: None,
        };
        let manifest = serde_json::to_vec(&manifest).map_err(|e| PullError::Invalid {
            reference: reference.to_string(),
            why: e.to_string(),
        })?;
        let tag = reference.tag.as_deref().unwrap_or("latest");
        let digest = self
            .put_manifest(
                transport,
                reference,
                &mut auth,
                tag,
                OCI_MANIFEST,
                &manifest,
            )
            .await?;
        if !artifacts.is_empty() {
            self.push_precompiled(reference, (&digest, manifest.len()), artifacts)
                .await?;
        }
        Ok(digest)
    }

    /// Uploads a manifest (or index) under `tag_or_digest`; its digest (registries
    /// store a manifest as sent: the digest is that of these bytes).
    pub(super) async fn put_manifest(
        &self,
        transport: &Transport,
        reference: &PolicyReference,
        auth: &mut Option<String>,
        tag_or_digest: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> Result<String, PullError> {
        let url = self.manifest_url(transport, reference, tag_or_digest)?;
        transport
            .send(
                &reference.registry,
                &Self::scope(reference, "pull,push"),
                auth,
                Exchange {
                    method: Method::PUT,
                    url,
                    what: "manifest upload",
                    accept: None,
                    content_type: Some(media_type),
                    body: Some(Bytes::copy_from_slice(manifest)),
                    limit: super::transport::MAX_ERROR_BYTES,
                    hint: "",
                    expected: 0,
                },
                self.options.deadline,
            )
            .await
            .map_err(|e| self.classify(reference, e))?;
        Ok(sha256_digest(manifest))
    }
}
