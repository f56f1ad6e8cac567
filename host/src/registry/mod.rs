//! Policies from OCI registries: references ([`reference`]), credentials in Docker
//! config JSON ([`auth`]), and the client that pulls a policy — digest checked, size
//! bounded, kept in the compile cache directory — and pushes one in the CNCF Wasm OCI
//! artifact format ([`client`]).

pub mod auth;
pub mod client;
pub mod precompiled;
pub mod reference;
pub mod transport;

pub use auth::{Credentials, CredentialsError};
pub use client::{PullError, Pulled, PulledArtifact, RegistryClient, RegistryOptions};
pub use precompiled::PrecompiledPush;
pub use reference::{PolicyReference, ReferenceError};
