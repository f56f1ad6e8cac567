//! The Wasm component glue: bindings generated from `wit/`, mapping the contract's
//! types onto the rule.

use std::cell::RefCell;

use crate::{Counts, Settings, frame, parse_settings};
use exports::podlight::policy::evaluator::{Frame, Guest};
use podlight::policy::snapshot;
use podlight::policy::types::{Rgb, StateCounts};

wit_bindgen::generate!({
    world: "policy",
    path: "../../wit",
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
        let counts = counts_from(snapshot::counts());
        let leds = SETTINGS.with(|s| frame(&counts, &s.borrow(), snapshot::led_count()));
        Ok(Frame {
            leds: leds
                .into_iter()
                .map(|c| Rgb {
                    r: c.r,
                    g: c.g,
                    b: c.b,
                })
                .collect(),
            again_after_ms: None,
        })
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
