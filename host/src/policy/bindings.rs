//! Host bindings generated from the contract, and the host side of the `snapshot`
//! interface: each function converts only what the policy asks for, from the snapshot
//! the store holds while `evaluate` runs.
//!
//! Two contract versions are linked side by side: the current one (`wit/`, 0.3) and
//! 0.2 (`host/compat/wit-0.2`, frozen), so that a plugin built for 0.2 keeps loading
//! unchanged. Their generated types are distinct but alike; one macro writes the
//! conversions for both, so there is one text of them.

use super::sandbox::PluginState;
use crate::state::{self, PodState, Scope};

/// Contract 0.3: the current `wit/`.
pub mod current {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy",
        imports: { default: trappable },
    });
}

/// Contract 0.2, as plugins built before `scope` and `nodes` import it.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "compat/wit-0.2",
        world: "policy",
        imports: { default: trappable },
    });
}

/// The 0.2 and 0.3 `snapshot` functions and the conversions they share.
macro_rules! snapshot_host {
    ($contract:ident) => {
        mod $contract {
            use super::super::$contract::podlight::policy::{snapshot, types};
            use super::*;

            impl types::Host for PluginState {}

            impl snapshot::Host for PluginState {
                fn led_count(&mut self) -> wasmtime::Result<u32> {
                    Ok(self.current.led_count)
                }

                fn now_ms(&mut self) -> wasmtime::Result<u64> {
                    Ok(self.current.now_ms)
                }

                fn node(&mut self) -> wasmtime::Result<types::NodeInfo> {
                    Ok(node_record(&self.current.snapshot.node))
                }

                fn counts(&mut self) -> wasmtime::Result<types::StateCounts> {
                    Ok(counts_record(&self.current.snapshot.counts))
                }

                fn pod_count(&mut self) -> wasmtime::Result<u32> {
                    Ok(u32::try_from(self.current.snapshot.pods.len()).unwrap_or(u32::MAX))
                }

                fn pod_at(&mut self, index: u32) -> wasmtime::Result<Option<types::Pod>> {
                    Ok(self
                        .current
                        .snapshot
                        .pods
                        .get(index as usize)
                        .map(pod_record))
                }

                fn pods(&mut self) -> wasmtime::Result<Vec<types::Pod>> {
                    Ok(self.current.snapshot.pods.iter().map(pod_record).collect())
                }

                snapshot_host!(@since_0_3 $contract);
            }

            fn node_record(node: &state::NodeInfo) -> types::NodeInfo {
                types::NodeInfo {
                    name: node.name.clone(),
                    ready: node.ready,
                    memory_pressure: node.memory_pressure,
                    disk_pressure: node.disk_pressure,
                    pid_pressure: node.pid_pressure,
                    unschedulable: node.unschedulable,
                }
            }

            fn counts_record(c: &state::StateCounts) -> types::StateCounts {
                types::StateCounts {
                    deleting: c.deleting,
                    failed: c.failed,
                    succeeded: c.succeeded,
                    pending: c.pending,
                    unready: c.unready,
                    running: c.running,
                    unknown: c.unknown,
                    total: c.total,
                }
            }

            fn pod_state(state: PodState) -> types::PodState {
                match state {
                    PodState::Deleting => types::PodState::Deleting,
                    PodState::Failed => types::PodState::Failed,
                    PodState::Succeeded => types::PodState::Succeeded,
                    PodState::Pending => types::PodState::Pending,
                    PodState::Unready => types::PodState::Unready,
                    PodState::Running => types::PodState::Running,
                    PodState::Unknown => types::PodState::Unknown,
                }
            }

            fn container_record(c: &state::ContainerInfo) -> types::Container {
                types::Container {
                    name: c.name.clone(),
                    init: c.init,
                    ready: c.ready,
                    restart_count: c.restart_count,
                    state: match &c.state {
                        state::ContainerState::Waiting { reason } => {
                            types::ContainerState::Waiting(reason.clone())
                        }
                        state::ContainerState::Running { .. } => types::ContainerState::Running,
                        state::ContainerState::Terminated { reason, exit_code } => {
                            types::ContainerState::Terminated(types::TerminatedState {
                                reason: reason.clone(),
                                exit_code: *exit_code,
                            })
                        }
                    },
                    last_termination_reason: c.last_termination_reason.clone(),
                }
            }

            fn pod_record(p: &state::PodInfo) -> types::Pod {
                types::Pod {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    uid: p.uid.clone(),
                    phase: p.phase.clone(),
                    state: pod_state(p.state),
                    reason: p.reason.clone(),
                    deleting: p.deleting,
                    ready: p.ready,
                    restarts: p.restarts(),
                    status_reason: p.status_reason.clone(),
                    labels: p
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    owner_kind: p.owner_kind.clone(),
                    start_time_ms: p.start_time_ms,
                    created_ms: p.created_ms,
                    containers: p.containers.iter().map(container_record).collect(),
                }
            }
        }
    };
    // The functions 0.3 added; 0.2 has none.
    (@since_0_3 v0_2) => {};
    (@since_0_3 current) => {
        fn scope(&mut self) -> wasmtime::Result<types::ScopeKind> {
            Ok(match self.current.snapshot.scope {
                Scope::Node => types::ScopeKind::Node,
                Scope::Cluster => types::ScopeKind::Cluster,
            })
        }

        fn nodes(&mut self) -> wasmtime::Result<Vec<types::NodeSummary>> {
            Ok(self
                .current
                .snapshot
                .node_summaries()
                .iter()
                .map(|n| types::NodeSummary {
                    node: node_record(&n.node),
                    counts: counts_record(&n.counts),
                })
                .collect())
        }
    };
}

mod host {
    use super::*;
    snapshot_host!(current);
    snapshot_host!(v0_2);
}
