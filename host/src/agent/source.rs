//! Where the policy comes from: the policies ConfigMap as the API serves it, else the
//! mounted directory — `NAME.wasm` (or `.wasm.gz`, or `NAME.ref`: an OCI reference to
//! pull), its signature `NAME.sig` and settings `NAME.json` — and a fingerprint of what
//! is there, so the same content is never loaded twice.
//!
//! The API wins whenever it has the ConfigMap: it is the newer of the two (the kubelet
//! copies the same object into the volume up to a minute and a half later), so the
//! volume's later swap to the same content hashes the same and does nothing. The mount
//! is what the agent starts from, and what applies while the API has not answered or
//! has no such ConfigMap. Reading only: no watching, no compiling.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::cluster::PolicyFiles;
use crate::policy::BUILTIN_NAME;
use crate::policy::signature::TrustedKeys;
use crate::registry::RegistryClient;

/// `DIR/NAME.wasm` (or `.wasm.gz`) with settings `DIR/NAME.json`; the built-in policy
/// when the directory has no such plugin. With `api`, the same keys of the policies
/// ConfigMap as the API serves it win over the directory (see the module's doc).
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub dir: Option<PathBuf>,
    pub name: String,
    pub api: Option<ApiPolicies>,
    pub trust: PolicyTrust,
}

/// Where referenced policies are pulled from, and whose signatures a policy needs.
#[derive(Debug, Clone, Default)]
pub struct PolicyTrust {
    /// Pulls `NAME.ref` policies; none: references are refused.
    pub registry: Option<Arc<RegistryClient>>,
    /// When not empty, a plugin runs only with a `NAME.sig` one of these verifies.
    pub keys: Arc<TrustedKeys>,
}

/// The policies ConfigMap as the API serves it.
#[derive(Debug, Clone)]
pub struct ApiPolicies {
    /// `namespace/name`, for messages.
    pub configmap: String,
    pub files: watch::Receiver<PolicyFiles>,
}

/// A plugin: where it came from (for people), its name, its content and signature.
#[derive(Debug, Clone)]
pub(super) struct PluginFile {
    pub(super) origin: String,
    pub(super) name: String,
    pub(super) content: PluginContent,
    /// `NAME.sig`: a cosign signature of the plugin's bytes (base64).
    pub(super) signature: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub(super) enum PluginContent {
    /// `NAME.wasm` or `NAME.wasm.gz`.
    Bytes(Vec<u8>),
    /// `NAME.ref`: an OCI reference, as written.
    Reference(String),
}

/// The keys a plugin may be given by, in the order they are looked for.
const PLUGIN_KEYS: [&str; 3] = ["wasm", "wasm.gz", "ref"];

/// What the source holds now.
pub(super) struct Found {
    pub(super) plugin: Option<PluginFile>,
    pub(super) settings: Option<String>,
}

/// Identifies what is loaded: the plugin's hash (or "builtin") and the settings text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    plugin: String,
    settings: Option<String>,
}

impl PolicySource {
    pub(super) fn read(&self) -> std::io::Result<Found> {
        if let Some(api) = &self.api
            && let PolicyFiles::Present(files) = &*api.files.borrow()
        {
            return Ok(self.read_files(&api.configmap, files));
        }
        self.read_dir()
    }

    /// The plugin and settings among a ConfigMap's keys.
    fn read_files(&self, configmap: &str, files: &BTreeMap<String, Vec<u8>>) -> Found {
        let signature = files.get(&format!("{}.sig", self.name)).cloned();
        let plugin = PLUGIN_KEYS.iter().find_map(|ext| {
            let key = format!("{}.{ext}", self.name);
            files.get(&key).map(|bytes| PluginFile {
                origin: format!("configmap {configmap}, key {key}"),
                name: self.name.clone(),
                content: content(ext, bytes.clone()),
                signature: signature.clone(),
            })
        });
        let settings = files
            .get(&format!("{}.json", self.name))
            .map(|b| String::from_utf8_lossy(b).into_owned());
        Found { plugin, settings }
    }

    fn read_dir(&self) -> std::io::Result<Found> {
        let Some(dir) = &self.dir else {
            return Ok(Found {
                plugin: None,
                settings: None,
            });
        };
        let read_if_there = |path: &Path| match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        let mut plugin = None;
        let signature = read_if_there(&dir.join(format!("{}.sig", self.name)))?;
        for ext in PLUGIN_KEYS {
            let path = dir.join(format!("{}.{ext}", self.name));
            if let Some(bytes) = read_if_there(&path)? {
                plugin = Some(PluginFile {
                    origin: path.display().to_string(),
                    name: self.name.clone(),
                    content: content(ext, bytes),
                    signature,
                });
                break;
            }
        }
        let settings = read_if_there(&dir.join(format!("{}.json", self.name)))?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(Found { plugin, settings })
    }
}

fn content(ext: &str, bytes: Vec<u8>) -> PluginContent {
    if ext == "ref" {
        PluginContent::Reference(String::from_utf8_lossy(&bytes).trim().to_string())
    } else {
        PluginContent::Bytes(bytes)
    }
}

impl Fingerprint {
    /// The same plugin (the settings may differ).
    pub(super) fn same_plugin(&self, other: &Fingerprint) -> bool {
        self.plugin == other.plugin
    }

    /// The plugin file's sha256; none for the built-in policy and for a reference
    /// (whose pulled layer's digest is reported instead).
    pub(super) fn file_sha256(&self) -> Option<String> {
        let content = self
            .plugin
            .split(SIGNATURE_SEPARATOR)
            .next()
            .unwrap_or_default();
        (content != BUILTIN_NAME && !content.starts_with(REFERENCE_PREFIX))
            .then(|| content.to_string())
    }
}

/// Marks a fingerprint of a reference rather than of bytes.
const REFERENCE_PREFIX: &str = "ref:";
/// Joins a signature's hash to the content's in a fingerprint.
const SIGNATURE_SEPARATOR: &str = "+sig:";

impl Found {
    pub(super) fn fingerprint(&self) -> Fingerprint {
        let plugin = match &self.plugin {
            Some(file) => {
                let mut hash = Sha256::new();
                let prefix = match &file.content {
                    PluginContent::Bytes(bytes) => {
                        hash.update(bytes);
                        ""
                    }
                    PluginContent::Reference(text) => {
                        hash.update(text.as_bytes());
                        REFERENCE_PREFIX
                    }
                };
                let content = hex::encode(hash.finalize());
                // A new signature for the same bytes is checked again.
                match &file.signature {
                    Some(signature) => format!(
                        "{prefix}{content}{SIGNATURE_SEPARATOR}{}",
                        hex::encode(Sha256::digest(signature))
                    ),
                    None => format!("{prefix}{content}"),
                }
            }
            None => BUILTIN_NAME.to_string(),
        };
        Fingerprint {
            plugin,
            settings: self.settings.clone(),
        }
    }
}
