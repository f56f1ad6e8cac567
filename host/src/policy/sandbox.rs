//! The per-instance sandbox: what a plugin's store holds.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
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
    pub limits: PluginLimits,
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
        let limits = PluginLimits {
            memory_limit,
            memory_used: 0,
            table_elements: 0,
        };
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

/// Everything the plugin's instances may hold, summed over all of them: its linear
/// memories together (a component has several core modules, and a hostile one can
/// declare many memories, each of which would pass a per-memory cap) and its tables'
/// elements together. Growing past either traps at once.
#[derive(Debug)]
pub(crate) struct PluginLimits {
    memory_limit: usize,
    memory_used: usize,
    table_elements: usize,
}

/// Table elements one plugin may hold, over all its tables.
const TABLE_ELEMENTS: usize = 100_000;

/// A growth that would take the plugin past its memory limit. Recognised by type
/// (not by message) when the trap is turned into an error for people.
#[derive(Debug, thiserror::Error)]
#[error("the plugin's memories would total {wanted} bytes, over its {limit}-byte limit")]
pub(crate) struct OverMemoryLimit {
    pub wanted: usize,
    pub limit: usize,
}

/// A growth that would take the plugin past its table elements.
#[derive(Debug, thiserror::Error)]
#[error("the plugin's tables would total {wanted} elements, over the limit of {TABLE_ELEMENTS}")]
pub(crate) struct OverTableLimit {
    pub wanted: usize,
}

/// One of `used`'s parts grows from `current` to `desired`: the new total if it stays
/// within `limit` (then recorded), else the total it would have been.
fn grow(used: &mut usize, current: usize, desired: usize, limit: usize) -> Result<bool, usize> {
    let wanted = used.saturating_sub(current).saturating_add(desired);
    if wanted > limit {
        return Err(wanted);
    }
    *used = wanted;
    Ok(true)
}

impl ResourceLimiter for PluginLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        grow(&mut self.memory_used, current, desired, self.memory_limit).map_err(|wanted| {
            OverMemoryLimit {
                wanted,
                limit: self.memory_limit,
            }
            .into()
        })
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        grow(&mut self.table_elements, current, desired, TABLE_ELEMENTS)
            .map_err(|wanted| OverTableLimit { wanted }.into())
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_holds_for_all_memories_together() {
        let mut limits = PluginLimits {
            memory_limit: 32 << 20,
            memory_used: 0,
            table_elements: 0,
        };
        // Three memories of 12 MiB each: each alone is under the limit.
        assert!(limits.memory_growing(0, 12 << 20, None).is_ok_and(|ok| ok));
        assert!(limits.memory_growing(0, 12 << 20, None).is_ok_and(|ok| ok));
        let third = limits
            .memory_growing(0, 12 << 20, None)
            .expect_err("the third takes the plugin past 32 MiB");
        assert!(third.downcast_ref::<OverMemoryLimit>().is_some(), "{third}");
        // Growing one that exists counts only the difference.
        assert!(
            limits
                .memory_growing(12 << 20, 16 << 20, None)
                .is_ok_and(|ok| ok)
        );
        assert!(limits.memory_growing(16 << 20, 21 << 20, None).is_err());
    }

    #[test]
    fn table_elements_are_summed_too() {
        let mut limits = PluginLimits {
            memory_limit: 32 << 20,
            memory_used: 0,
            table_elements: 0,
        };
        assert!(limits.table_growing(0, 60_000, None).is_ok_and(|ok| ok));
        assert!(limits.table_growing(0, 60_000, None).is_err());
    }
}
