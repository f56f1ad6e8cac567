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
