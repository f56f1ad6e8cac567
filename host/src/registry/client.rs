//! Pulling and pushing policies. A pull fetches the manifest (checked against a pinned
//! digest), takes its one `application/wasm` layer (size checked before and while
//! downloading, digest checked after) and keeps both in `CACHE/oci/`, so a restart or
//! a second reference to the same digest does not pull again. A push writes the CNCF
//! Wasm OCI artifact format (`wkg oci push` writes the same), so other Wasm tooling and
//! podlight read each other's.

use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use super::auth::Credentials;
use super::reference::PolicyReference;
use crate::policy::untrusted::sanitize;

/// The layer media type of a Wasm component in the CNCF Wasm OCI artifact format.
pub const WASM_LAYER: &str = "application/wasm";
/// Its config media type.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";

/// How to reach registries.
#[derive(Debug, Clone, Default)]
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
}

/// Why a pull or push failed. Each says what to do; the running policy is never
/// replaced because of one.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "registry {registry} is unreachable ({source}); podlight keeps the running policy and tries again"
    )]
    Unreachable {
        registry: String,
        #[source]
        source: OciDistributionError,
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
    #[error("registry {registry} answered {reference} with an error: {source}")]
    Registry {
        registry: String,
        reference: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("{reference}: {why}")]
    Invalid { reference: String, why: String },
}

impl PullError {
    /// Worth trying again without a change: the registry was down or failing.
    pub fn is_transient(&self) -> bool {
        match self {
            PullError::Unreachable { .. } => true,
            PullError::Registry { source, .. } => matches!(
                source,
                OciDistributionError::ServerError { code, .. } if *code >= 500
            ),
            _ => false,
        }
    }
}

/// The roots registries are checked against: Mozilla's, built in, so every node
/// trusts the same authorities whatever its image carries, and the certificates of
/// `extra_ca_pem` (a private registry's CA).
fn trusted_roots(extra_ca_pem: &[Vec<u8>]) -> Vec<oci_client::client::Certificate> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = |data: &[u8]| oci_client::client::Certificate {
        encoding: oci_client::client::CertificateEncoding::Der,
        data: data.to_vec(),
    };
    let mut roots: Vec<_> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|cert| der(cert.as_ref()))
        .collect();
    for pem in extra_ca_pem {
        roots.extend(
            CertificateDer::pem_slice_iter(pem)
                .filter_map(Result::ok)
                .map(|cert| der(cert.as_ref())),
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

/// Collects a download, refusing (with an error the client passes on) past `max`.
struct CappedBuffer {
    bytes: Vec<u8>,
    max: usize,
    exceeded: bool,
}

impl tokio::io::AsyncWrite for CappedBuffer {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.bytes.len() + buf.len() > self.max {
            self.exceeded = true;
            return std::task::Poll::Ready(Err(std::io::Error::other("over the size limit")));
        }
        self.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

pub struct RegistryClient {
    /// Built at the first pull or push: an agent that never uses a reference never
    /// sets up TLS for registries.
    client: std::sync::OnceLock<Result<Client, String>>,
    options: RegistryOptions,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("options", &self.options)
            .finish()
    }
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:HEX` → a file name.
fn cache_name(digest: &str) -> String {
    digest.replace(':', "-")
}

impl RegistryClient {
    pub fn new(options: RegistryOptions) -> RegistryClient {
        RegistryClient {
            client: std::sync::OnceLock::new(),
            options,
        }
    }

    /// The HTTP client, or why there is none. The OCI client builds a default HTTP
    /// client besides the configured one, and that one panics on a system without CA
    /// certificates; such a system is refused here with a message instead.
    fn client(&self, reference: &PolicyReference) -> Result<&Client, PullError> {
        let built = self.client.get_or_init(|| {
            if rustls_native_certs::load_native_certs().certs.is_empty() {
                return Err(
                    "this system has no CA certificates (/etc/ssl/certs, or SSL_CERT_FILE), which the registry client needs to start; the podlight image carries them — elsewhere, install the ca-certificates package"
                        .to_string(),
                );
            }
            // rustls on ring, as kube uses it; a provider installed before is kept.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let options = &self.options;
            Ok(Client::new(ClientConfig {
                protocol: if options.insecure.is_empty() {
                    ClientProtocol::Https
                } else {
                    ClientProtocol::HttpsExcept(options.insecure.clone())
                },
                tls_certs_only: trusted_roots(&options.extra_ca_pem),
                connect_timeout: Some(Duration::from_secs(10)),
                read_timeout: Some(Duration::from_secs(60)),
                user_agent: concat!("podlight/", env!("CARGO_PKG_VERSION")),
                ..ClientConfig::default()
            }))
        });
        built.as_ref().map_err(|why| PullError::Invalid {
            reference: reference.to_string(),
            why: why.clone(),
        })
    }

    fn auth(&self, registry: &str) -> RegistryAuth {
        match self.options.credentials.for_registry(registry) {
            Some((user, password)) => RegistryAuth::Basic(user.to_string(), password.to_string()),
            None => RegistryAuth::Anonymous,
        }
    }

    fn oci_reference(reference: &PolicyReference) -> Result<Reference, PullError> {
        reference
            .without_scheme()
            .parse()
            .map_err(|e: oci_client::ParseError| PullError::Invalid {
                reference: reference.to_string(),
                why: e.to_string(),
            })
    }

    fn classify(&self, reference: &PolicyReference, error: OciDistributionError) -> PullError {
        let registry = reference.registry.clone();
        let text = reference.to_string();
        let has_code = |envelope: &oci_client::errors::OciEnvelope,
                        wanted: &dyn Fn(&OciErrorCode) -> bool| {
            envelope.errors.iter().any(|e| wanted(&e.code))
        };
        let not_found = |c: &OciErrorCode| {
            matches!(
                c,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
            )
        };
        let refused =
            |c: &OciErrorCode| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied);
        match error {
            OciDistributionError::RequestError(ref e) if e.is_connect() || e.is_timeout() => {
                PullError::Unreachable {
                    registry,
                    source: error,
                }
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => PullError::Unauthorized {
                registry,
                reference: text,
            },
            OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => PullError::Unauthorized {
                registry,
                reference: text,
            },
            OciDistributionError::ImageManifestNotFoundError(_)
            | OciDistributionError::ServerError { code: 404, .. } => {
                PullError::NotFound { reference: text }
            }
            OciDistributionError::RegistryError { ref envelope, .. }
                if has_code(envelope, &not_found) =>
            {
                PullError::NotFound { reference: text }
            }
            OciDistributionError::RegistryError { ref envelope, .. }
                if has_code(envelope, &refused) =>
            {
                PullError::Unauthorized {
                    registry,
                    reference: text,
                }
            }
            OciDistributionError::DigestError(e) => PullError::Invalid {
                reference: text,
                why: format!("the registry's content does not match its digest: {e}"),
            },
            other => PullError::Registry {
                registry,
                reference: text,
                source: other,
            },
        }
    }

    fn cached(&self, kind: &str, digest: &str) -> Option<Vec<u8>> {
        let dir = self.options.cache_dir.as_ref()?;
        std::fs::read(dir.join("oci").join(kind).join(cache_name(digest))).ok()
    }

    /// Keeps `bytes` under `oci/KIND/DIGEST`, written whole or not at all.
    fn keep(&self, kind: &str, digest: &str, bytes: &[u8]) {
        let Some(dir) = &self.options.cache_dir else {
            return;
        };
        let dir = dir.join("oci").join(kind);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(cache_name(digest));
            let partial = dir.join(format!(".{}.partial", cache_name(digest)));
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, path)
        };
        if let Err(error) = write() {
            tracing::warn!(dir = %dir.display(), %error, "cannot keep a pulled policy in the cache; the next start pulls it again");
        }
    }

    /// Pulls the policy `reference` names. With a pinned digest that was pulled before,
    /// no request is made.
    pub async fn pull(&self, reference: &PolicyReference) -> Result<Pulled, PullError> {
        if let Some(pulled) = self.pull_cached(reference) {
            return Ok(pulled);
        }
        let oci = Self::oci_reference(reference)?;
        let auth = self.auth(&reference.registry);
        let (manifest_bytes, _) = self
            .client(reference)?
            .pull_manifest_raw(&oci, &auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await
            .map_err(|e| self.classify(reference, e))?;
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
        let manifest: OciImageManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| PullError::Invalid {
                reference: reference.to_string(),
                why: format!("the manifest is not an OCI image manifest: {e}"),
            })?;
        let layer = self.wasm_layer(reference, &manifest)?;
        let bytes = match self
            .cached("blobs", &layer.digest)
            .filter(|b| sha256_digest(b) == layer.digest)
        {
            Some(bytes) => bytes,
            None => {
                let bytes = self.pull_layer(reference, &oci, &layer).await?;
                self.keep("blobs", &layer.digest, &bytes);
                bytes
            }
        };
        self.keep("manifests", &manifest_digest, layer.digest.as_bytes());
        Ok(Pulled {
            bytes,
            manifest_digest,
            layer_digest: layer.digest,
            from_cache: false,
        })
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
            },
        )
    }

    fn wasm_layer(
        &self,
        reference: &PolicyReference,
        manifest: &OciImageManifest,
    ) -> Result<oci_client::manifest::OciDescriptor, PullError> {
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.media_type == WASM_LAYER)
            .ok_or_else(|| PullError::NotWasm {
                reference: reference.to_string(),
                found: manifest
                    .layers
                    .iter()
                    .map(|l| sanitize(&l.media_type, 80))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > self.options.max_bytes as u64 {
            return Err(PullError::TooLarge {
                reference: reference.to_string(),
                size,
                max: self.options.max_bytes,
            });
        }
        Ok(layer.clone())
    }

    async fn pull_layer(
        &self,
        reference: &PolicyReference,
        oci: &Reference,
        layer: &oci_client::manifest::OciDescriptor,
    ) -> Result<Vec<u8>, PullError> {
        let mut out = CappedBuffer {
            bytes: Vec::with_capacity(
                usize::try_from(layer.size)
                    .unwrap_or(0)
                    .min(self.options.max_bytes),
            ),
            max: self.options.max_bytes,
            exceeded: false,
        };
        let pulled = self
            .client(reference)?
            .pull_blob(oci, layer, &mut out)
            .await;
        // The manifest's size is the registry's word; the bytes are counted.
        if out.exceeded {
            return Err(PullError::TooLarge {
                reference: reference.to_string(),
                size: out.bytes.len() as u64 + 1,
                max: self.options.max_bytes,
            });
        }
        match pulled {
            Ok(()) => {}
            Err(OciDistributionError::DigestError(_)) => {
                return Err(PullError::DigestMismatch {
                    reference: reference.to_string(),
                    what: "Wasm layer",
                    expected: layer.digest.clone(),
                    actual: sha256_digest(&out.bytes),
                });
            }
            // The connection broke mid-download: worth another try.
            Err(OciDistributionError::IoError(e)) => {
                return Err(PullError::Unreachable {
                    registry: reference.registry.clone(),
                    source: OciDistributionError::IoError(e),
                });
            }
            Err(e) => return Err(self.classify(reference, e)),
        }
        let actual = sha256_digest(&out.bytes);
        if actual != layer.digest {
            return Err(PullError::DigestMismatch {
                reference: reference.to_string(),
                what: "Wasm layer",
                expected: layer.digest.clone(),
                actual,
            });
        }
        Ok(out.bytes)
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
        let oci = Self::oci_reference(reference)?;
        let auth = self.auth(&reference.registry);
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
        });
        let config = Config::new(
            config.to_string().into_bytes(),
            WASM_CONFIG.to_string(),
            None,
        );
        let annotations = std::collections::BTreeMap::from([(
            "org.opencontainers.image.title".to_string(),
            title.to_string(),
        )]);
        let layer = ImageLayer::new(
            component.to_vec(),
            WASM_LAYER.to_string(),
            Some(annotations),
        );
        let client = self.client(reference)?;
        client
            .push(&oci, &[layer], config, &auth, None)
            .await
            .map_err(|e| self.classify(reference, e))?;
        // The digest as the registry computed it over the manifest it stored.
        client
            .fetch_manifest_digest(&oci, &auth)
            .await
            .map_err(|e| self.classify(reference, e))
    }
}
