//! Host bindings generated from `wit/`, and the host side of the `snapshot`
//! interface: each function converts only what the policy asks for, from the snapshot
//! the store holds while `evaluate` runs.

use super::sandbox::PluginState;
use crate::state::{self, PodState};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    imports: { default: trappable },
});

use self::podlight::policy::{snapshot, types};

impl types::Host for PluginState {}

impl snapshot::Host for PluginState {
    fn led_count(&mut self) -> wasmtime::Result<u32> {
        Ok(self.current.led_count)
    }

    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.current.now_ms)
    }

    fn node(&mut self) -> wasmtime::Result<types::NodeInfo> {
        let node = &self.current.snapshot.node;
        Ok(types::NodeInfo {
            name: node.name.clone(),
            ready: node.ready,
            memory_pressure: node.memory_pressure,
            disk_pressure: node.disk_pressure,
            pid_pressure: node.pid_pressure,
            unschedulable: node.unschedulable,
        })
    }

    fn counts(&mut self) -> wasmtime::Result<types::StateCounts> {
        let c = &self.current.snapshot.counts;
        Ok(types::StateCounts {
            deleting: c.deleting,
            failed: c.failed,
            succeeded: c.succeeded,
            pending: c.pending,
            unready: c.unready,
            running: c.running,
            unknown: c.unknown,
            total: c.total,
        })
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
