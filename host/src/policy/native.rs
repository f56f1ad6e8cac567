//! The default policy's rule linked natively (the same Rust as the plugin), as the
//! baseline the Wasm plugin is measured and checked against.

use podlight_priority::{Counts, Settings};

use crate::frame::Rgb;
use crate::state::Snapshot;

/// The frame the default policy gives for this snapshot, computed natively.
pub fn priority_frame(snapshot: &Snapshot, settings: &Settings, led_count: u32) -> Vec<Rgb> {
    let c = snapshot.counts;
    let counts = Counts {
        deleting: c.deleting,
        failed: c.failed,
        succeeded: c.succeeded,
        pending: c.pending,
        unready: c.unready,
        running: c.running,
        unknown: c.unknown,
    };
    podlight_priority::frame(&counts, settings, led_count)
        .into_iter()
        .map(|c| Rgb::new(c.r, c.g, c.b))
        .collect()
}
