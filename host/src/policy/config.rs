//! How an engine is set up, apart from the engine itself (as wasmtime keeps `Config`
//! apart from `Engine`): the backend, the limits and locations, and the WebAssembly
//! proposals a plugin may use.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::Config;

use super::compile::Compiler;

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

/// The machines a compiled plugin can run on, one per kind of code: what
/// `podlight plugin compile --target` writes and what a precompiled artifact is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompileTarget {
    /// Native x86-64 code (Cranelift).
    X86_64,
    /// Native 64-bit ARM code (Cranelift).
    Aarch64,
    /// Pulley bytecode for 32-bit hosts: what 32-bit ARM (a Raspberry Pi on a 32-bit
    /// OS, `linux/arm/v7`) runs.
    Armv7,
    /// Pulley bytecode for 64-bit hosts (`--pulley` on a 64-bit machine).
    Pulley64,
}

impl CompileTarget {
    pub const ALL: [CompileTarget; 4] = [
        CompileTarget::X86_64,
        CompileTarget::Aarch64,
        CompileTarget::Armv7,
        CompileTarget::Pulley64,
    ];

    /// What code this machine runs with `backend`.
    pub fn native(backend: Backend) -> CompileTarget {
        let pointer_64 = cfg!(target_pointer_width = "64");
        match backend {
            Backend::Pulley if pointer_64 => CompileTarget::Pulley64,
            Backend::Pulley => CompileTarget::Armv7,
            Backend::Cranelift if cfg!(target_arch = "aarch64") => CompileTarget::Aarch64,
            Backend::Cranelift if cfg!(target_arch = "x86_64") => CompileTarget::X86_64,
            // Cranelift hosts without a target of their own here (riscv64, s390x)
            // take no precompiled artifacts; they compile for themselves.
            Backend::Cranelift if pointer_64 => CompileTarget::Pulley64,
            Backend::Cranelift => CompileTarget::Armv7,
        }
    }

    /// The name used on the command line, in artifacts and in registries.
    pub fn name(self) -> &'static str {
        match self {
            CompileTarget::X86_64 => "x86_64",
            CompileTarget::Aarch64 => "aarch64",
            CompileTarget::Armv7 => "armv7",
            CompileTarget::Pulley64 => "pulley64",
        }
    }

    pub fn parse(name: &str) -> Result<CompileTarget, String> {
        CompileTarget::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown target {name:?}: one of {}",
                    CompileTarget::ALL.map(CompileTarget::name).join(", ")
                )
            })
    }

    pub fn backend(self) -> Backend {
        match self {
            CompileTarget::X86_64 | CompileTarget::Aarch64 => Backend::Cranelift,
            CompileTarget::Armv7 | CompileTarget::Pulley64 => Backend::Pulley,
        }
    }

    /// wasmtime's `Config::target` for it. Only the architecture and the OS of a
    /// triple must match when an artifact is loaded, so glibc and musl agree.
    pub(super) fn wasmtime_target(self) -> &'static str {
        match self {
            CompileTarget::X86_64 => "x86_64-unknown-linux-gnu",
            CompileTarget::Aarch64 => "aarch64-unknown-linux-gnu",
            CompileTarget::Armv7 => "pulley32",
            CompileTarget::Pulley64 => "pulley64",
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
    /// Compile for another machine than this one (only compiles: such an engine
    /// cannot run what it compiles). None: this machine, with `backend`.
    pub cross_target: Option<CompileTarget>,
    /// Where plugins are compiled (the built-in one always in this process).
    pub compiler: Compiler,
    /// Compile a plugin's functions on several threads: faster, but with a higher
    /// memory peak. The compiling child turns it off.
    pub parallel_compilation: bool,
}

impl EngineOptions {
    /// What code this engine compiles to.
    pub fn target(&self) -> CompileTarget {
        self.cross_target
            .unwrap_or_else(|| CompileTarget::native(self.backend))
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            deadline: Duration::from_millis(50),
            memory_limit: 32 << 20,
            max_plugin_size: 32 << 20,
            cache_dir: None,
            backend: Backend::native(),
            cross_target: None,
            compiler: Compiler::InProcess,
            parallel_compilation: true,
        }
    }
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
pub(super) fn allow_only_toolchain_features(config: &mut Config) {
    config
        .wasm_memory64(false)
        .wasm_custom_page_sizes(false)
        .wasm_relaxed_simd(false)
        .wasm_wide_arithmetic(false)
        .wasm_stack_switching(false)
        .wasm_shared_everything_threads(false);
}
