//! The engine: one per process. Compiles (or takes from the cache) and links
//! plugins into [`Policy`] values.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::PolicyError;
use super::bindings::{current, v0_2, v0_3};
use super::cache::CompileCache;
use super::compile::Compiler;
use super::component::{LinkedPolicy, Policy};
use super::config::{Backend, CompileTarget, EngineOptions, allow_only_toolchain_features};
use super::epoch::{EpochTicker, deadline_ticks, spawn_epoch_ticker};
use super::inspect::{self, PluginInfo, PrecompiledUse, WasmKind};
use super::output::PluginOutput;
use super::precompiled;
use super::sandbox::PluginState;
use super::untrusted::{MAX_PLUGIN_TEXT, sanitize};

/// One per process: the compiler and its settings, the linker with everything a plugin
/// may import, the epoch ticker that enforces deadlines, and the compile cache.
pub struct PolicyEngine {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    options: EngineOptions,
    cache: Option<CompileCache>,
    ticker: Arc<EpochTicker>,
}

impl PolicyEngine {
    pub fn new(options: EngineOptions) -> Result<Self, PolicyError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        allow_only_toolchain_features(&mut config);
        config.parallel_compilation(options.parallel_compilation);
        // Native Cranelift code is left to wasmtime's own detection of this CPU;
        // Pulley and other machines' code are named.
        if options.cross_target.is_some() || options.backend == Backend::Pulley {
            config
                .target(options.target().wasmtime_target())
                .map_err(|e| PolicyError::Engine(format!("{e:#}")))?;
        }
        let engine = Engine::new(&config).map_err(|e| PolicyError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| current::Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))
            .and_then(|()| v0_3::Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))
            .and_then(|()| v0_2::Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))
            .map_err(|e| PolicyError::Engine(format!("{e:#}")))?;
        let ticker = spawn_epoch_ticker(&engine);
        let cache = options.cache_dir.as_ref().map(CompileCache::new);
        Ok(PolicyEngine {
            engine,
            linker: Arc::new(linker),
            options,
            cache,
            ticker,
        })
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The default policy compiled into the binary (in this process: it ships with
    /// it and is tested).
    pub fn builtin(&self) -> Result<Policy, PolicyError> {
        self.load(
            super::BUILTIN_NAME,
            super::BUILTIN_PRIORITY,
            &Compiler::InProcess,
            None,
        )
    }

    /// What code this engine compiles to and runs.
    pub fn target(&self) -> CompileTarget {
        self.options.target()
    }

    /// Compiles a component into a precompiled artifact for this engine's target, in
    /// this process: what `podlight plugin compile` (the compiling child, or a
    /// cross-compile) runs.
    pub fn precompile(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, PolicyError> {
        let code = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| PolicyError::Invalid {
                name: name.to_string(),
                reason: sanitize(&format!("{e:#}"), MAX_PLUGIN_TEXT),
            })?;
        Ok(precompiled::write(bytes, self.target(), &code))
    }

    /// Loads a `.wasm` or `.wasm.gz` file; the plugin is named after the file.
    pub fn load_file(&self, path: &Path) -> Result<Policy, PolicyError> {
        let name = plugin_name(path);
        let size = std::fs::metadata(path)
            .map_err(|source| PolicyError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if size > self.options.max_plugin_size as u64 {
            return Err(PolicyError::TooLarge {
                name,
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit: self.options.max_plugin_size,
            });
        }
        let bytes = std::fs::read(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(&name, &bytes)
    }

    /// Checks, compiles (or fetches from the cache) and links a plugin.
    pub fn load_bytes(&self, name: &str, file: &[u8]) -> Result<Policy, PolicyError> {
        self.load(name, file, &self.options.compiler, None)
    }

    /// [`load_bytes`](Self::load_bytes) with a precompiled artifact on offer: its
    /// compiled form is taken when the artifact was verified (see
    /// [`precompiled::verified`]) and stands for this plugin on this engine; otherwise
    /// the plugin is compiled, and [`PluginInfo::precompiled`] says why (unless the
    /// compile cache had it, when no artifact was needed).
    pub fn load_bytes_offered(
        &self,
        name: &str,
        file: &[u8],
        offered: Result<&[u8], String>,
    ) -> Result<Policy, PolicyError> {
        self.load(name, file, &self.options.compiler, Some(offered))
    }

    fn load(
        &self,
        name: &str,
        file: &[u8],
        compiler: &Compiler,
        offered: Option<Result<&[u8], String>>,
    ) -> Result<Policy, PolicyError> {
        let gzip = inspect::is_gzip(file);
        let unpacked = inspect::unpacked(name, file, self.options.max_plugin_size)?;
        let bytes = &unpacked[..];
        match inspect::sniff(bytes) {
            WasmKind::Component => {}
            WasmKind::CoreModule => {
                return Err(PolicyError::CoreModule {
                    name: name.to_string(),
                });
            }
            WasmKind::NotWasm => {
                return Err(PolicyError::NotWasm {
                    name: name.to_string(),
                });
            }
        }
        let sha256 = hex::encode(Sha256::digest(bytes));
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &sha256));
        let cache_hit = cached.is_some();
        let mut precompiled = None;
        let mut cache_problem = None;
        let component = match cached {
            Some(component) => component,
            None => {
                let from_artifact =
                    offered.map(|o| o.and_then(|a| self.deserialize_artifact(bytes, a)));
                let component = match from_artifact {
                    Some(Ok(component)) => {
                        precompiled = Some(PrecompiledUse::Loaded);
                        component
                    }
                    Some(Err(reason)) => {
                        tracing::warn!(plugin = %name, %reason, "the precompiled artifact cannot be used; compiling the component");
                        precompiled = Some(PrecompiledUse::Refused { reason });
                        self.compile(name, bytes, compiler)?
                    }
                    None => self.compile(name, bytes, compiler)?,
                };
                if let Some(cache) = &self.cache {
                    cache_problem = cache.store(&self.engine, &sha256, &component).err();
                }
                component
            }
        };
        let ty = component.component_type();
        let contract_version =
            inspect::check_exports(name, ty.exports(&self.engine).map(|(n, _)| n))?;
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        inspect::check_imports(name, imports.iter().map(String::as_str))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(|pre| LinkedPolicy::new(pre, &contract_version))
            .map_err(|e| PolicyError::Invalid {
                name: name.to_string(),
                reason: format!("{e:#}"),
            })?;
        let info = PluginInfo {
            name: name.to_string(),
            contract_version,
            file_bytes: file.len(),
            component_bytes: bytes.len(),
            gzip,
            sha256,
            imports,
            cache_hit,
            cache_problem,
            precompiled,
        };
        Ok(Policy {
            engine: self.engine.clone(),
            pre,
            info,
            output: Arc::new(PluginOutput::pair(name)),
            deadline_ticks: deadline_ticks(self.options.deadline),
            deadline_ms: u64::try_from(self.options.deadline.as_millis()).unwrap_or(u64::MAX),
            memory_limit: self.options.memory_limit,
            ticker: Arc::clone(&self.ticker),
        })
    }
}

impl PolicyEngine {
    /// The component in a verified precompiled artifact, or why it cannot stand for
    /// `component` on this engine.
    fn deserialize_artifact(&self, component: &[u8], artifact: &[u8]) -> Result<Component, String> {
        let artifact = precompiled::parse(artifact)?;
        if let Some(mismatch) = artifact.header.mismatch(component, self.target()) {
            return Err(mismatch);
        }
        // SAFETY: the caller verified the artifact's signature with a key the agent
        // trusts (see `precompiled`'s trust model); the header binds it to this
        // component, target and wasmtime version, and wasmtime checks its own
        // version, settings and this CPU's features before using the code.
        unsafe { Component::deserialize(&self.engine, artifact.code) }.map_err(|e| {
            format!(
                "wasmtime refuses it: {}",
                sanitize(&format!("{e:#}"), MAX_PLUGIN_TEXT)
            )
        })
    }

    fn compile(
        &self,
        name: &str,
        bytes: &[u8],
        compiler: &Compiler,
    ) -> Result<Component, PolicyError> {
        let child = match compiler {
            Compiler::InProcess => {
                return Component::new(&self.engine, bytes).map_err(|e| PolicyError::Invalid {
                    name: name.to_string(),
                    reason: sanitize(&format!("{e:#}"), MAX_PLUGIN_TEXT),
                });
            }
            Compiler::Child(child) => child,
        };
        let work = self
            .options
            .cache_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let artifact = child.compile(self.options.backend, name, bytes, &work)?;
        let unusable = |reason: String| PolicyError::Compiler {
            name: name.to_string(),
            reason: format!("the compiled artifact does not load: {reason}"),
        };
        let artifact = precompiled::parse(&artifact).map_err(unusable)?;
        if let Some(mismatch) = artifact.header.mismatch(bytes, self.target()) {
            return Err(unusable(mismatch));
        }
        // SAFETY: the artifact was just written by this same binary's
        // `plugin compile` (Engine::precompile_component) for this engine's
        // configuration, into a file only this process and its child use; wasmtime
        // checks its header and compatibility before using it.
        unsafe { Component::deserialize(&self.engine, artifact.code) }
            .map_err(|e| unusable(format!("{e:#}")))
    }
}

fn plugin_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.trim_end_matches(".gz")
        .trim_end_matches(".wasm")
        .to_string()
}
