//! Host bindings generated from the contract, and the host side of the `snapshot`
//! interface: each function converts only what the policy asks for, from the snapshot
//! the store holds while `evaluate` runs.
//!
//! Three contract versions are linked side by side: the current one (`wit/`, 0.4),
//! 0.3 (`host/compat/wit-0.3`) and 0.2 (`host/compat/wit-0.2`), both frozen, so that a
//! plugin built for an earlier one keeps loading unchanged. Their generated types are
//! distinct but alike; one macro writes the conversions for all, so there is one text
//! of them, with what each version added spliced in.

use super::sandbox::PluginState;
use crate::state::{self, PodState, Scope};

/// Contract 0.4: the current `wit/`.
pub mod current {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy",
        imports: { default: trappable },
    });
}

/// Contract 0.3, as plugins built before reasons, silences and alerts import it.
pub mod v0_3 {
    wasmtime::component::bindgen!({
        path: "compat/wit-0.3",
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

/// The `snapshot` functions of every version and the conversions they share. The
/// fields a version added to a record come in as tokens: `node: |n| {fields}`,
/// `summary: |s| {fields}`, `pod: |p| {fields}`.
macro_rules! snapshot_host {
    ($contract:ident,
     node: |$n:ident| { $($node_extra:tt)* },
     pod: |$p:ident| { $($pod_extra:tt)* }
     $(, summary: |$s:ident| { $($summary_extra:tt)* })?) => {
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

            fn node_record($n: &state::NodeInfo) -> types::NodeInfo {
                types::NodeInfo {
                    name: $n.name.clone(),
                    ready: $n.ready,
                    memory_pressure: $n.memory_pressure,
                    disk_pressure: $n.disk_pressure,
                    pid_pressure: $n.pid_pressure,
                    unschedulable: $n.unschedulable,
                    $($node_extra)*
                }
            }

            $(
            fn summary_record($s: &state::NodeSummary) -> types::NodeSummary {
                types::NodeSummary {
                    node: node_record(&$s.node),
                    counts: counts_record(&$s.counts),
                    $($summary_extra)*
                }
            }
            )?

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

            fn pod_record($p: &state::PodInfo) -> types::Pod {
                let p = $p;
                types::Pod {
                    $($pod_extra)*
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
    (@since_0_3 v0_3) => {
        snapshot_host!(@scope_and_nodes);
    };
    (@since_0_3 current) => {
        snapshot_host!(@scope_and_nodes);

        fn silenced_counts(&mut self) -> wasmtime::Result<types::StateCounts> {
            Ok(counts_record(&self.current.snapshot.silenced))
        }

        fn pods_in(&mut self, state: types::PodState, silenced: bool) -> wasmtime::Result<Vec<u32>> {
            Ok(self.current.snapshot.pods_in(pod_state_of(state), silenced))
        }

        fn alerts(&mut self) -> wasmtime::Result<Vec<types::Alert>> {
            Ok(self.current.snapshot.alerts.iter().map(alert_record).collect())
        }
    };
    (@scope_and_nodes) => {
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
                .map(summary_record)
                .collect())
        }
    };
}

mod host {
    use super::*;
    snapshot_host!(current,
        node: |n| { silence: n.silence.as_ref().map(silence_record), },
        pod: |p| {
            node: p.node.clone(),
            silence: p.silence.as_ref().map(silence_record),
        },
        summary: |s| { silenced: counts_record(&s.silenced), });
    snapshot_host!(v0_3, node: |n| {}, pod: |p| {}, summary: |s| {});
    snapshot_host!(v0_2, node: |n| {}, pod: |p| {});

    /// What 0.4 added to the records: silences, alerts, and the reverse of the
    /// pod-state conversion.
    mod since_0_4 {
        use super::super::current::podlight::policy::types;
        use crate::state::{self, AlertState, PodState};

        pub(in super::super) fn silence_record(s: &state::Silence) -> types::Silence {
            types::Silence {
                until_ms: s.until_ms,
                reason: s.reason.clone(),
                by: s.by.clone(),
            }
        }

        pub(in super::super) fn alert_record(a: &state::Alert) -> types::Alert {
            types::Alert {
                name: a.name.clone(),
                severity: a.severity.clone(),
                state: match a.state {
                    AlertState::Firing => types::AlertState::Firing,
                    AlertState::Silenced => types::AlertState::Silenced,
                    AlertState::Inhibited => types::AlertState::Inhibited,
                },
                starts_at_ms: a.starts_at_ms,
                node: a.node.clone(),
                labels: a
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                summary: a.summary.clone(),
            }
        }

        pub(in super::super) fn pod_state_of(state: types::PodState) -> PodState {
            match state {
                types::PodState::Deleting => PodState::Deleting,
                types::PodState::Failed => PodState::Failed,
                types::PodState::Succeeded => PodState::Succeeded,
                types::PodState::Pending => PodState::Pending,
                types::PodState::Unready => PodState::Unready,
                types::PodState::Running => PodState::Running,
                types::PodState::Unknown => PodState::Unknown,
            }
        }
    }
    #[allow(
        unused_imports,
        reason = "only the current contract's conversions use them"
    )]
    use since_0_4::{alert_record, pod_state_of, silence_record};
}
