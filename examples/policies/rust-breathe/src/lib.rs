//! Breathe: while any pod on the node is being deleted, every LED breathes blue — a
//! slow sine between off and full — driven by the snapshot's time and the "again in
//! N ms" hint. Otherwise: red if any pod failed, dim green if pods run, else off.
//!
//! Settings (JSON, optional): `{"periodMs": 2000, "peak": 80}` — one breath's length
//! and the brightest blue (0–255). Missing or malformed settings: those defaults,
//! with the problem reported to the host.
#![cfg(target_family = "wasm")]

use std::cell::Cell;

use exports::podlight::policy::evaluator::{Frame, Guest, LedReason};
use podlight::policy::snapshot;
use podlight::policy::types::{PodState, Rgb};

wit_bindgen::generate!({
    world: "policy",
    path: "../../../wit",
});

const DEFAULT_PERIOD_MS: u64 = 2000;
const DEFAULT_PEAK: u8 = 80;
/// 25 frames a second is smooth enough for a breath.
const STEP_MS: u32 = 40;

thread_local! {
    static PERIOD_MS: Cell<u64> = const { Cell::new(DEFAULT_PERIOD_MS) };
    static PEAK: Cell<u8> = const { Cell::new(DEFAULT_PEAK) };
}

/// Reads `"key": number` from flat JSON without pulling a JSON parser into the plugin.
fn number(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = text[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

struct Breathe;

impl Guest for Breathe {
    fn configure(settings: Option<String>) -> Result<(), String> {
        PERIOD_MS.with(|p| p.set(DEFAULT_PERIOD_MS));
        PEAK.with(|p| p.set(DEFAULT_PEAK));
        let Some(text) = settings.filter(|s| !s.trim().is_empty()) else {
            return Ok(());
        };
        if !text.trim_start().starts_with('{') {
            return Err("breathe settings are not a JSON object; using the defaults".into());
        }
        if let Some(period) = number(&text, "periodMs").filter(|p| *p >= 200) {
            PERIOD_MS.with(|p| p.set(period));
        }
        if let Some(peak) = number(&text, "peak").filter(|p| *p <= 255) {
            PEAK.with(|p| p.set(peak as u8));
        }
        Ok(())
    }

    fn evaluate() -> Result<Frame, String> {
        let counts = snapshot::counts();
        let leds = snapshot::led_count() as usize;
        if counts.deleting > 0 {
            let period = PERIOD_MS.with(Cell::get);
            let phase = (snapshot::now_ms() % period) as f64 / period as f64;
            // 0 at the start of a breath, peak halfway.
            let level = (1.0 - (phase * std::f64::consts::TAU).cos()) / 2.0;
            let blue = (level * f64::from(PEAK.with(Cell::get))).round() as u8;
            return Ok(Frame {
                leds: vec![
                    Rgb {
                        r: 0,
                        g: 0,
                        b: blue
                    };
                    leds
                ],
                again_after_ms: Some(STEP_MS),
                reasons: vec![why(
                    leds,
                    "pods being deleted: breathing blue",
                    PodState::Deleting,
                )],
                see_through: Vec::new(),
            });
        }
        let (steady, reason) = if counts.failed > 0 {
            (
                Rgb { r: 60, g: 0, b: 0 },
                why(leds, "failed pods: red", PodState::Failed),
            )
        } else if counts.running > 0 {
            (
                Rgb { r: 0, g: 20, b: 0 },
                why(leds, "pods running: green", PodState::Running),
            )
        } else {
            (
                Rgb { r: 0, g: 0, b: 0 },
                why(
                    leds,
                    "no pod running, failing or deleted: off",
                    PodState::Pending,
                ),
            )
        };
        Ok(Frame {
            leds: vec![steady; leds],
            again_after_ms: None,
            reasons: vec![reason],
            see_through: Vec::new(),
        })
    }
}

/// The reason for every LED: `rule`, naming the pods in `state` (none for "off").
fn why(leds: usize, rule: &str, state: PodState) -> LedReason {
    let pods = if rule.ends_with("off") {
        Vec::new()
    } else {
        snapshot::pods_in(state, false)
    };
    LedReason {
        leds: (0..leds as u32).collect(),
        rule: rule.to_string(),
        pods,
        nodes: Vec::new(),
        alerts: Vec::new(),
    }
}

export!(Breathe);
