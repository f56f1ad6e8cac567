//! podlight: a node-status light for Kubernetes.
//!
//! The data path runs one way: cluster watch → node [`state`] → snapshot →
//! [`policy`] (a sandboxed Wasm component) → [`frame`] (RGB per LED) → device.

pub mod agent;
pub mod alerts;
mod atomic_file;
pub mod cluster;
pub mod device;
pub mod error_chain;
pub mod explain;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod layers;
mod lock;
pub mod memory;
pub mod policy;
pub mod policy_test;
pub mod quiet;
pub mod registry;
pub mod report;
pub mod state;
pub mod timing;

/// The plugins only tests and benchmarks load, built by `build.rs` with the
/// `test-support` feature.
#[cfg(feature = "test-support")]
pub mod test_plugins {
    /// The misbehaving test plugin (plugins/testkit).
    pub const TESTKIT_WASM: &str = env!("PODLIGHT_TESTKIT_WASM");
    /// The Rust example policy (examples/policies/rust-breathe).
    pub const BREATHE_WASM: &str = env!("PODLIGHT_BREATHE_WASM");
    /// The default policy built against the frozen 0.2 contract.
    pub const PRIORITY_0_2_WASM: &str = env!("PODLIGHT_PRIORITY_0_2_WASM");
    /// The default policy built against the frozen 0.3 contract.
    pub const PRIORITY_0_3_WASM: &str = env!("PODLIGHT_PRIORITY_0_3_WASM");
}
