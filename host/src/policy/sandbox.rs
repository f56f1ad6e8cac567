//! The per-instance sandbox: what a plugin's store holds.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::output::PluginOutput;
use crate::state::Snapshot;

/// The `snapshot` resource handed to `evaluate`.
pub struct SnapshotView {
    pub snapshot: Arc<Snapshot>,
    pub led_count: u32,
}

/// Store data: a WASI context that grants nothing, the resource table, the limits.
pub struct PluginState {
    wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
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
