//! The policy engine: loads a colour policy (a WebAssembly component built against
//! `wit/`), sandboxes it and evaluates snapshots into frames.
//!
//! Long-lived and per-evaluation state are kept apart, one file per layer as in
//! wasmtime itself: [`EngineOptions`] (`config.rs`: how an engine is set up) →
//! [`PolicyEngine`] (`engine.rs`, one per process: compiler, linker, compile cache) →
//! [`Policy`] (`component.rs`, one per plugin file: the compiled, linked component) →
//! [`PolicyInstance`] (`instance.rs`: a running sandbox — store, memory, settings —
//! which evaluates); deadlines in `epoch.rs`.

mod bindings;
mod cache;
pub mod compile;
mod component;
mod config;
mod engine;
mod epoch;
mod error;
pub mod inspect;
mod instance;
#[cfg(feature = "fuzzing")]
pub(crate) use instance::{Counted, MAX_RULE_TEXT, fit_frame};
#[cfg(feature = "test-support")]
pub mod native;
mod output;
pub mod precompiled;
mod sandbox;
pub mod signature;
pub mod untrusted;

pub use compile::{ChildCompiler, CompileBudget, Compiler};
pub use component::Policy;
pub use config::{Backend, CompileTarget, EngineOptions};
pub use engine::PolicyEngine;
pub use error::PolicyError;
pub use inspect::{CONTRACT_VERSION, PluginInfo, PrecompiledUse, supported_versions};
pub use instance::PolicyInstance;

/// The default policy ("priority"), built from `plugins/priority` by the build script.
pub const BUILTIN_PRIORITY: &[u8] = include_bytes!(env!("PODLIGHT_PRIORITY_WASM"));

/// The name `podlight eval builtin` and the agent use for [`BUILTIN_PRIORITY`].
pub const BUILTIN_NAME: &str = "builtin";

/// Frames longer than this are refused outright; the largest BlinkStick setup
/// (a Pro with three 64-LED channels) has 192.
pub const MAX_FRAME_LEDS: usize = 4096;
