//! Compiling, instantiating and evaluating policies.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap};

use super::bindings::{current, v0_2};
use super::cache::CompileCache;
use super::compile::Compiler;
use super::inspect::{self, PluginInfo, WasmKind};
use super::output::PluginOutput;
use super::sandbox::{OverMemoryLimit, PluginState, SnapshotView};
use super::untrusted::{MAX_PLUGIN_TEXT, sanitize};
use super::{MAX_FRAME_LEDS, PolicyError};
use crate::frame::{Frame, Rgb};
use crate::lock::lock;
use crate::state::Snapshot;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Which code generator runs plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Native code from Cranelift (x86_64, aarch64, riscv64, s390x).
    Cranelift,
    /// wasmtime's portable interpreter, for targets Cranelift cannot generate code
    /// for (32-bit ARM) or when forced.
    Pulley,
}

impl Backend {
    /// The backend for the machine podlight was built for.
    pub fn native() -> Backend {
        if cfg!(any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "riscv64",
            target_arch = "s390x"
        )) {
            Backend::Cranelift
        } else {
            Backend::Pulley
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cranelift => "cranelift",
            Backend::Pulley => "pulley",
        }
    }
}

/// Limits and locations, set once per engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Wall-clock budget of one `evaluate` (or `configure`) call.
    pub deadline: Duration,
    /// Linear memory a plugin may use, in bytes.
    pub memory_limit: usize,
    /// Largest plugin accepted, in bytes, before and after decompression.
    pub max_plugin_size: usize,
    /// Where compiled plugins are kept; none disables the cache.
    pub cache_dir: Option<PathBuf>,
    pub backend: Backend,
    /// Where plugins are compiled (the built-in one always in this process).
    pub compiler: Compiler,
    /// Compile a plugin's functions on several threads: faster, but with a higher
    /// memory peak. The compiling child turns it off.
    pub parallel_compilation: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            deadline: Duration::from_millis(50),
            memory_limit: 32 << 20,
            max_plugin_size: 32 << 20,
            cache_dir: None,
            backend: Backend::native(),
            compiler: Compiler::InProcess,
            parallel_compilation: true,
        }
    }
}

/// One per process: the compiler and its settings, the linker with everything a plugin
/// may import, the epoch ticker that enforces deadlines, and the compile cache.
pub struct PolicyEngine {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    options: EngineOptions,
    cache: Option<CompileCache>,
    ticker: Arc<EpochTicker>,
}

/// The WebAssembly proposals a plugin may use: what the four example toolchains emit
/// (Rust; wasi-sdk for Python's interpreter and StarlingMonkey's JavaScript engine;
/// Go) — the MVP with multi-value, bulk memory, reference types (call_indirect
/// tables), sign extension, saturating conversions, SIMD, extended constants
/// (wasi-sdk's position-independent data segments) and tail calls (StarlingMonkey). Everything else wasmtime could run
/// is refused when the plugin is compiled, so a plugin cannot reach code paths no
/// policy needs: 64-bit memories, custom page sizes, relaxed SIMD, wide arithmetic,
/// stack switching. (GC, exceptions, function references, threads and
/// async components are not built into this binary at all.) Several memories stay
/// allowed: wasmtime's own adapters between a component's instances (the JavaScript
/// and Python examples have several) use them; the memory cap holds for all of a
/// plugin's memories together (`sandbox.rs`).
fn allow_only_toolchain_features(config: &mut Config) {
    config
        .wasm_memory64(false)
        .wasm_custom_page_sizes(false)
        .wasm_relaxed_simd(false)
        .wasm_wide_arithmetic(false)
        .wasm_stack_switching(false)
        .wasm_shared_everything_threads(false);
}

impl PolicyEngine {
    pub fn new(options: EngineOptions) -> Result<Self, PolicyError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        allow_only_toolchain_features(&mut config);
        config.parallel_compilation(options.parallel_compilation);
        if options.backend == Backend::Pulley {
            let target = if cfg!(target_pointer_width = "64") {
                "pulley64"
            } else {
                "pulley32"
            };
            config
                .target(target)
                .map_err(|e| PolicyError::Engine(format!("{e:#}")))?;
        }
        let engine = Engine::new(&config).map_err(|e| PolicyError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| current::Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))
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
        )
    }

    /// Compiles a component into an artifact for this engine, in this process: what
    /// `podlight plugin compile` (the compiling child) runs.
    pub fn precompile(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, PolicyError> {
        self.engine
            .precompile_component(bytes)
            .map_err(|e| PolicyError::Invalid {
                name: name.to_string(),
                reason: sanitize(&format!("{e:#}"), MAX_PLUGIN_TEXT),
            })
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
        self.load(name, file, &self.options.compiler)
    }

    fn load(&self, name: &str, file: &[u8], compiler: &Compiler) -> Result<Policy, PolicyError> {
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
        let component = match cached {
            Some(component) => component,
            None => {
                let component = self.compile(name, bytes, compiler)?;
                if let Some(cache) = &self.cache {
                    cache.store(&self.engine, &sha256, &component);
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
        // SAFETY: the artifact was just written by this same binary's
        // `plugin compile` (Engine::precompile_component) for this engine's
        // configuration, into a file only this process and its child use; wasmtime
        // checks its header and compatibility before using it.
        unsafe { Component::deserialize(&self.engine, &artifact) }.map_err(|e| {
            PolicyError::Compiler {
                name: name.to_string(),
                reason: format!("the compiled artifact does not load: {e:#}"),
            }
        })
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

fn deadline_ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_micros().div_ceil(EPOCH_TICK.as_micros());
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

/// Advances the engine's epoch every tick while a plugin call is running, for as long
/// as the engine lives. Between calls it sleeps: an idle agent does not wake 200
/// times a second to count time nobody is measuring.
#[derive(Debug, Default)]
struct EpochTicker {
    /// Plugin calls in progress.
    running: Mutex<usize>,
    wake: Condvar,
}

impl EpochTicker {
    /// Ticks while the returned guard lives. A call's deadline counts from here.
    fn running(self: &Arc<Self>) -> TickingGuard {
        *lock(&self.running) += 1;
        self.wake.notify_one();
        TickingGuard(Arc::clone(self))
    }
}

struct TickingGuard(Arc<EpochTicker>);

impl Drop for TickingGuard {
    fn drop(&mut self) {
        let mut running = lock(&self.0.running);
        *running = running.saturating_sub(1);
    }
}

fn spawn_epoch_ticker(engine: &Engine) -> Arc<EpochTicker> {
    let ticker = Arc::new(EpochTicker::default());
    let weak = engine.weak();
    let shared = Arc::clone(&ticker);
    let spawned = thread::Builder::new()
        .name("policy-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                drop(engine);
                {
                    let running = lock(&shared.running);
                    if *running == 0 {
                        // Until a call starts; now and then, to notice the engine is gone.
                        let _ = shared.wake.wait_timeout(running, Duration::from_secs(10));
                        continue;
                    }
                }
                if let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                }
                thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        // Without the ticker deadlines never fire; say so loudly rather than fail.
        tracing::error!(error = %e, "cannot start the policy deadline thread; plugin deadlines are not enforced");
    }
    ticker
}

/// A compiled, linked plugin. Cheap to instantiate; shareable across threads.
pub struct Policy {
    engine: Engine,
    pre: LinkedPolicy,
    info: PluginInfo,
    output: Arc<(PluginOutput, PluginOutput)>,
    deadline_ticks: u64,
    deadline_ms: u64,
    memory_limit: usize,
    ticker: Arc<EpochTicker>,
}

impl Policy {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Starts a sandbox running this plugin with these settings.
    pub fn instantiate(
        self: &Arc<Self>,
        settings: Option<String>,
    ) -> Result<PolicyInstance, PolicyError> {
        let (instance, settings_problem) = self.instantiate_with_complaint(settings)?;
        if let Some(problem) = settings_problem {
            tracing::warn!(plugin = %self.info.name, "{problem}");
        }
        Ok(instance)
    }

    /// The same, returning the policy's complaint about its settings (it then runs on
    /// its documented defaults) instead of logging it.
    pub fn instantiate_with_complaint(
        self: &Arc<Self>,
        settings: Option<String>,
    ) -> Result<(PolicyInstance, Option<String>), PolicyError> {
        let (store, bindings, settings_problem) = self.start(settings.as_deref())?;
        Ok((
            PolicyInstance {
                policy: Arc::clone(self),
                settings,
                live: Some((store, bindings)),
            },
            settings_problem,
        ))
    }

    fn start(
        &self,
        settings: Option<&str>,
    ) -> Result<(Store<PluginState>, LivePolicy, Option<String>), PolicyError> {
        let mut store = Store::new(
            &self.engine,
            PluginState::new(&self.output, self.memory_limit),
        );
        store.limiter(|state| &mut state.limits);
        let _ticking = self.ticker.running();
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.call_error(e, "instantiate"))?;
        store.set_epoch_deadline(self.deadline_ticks);
        let configured = bindings
            .configure(&mut store, settings)
            .map_err(|e| self.call_error(e, "configure"))?;
        let problem = configured
            .err()
            .map(|text| sanitize(&text, MAX_PLUGIN_TEXT));
        Ok((store, bindings, problem))
    }

    /// Turns a failed call into the error that says what happened.
    fn call_error(&self, error: wasmtime::Error, during: &str) -> PolicyError {
        let name = self.info.name.clone();
        if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
            return PolicyError::Timeout {
                name,
                deadline_ms: self.deadline_ms,
            };
        }
        if error.downcast_ref::<OverMemoryLimit>().is_some() {
            return PolicyError::MemoryLimit {
                name,
                limit_mib: self.memory_limit >> 20,
            };
        }
        let text = format!("{error:#}");
        // Traps carry the plugin's own function names (its name section): untrusted.
        let text = sanitize(&text, MAX_PLUGIN_TEXT);
        if during == "instantiate" {
            return PolicyError::Instantiate { name, reason: text };
        }
        PolicyError::Trap {
            name,
            reason: format!("during {during}: {text}"),
        }
    }
}

/// A running sandbox. Reused across evaluations while they succeed (instantiation
/// costs more than an evaluation); after any failure the next call starts a fresh one.
pub struct PolicyInstance {
    policy: Arc<Policy>,
    settings: Option<String>,
    live: Option<(Store<PluginState>, LivePolicy)>,
}

impl PolicyInstance {
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Applies new settings without recompiling; returns the policy's complaint about
    /// them, if it had one (it then runs on its documented defaults).
    pub fn configure(&mut self, settings: Option<String>) -> Result<Option<String>, PolicyError> {
        self.settings = settings;
        let (store, bindings, problem) = self.policy.start(self.settings.as_deref())?;
        self.live = Some((store, bindings));
        Ok(problem)
    }

    /// Evaluates one snapshot for a device of `led_count` LEDs at the snapshot's own
    /// time (a replay: the same snapshot always gives the same frame). The frame is
    /// padded with off LEDs or truncated to exactly `led_count`.
    pub fn evaluate(
        &mut self,
        snapshot: &Arc<Snapshot>,
        led_count: u32,
    ) -> Result<Frame, PolicyError> {
        self.evaluate_at(snapshot, led_count, snapshot.now_ms)
    }

    /// Evaluates one snapshot with `now-ms` at `now_ms`: a live agent passes the wall
    /// clock, so a policy animating on `again-after-ms` sees time move although the
    /// node's state (and so the snapshot) stays the same.
    pub fn evaluate_at(
        &mut self,
        snapshot: &Arc<Snapshot>,
        led_count: u32,
        now_ms: u64,
    ) -> Result<Frame, PolicyError> {
        let (mut store, bindings) = match self.live.take() {
            Some(live) => live,
            None => {
                let (store, bindings, _) = self.policy.start(self.settings.as_deref())?;
                (store, bindings)
            }
        };
        let view = SnapshotView {
            snapshot: Arc::clone(snapshot),
            led_count,
            now_ms,
        };
        let result = evaluate_in(&self.policy, &mut store, &bindings, view);
        if result.is_ok() {
            self.live = Some((store, bindings));
        }
        result
    }
}

fn evaluate_in(
    policy: &Policy,
    store: &mut Store<PluginState>,
    bindings: &LivePolicy,
    view: SnapshotView,
) -> Result<Frame, PolicyError> {
    let led_count = view.led_count;
    store.data_mut().current = view;
    let ticking = policy.ticker.running();
    store.set_epoch_deadline(policy.deadline_ticks);
    let outcome = bindings.evaluate(&mut *store);
    drop(ticking);
    store.data_mut().current = SnapshotView::empty();
    let frame = outcome
        .map_err(|e| policy.call_error(e, "evaluate"))?
        .map_err(|message| PolicyError::Reported {
            name: policy.info.name.clone(),
            message: sanitize(&message, MAX_PLUGIN_TEXT),
        })?;
    fit_frame(&policy.info.name, frame, led_count)
}

/// Applies the contract's frame rule: over [`MAX_FRAME_LEDS`] is invalid; otherwise
/// pad with off or truncate to the device.
fn fit_frame(name: &str, frame: Frame, led_count: u32) -> Result<Frame, PolicyError> {
    if frame.leds.len() > MAX_FRAME_LEDS {
        return Err(PolicyError::InvalidFrame {
            name: name.to_string(),
            reason: format!(
                "{} LEDs, more than the {MAX_FRAME_LEDS} any device can have",
                frame.leds.len()
            ),
        });
    }
    let mut leds = frame.leds;
    leds.resize(led_count as usize, Rgb::OFF);
    Ok(Frame {
        leds,
        again_after_ms: frame.again_after_ms,
    })
}

/// A compiled plugin linked against the contract version it was built for.
enum LinkedPolicy {
    Current(current::PolicyPre<PluginState>),
    V0_2(v0_2::PolicyPre<PluginState>),
}

impl LinkedPolicy {
    fn new(
        pre: wasmtime::component::InstancePre<PluginState>,
        contract_version: &str,
    ) -> wasmtime::Result<Self> {
        Ok(
            if inspect::compatible(contract_version, inspect::CONTRACT_0_2) {
                LinkedPolicy::V0_2(v0_2::PolicyPre::new(pre)?)
            } else {
                LinkedPolicy::Current(current::PolicyPre::new(pre)?)
            },
        )
    }

    fn instantiate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<LivePolicy> {
        Ok(match self {
            LinkedPolicy::Current(pre) => LivePolicy::Current(pre.instantiate(store)?),
            LinkedPolicy::V0_2(pre) => LivePolicy::V0_2(pre.instantiate(store)?),
        })
    }
}

/// An instance of either contract version; both export the same two functions.
enum LivePolicy {
    Current(current::Policy),
    V0_2(v0_2::Policy),
}

impl LivePolicy {
    fn configure(
        &self,
        store: &mut Store<PluginState>,
        settings: Option<&str>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            LivePolicy::Current(p) => p
                .podlight_policy_evaluator()
                .call_configure(store, settings),
            LivePolicy::V0_2(p) => p
                .podlight_policy_evaluator()
                .call_configure(store, settings),
        }
    }

    fn evaluate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Result<Frame, String>> {
        let rgb = |r, g, b| Rgb::new(r, g, b);
        Ok(match self {
            LivePolicy::Current(p) => {
                p.podlight_policy_evaluator()
                    .call_evaluate(store)?
                    .map(|f| Frame {
                        leds: f.leds.iter().map(|c| rgb(c.r, c.g, c.b)).collect(),
                        again_after_ms: f.again_after_ms,
                    })
            }
            LivePolicy::V0_2(p) => p
                .podlight_policy_evaluator()
                .call_evaluate(store)?
                .map(|f| Frame {
                    leds: f.leds.iter().map(|c| rgb(c.r, c.g, c.b)).collect(),
                    again_after_ms: f.again_after_ms,
                }),
        })
    }
}
