//! podlight's integration tests, one binary: each module tests one surface against
//! real parts (see docs/architecture.md, "How a change is tested"). Shared helpers are
//! in the `podlight-testsupport` crate, which the benchmarks use too.

mod agent_cli;
mod agent_e2e;
mod alerts_layers;
mod cli;
mod clock_steps;
mod cluster_scope;
mod cluster_watch;
pub(crate) mod deploy;
mod device_families;
mod docs;
mod example_policies;
mod explain_silences;
mod oci_policies;
mod policy_engine;
mod precompiled;
mod real_node;
mod registry_bounds;
mod snapshot_cli;
mod uhid_vm;
