//! The per-instance sandbox: what a plugin's store holds.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::output::PluginOutput;
use crate::state::Snapshot;

/// What the `snapshot` functions describe: the snapshot being evaluated, the
/// device's LED count and the time of the evaluation.
pub struct SnapshotView {
    pub snapshot: Arc<Snapshot>,
    pub led_count: u32,
    pub now_ms: u64,
}

impl SnapshotView {
    /// What a policy sees outside `evaluate`: an empty node, no LEDs.
    pub fn empty() -> SnapshotView {
        SnapshotView {
            snapshot: Arc::new(Snapshot::new(Default::default(), Vec::new(), 0)),
            led_count: 0,
            now_ms: 0,
        }
    }
}

/// Store data: a WASI context that grants nothing, WASI's resource table, the
/// limits, and the snapshot being evaluated.
pub struct PluginState {
    wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    pub current: SnapshotView,
}

impl PluginState {
    /// No preopened directories, no environment, no arguments, no network, no stdin;
    /// stdout and stderr go to the log.
    pub fn new(output: &(PluginOutput, PluginOutput), memory_limit: usize) -> Self {
        let wasi = WasiCtxBuilder::new()
            .stdout(output.0.clone())
            .stderr(output.1.clone())
            .allow_blocking_current_thread(true)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_limit)
            .table_elements(100_000)
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        PluginState {
            wasi,
            table: ResourceTable::new(),
            limits,
            current: SnapshotView::empty(),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
