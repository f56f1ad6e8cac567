//! The compile cache: compiled components on disk, keyed by the component's content
//! hash and the engine's compatibility fingerprint, so a restart with an unchanged
//! plugin skips compilation.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CompileCache { dir: dir.into() }
    }

    /// `<sha256 of the component>-<engine fingerprint>.cwasm`
    fn path(&self, engine: &Engine, sha256: &str) -> PathBuf {
        // DefaultHasher::new() has fixed keys: stable across runs of one build.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{sha256}-{:016x}.cwasm", hasher.finish()))
    }

    /// A cached compiled component, if one is there and loads.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(engine, sha256);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was written by `store` below from `Component::serialize`
        // of this engine configuration (the fingerprint is in its name); wasmtime
        // still checks its header and version. The cache directory is the agent's own.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable compile cache entry");
                None
            }
        }
    }

    /// Writes a compiled component whole or not at all. A failure (a full disk, a
    /// read-only directory) is logged and said, never fatal: the cache only saves
    /// time.
    pub fn store(
        &self,
        engine: &Engine,
        sha256: &str,
        component: &Component,
    ) -> Result<(), String> {
        let path = self.path(engine, sha256);
        let written = component
            .serialize()
            .map_err(|e| format!("{e:#}"))
            .and_then(|bytes| crate::atomic_file::write(&path, &bytes).map_err(|e| e.to_string()));
        written.map_err(|error| {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write the compile cache; plugins will be recompiled on restart");
            format!(
                "cannot write the compile cache in {}: {error}; the policy runs, but a restart compiles it again",
                self.dir.display()
            )
        })
    }
}
