//! Host bindings generated from `wit/`, and the host side of the `snapshot` resource:
//! each accessor converts only what the policy asks for.

use wasmtime::component::Resource;

use super::sandbox::{PluginState, SnapshotView};
use crate::state::{self, PodState};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    imports: { default: trappable },
    with: { "podlight:policy/types.snapshot": crate::policy::sandbox::SnapshotView },
});

use self::podlight::policy::types;

impl types::Host for PluginState {}

impl types::HostSnapshot for PluginState {
    fn led_count(&mut self, this: Resource<SnapshotView>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&this)?.led_count)
    }

    fn now_ms(&mut self, this: Resource<SnapshotView>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.snapshot.now_ms)
    }

    fn node(&mut self, this: Resource<SnapshotView>) -> wasmtime::Result<types::NodeInfo> {
        let node = &self.table.get(&this)?.snapshot.node;
        Ok(types::NodeInfo {
            name: node.name.clone(),
            ready: node.ready,
            memory_pressure: node.memory_pressure,
            disk_pressure: node.disk_pressure,
            pid_pressure: node.pid_pressure,
            unschedulable: node.unschedulable,
        })
    }

    fn counts(&mut self, this: Resource<SnapshotView>) -> wasmtime::Result<types::StateCounts> {
        let c = &self.table.get(&this)?.snapshot.counts;
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

    fn pod_count(&mut self, this: Resource<SnapshotView>) -> wasmtime::Result<u32> {
        Ok(u32::try_from(self.table.get(&this)?.snapshot.pods.len()).unwrap_or(u32::MAX))
    }

    fn pod(
        &mut self,
        this: Resource<SnapshotView>,
        index: u32,
    ) -> wasmtime::Result<Option<types::Pod>> {
        let pods = &self.table.get(&this)?.snapshot.pods;
        Ok(pods.get(index as usize).map(pod_record))
    }

    fn pods(&mut self, this: Resource<SnapshotView>) -> wasmtime::Result<Vec<types::Pod>> {
        Ok(self
            .table
            .get(&this)?
            .snapshot
            .pods
            .iter()
            .map(pod_record)
            .collect())
    }

    fn drop(&mut self, this: Resource<SnapshotView>) -> wasmtime::Result<()> {
        // The host owns every snapshot and removes it after the call; a guest only
        // ever holds a borrow, so there is nothing to do here.
        let _ = this;
        Ok(())
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
            state::ContainerState::Running {} => types::ContainerState::Running,
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
