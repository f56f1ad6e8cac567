//! The Wasm component glue: bindings generated from `wit/`, mapping the contract's
//! types onto the rule. With the `contract-0-2` feature the same rule is built
//! against the frozen 0.2 contract (no cluster scope): the plugin the test suite
//! uses to show that 0.2 plugins keep loading unchanged.

use std::cell::RefCell;

use crate::{Counts, Settings, frame, parse_settings};
use exports::podlight::policy::evaluator::{Frame, Guest};
use podlight::policy::snapshot;
use podlight::policy::types::{Rgb, StateCounts};

#[cfg(not(feature = "contract-0-2"))]
wit_bindgen::generate!({
    world: "policy",
    path: "../../wit",
});

#[cfg(feature = "contract-0-2")]
wit_bindgen::generate!({
    world: "policy",
    path: "../../host/compat/wit-0.2",
});

thread_local! {
    static SETTINGS: RefCell<Settings> = RefCell::new(Settings::default());
}

struct Priority;

impl Guest for Priority {
    fn configure(settings: Option<String>) -> Result<(), String> {
        let (parsed, problem) = parse_settings(settings.as_deref());
        SETTINGS.with(|s| *s.borrow_mut() = parsed);
        problem.map_or(Ok(()), Err)
    }

    fn evaluate() -> Result<Frame, String> {
        #[cfg(not(feature = "contract-0-2"))]
        if matches!(
            snapshot::scope(),
            podlight::policy::types::ScopeKind::Cluster
        ) {
            return Ok(cluster_frame());
        }
        let counts = counts_from(snapshot::counts());
        let leds = SETTINGS.with(|s| frame(&counts, &s.borrow(), snapshot::led_count()));
        Ok(Frame {
            leds: leds.into_iter().map(rgb).collect(),
            again_after_ms: None,
        })
    }
}

#[cfg(not(feature = "contract-0-2"))]
fn cluster_frame() -> Frame {
    let nodes: Vec<crate::cluster::NodeView> = snapshot::nodes()
        .into_iter()
        .map(|n| crate::cluster::NodeView {
            ready: n.node.ready,
            pressure: n.node.memory_pressure || n.node.disk_pressure || n.node.pid_pressure,
            cordoned: n.node.unschedulable,
            counts: counts_from(n.counts),
        })
        .collect();
    let (leds, again_after_ms) = SETTINGS.with(|s| {
        crate::cluster::frame(
            &nodes,
            &s.borrow(),
            snapshot::led_count(),
            snapshot::now_ms(),
        )
    });
    Frame {
        leds: leds.into_iter().map(rgb).collect(),
        again_after_ms,
    }
}

fn rgb(c: crate::Rgb) -> Rgb {
    Rgb {
        r: c.r,
        g: c.g,
        b: c.b,
    }
}

fn counts_from(c: StateCounts) -> Counts {
    Counts {
        deleting: c.deleting,
        failed: c.failed,
        succeeded: c.succeeded,
        pending: c.pending,
        unready: c.unready,
        running: c.running,
        unknown: c.unknown,
    }
}

export!(Priority);
