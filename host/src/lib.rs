//! podlight: a node-status light for Kubernetes.
//!
//! The data path runs one way: cluster watch → node [`state`] → snapshot →
//! [`policy`] (a sandboxed Wasm component) → [`frame`] (RGB per LED) → device.

pub mod agent;
pub mod cluster;
pub mod device;
pub mod frame;
pub mod http;
mod lock;
pub mod policy;
pub mod rollout;
pub mod state;
