//! `podlight test --lint colour-vision`: which pod states a policy shows in colours
//! that people with a colour vision deficiency cannot tell apart. Pure.
//!
//! Simulation: Machado, Oliveira & Fernandes, "A Physiologically-based Model for
//! Simulation of Color Vision Deficiency" (IEEE TVCG 15(6), 2009), the matrices for
//! severity 1.0 (protanopia, deuteranopia, tritanopia), applied to linear sRGB.
//!
//! Difference: CIEDE2000 on the hue and chroma terms only (the lightness term
//! left out), each colour first scaled to full brightness. A status LED is seen on
//! its own, at a brightness set by a setting, a cap and the room's light: how bright
//! it is says little about which state it shows, its hue says it. Two colours whose
//! difference falls below [`THRESHOLD`] are flagged; a state that blinks while the
//! other does not is told apart by the blink and only noted.

use crate::frame::Rgb;
use crate::state::{PodState, Snapshot};

/// Below this chromatic CIEDE2000 difference two LED colours count as the same
/// state at a glance (about ten just-noticeable differences).
pub const THRESHOLD: f64 = 12.0;

/// A colour vision deficiency, simulated at full severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deficiency {
    Protanopia,
    Deuteranopia,
    Tritanopia,
}

impl Deficiency {
    pub const ALL: [Deficiency; 3] = [
        Deficiency::Protanopia,
        Deficiency::Deuteranopia,
        Deficiency::Tritanopia,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Deficiency::Protanopia => "protanopia",
            Deficiency::Deuteranopia => "deuteranopia",
            Deficiency::Tritanopia => "tritanopia",
        }
    }

    fn matrix(self) -> [[f64; 3]; 3] {
        match self {
            Deficiency::Protanopia => [
                [0.152286, 1.052583, -0.204868],
                [0.114503, 0.786281, 0.099216],
                [-0.003882, -0.048116, 1.051998],
            ],
            Deficiency::Deuteranopia => [
                [0.367322, 0.860646, -0.227968],
                [0.280085, 0.672501, 0.047413],
                [-0.011820, 0.042940, 0.968881],
            ],
            Deficiency::Tritanopia => [
                [1.255528, -0.076749, -0.178779],
                [-0.078411, 0.930809, 0.147602],
                [0.004733, 0.691367, 0.303900],
            ],
        }
    }
}

/// How a colour looks with `deficiency` (none: as it is), in linear RGB 0..1,
/// scaled to full brightness.
fn perceived(colour: Rgb, deficiency: Option<Deficiency>) -> [f64; 3] {
    let max = f64::from(colour.r.max(colour.g).max(colour.b).max(1));
    let linear = |c: u8| {
        let v = f64::from(c) / max;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let rgb = [linear(colour.r), linear(colour.g), linear(colour.b)];
    match deficiency {
        None => rgb,
        Some(d) => {
            let m = d.matrix();
            let row = |r: [f64; 3]| (r[0] * rgb[0] + r[1] * rgb[1] + r[2] * rgb[2]).clamp(0.0, 1.0);
            [row(m[0]), row(m[1]), row(m[2])]
        }
    }
}

/// CIE L*a*b* (D65) of a linear sRGB colour.
fn lab(rgb: [f64; 3]) -> [f64; 3] {
    let [r, g, b] = rgb;
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| {
        if t > 216.0 / 24389.0 {
            t.cbrt()
        } else {
            (24389.0 / 27.0 * t + 16.0) / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIEDE2000 (Sharma, Wu & Dalal 2005) without its lightness term.
fn chromatic_de2000(p: [f64; 3], q: [f64; 3]) -> f64 {
    let (a1, b1) = (p[1], p[2]);
    let (a2, b2) = (q[1], q[2]);
    let c1 = a1.hypot(b1);
    let c2 = a2.hypot(b2);
    let c_mean = (c1 + c2) / 2.0;
    let c7 = c_mean.powi(7);
    let g = 0.5 * (1.0 - (c7 / (c7 + 25f64.powi(7))).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = (a1p.hypot(b1), a2p.hypot(b2));
    let hue = |a: f64, b: f64| {
        if a == 0.0 && b == 0.0 {
            0.0
        } else {
            b.atan2(a).to_degrees().rem_euclid(360.0)
        }
    };
    let (h1p, h2p) = (hue(a1p, b1), hue(a2p, b2));
    let dcp = c2p - c1p;
    let dhp = if c1p * c2p == 0.0 {
        0.0
    } else if (h2p - h1p).abs() <= 180.0 {
        h2p - h1p
    } else if h2p - h1p > 180.0 {
        h2p - h1p - 360.0
    } else {
        h2p - h1p + 360.0
    };
    let d_hp = 2.0 * (c1p * c2p).sqrt() * (dhp / 2.0).to_radians().sin();
    let cp_mean = (c1p + c2p) / 2.0;
    let hp_mean = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    let t = 1.0 - 0.17 * (hp_mean - 30.0).to_radians().cos()
        + 0.24 * (2.0 * hp_mean).to_radians().cos()
        + 0.32 * (3.0 * hp_mean + 6.0).to_radians().cos()
        - 0.20 * (4.0 * hp_mean - 63.0).to_radians().cos();
    let d_theta = 30.0 * (-((hp_mean - 275.0) / 25.0).powi(2)).exp();
    let cp7 = cp_mean.powi(7);
    let rc = 2.0 * (cp7 / (cp7 + 25f64.powi(7))).sqrt();
    let sc = 1.0 + 0.045 * cp_mean;
    let sh = 1.0 + 0.015 * cp_mean * t;
    let rt = -(2.0 * d_theta).to_radians().sin() * rc;
    let (c_term, h_term) = (dcp / sc, d_hp / sh);
    (c_term * c_term + h_term * h_term + rt * c_term * h_term).sqrt()
}

/// How far apart two LED colours look, by the measure above.
pub fn difference(a: Rgb, b: Rgb, deficiency: Option<Deficiency>) -> f64 {
    chromatic_de2000(lab(perceived(a, deficiency)), lab(perceived(b, deficiency)))
}

/// What a policy showed for one state: the colour of most lit LEDs (off when none
/// is lit) and whether the frame changes with time alone (blinks or pulses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    pub colour: Rgb,
    pub animated: bool,
}

/// The states a light must tell apart at a glance.
pub const LINTED_STATES: [PodState; 3] = [PodState::Failed, PodState::Pending, PodState::Running];

/// A ready node whose three pods are all in `state`, at `now_ms`: what the lint
/// shows a policy for each state.
pub fn sample_snapshot(state: PodState, now_ms: u64) -> Snapshot {
    let pod = |name: &str| {
        let (phase, ready, container) = match state {
            PodState::Failed => (
                "Running",
                false,
                serde_json::json!({"name": "c", "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}),
            ),
            PodState::Pending => (
                "Pending",
                false,
                serde_json::json!({"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}),
            ),
            _ => (
                "Running",
                true,
                serde_json::json!({"name": "c", "ready": true, "state": {"running": {}}}),
            ),
        };
        serde_json::json!({"namespace": "lint", "name": name, "phase": phase, "ready": ready,
                           "containers": [container]})
    };
    let json = serde_json::json!({
        "nowMs": now_ms,
        "node": {"name": "lint", "ready": true},
        "pods": [pod("a"), pod("b"), pod("c")],
    });
    // Built from known-good JSON: reading it cannot fail.
    serde_json::from_value(json)
        .unwrap_or_else(|_| Snapshot::new(Default::default(), Vec::new(), now_ms))
}

/// The colour most lit LEDs of a frame show; off when none is lit.
pub fn dominant(leds: &[Rgb]) -> Rgb {
    let mut counts: Vec<(Rgb, usize)> = Vec::new();
    for &led in leds.iter().filter(|&&c| c != Rgb::OFF) {
        match counts.iter_mut().find(|(c, _)| *c == led) {
            Some((_, n)) => *n += 1,
            None => counts.push((led, 1)),
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map_or(Rgb::OFF, |(c, _)| c)
}

/// A pair of states that look alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub first: &'static str,
    pub second: &'static str,
    pub deficiency: Deficiency,
    pub first_colour: Rgb,
    pub second_colour: Rgb,
    pub difference: f64,
    /// One of them animates and the other does not: told apart that way.
    pub told_apart_by_animation: bool,
}

impl Finding {
    pub fn describe(&self) -> String {
        let how = if self.told_apart_by_animation {
            "told apart only by the animation"
        } else {
            "indistinguishable"
        };
        format!(
            "{} {} and {} {}: {how} with {} (difference {:.1} < {THRESHOLD})",
            self.first,
            self.first_colour,
            self.second,
            self.second_colour,
            self.deficiency.name(),
            self.difference
        )
    }
}

/// Every pair of states shown in colours that differ with normal vision but not
/// with a deficiency. Off against off is no finding (a policy may leave both dark).
pub fn lint(states: &[(&'static str, Shown)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (i, &(first, a)) in states.iter().enumerate() {
        for &(second, b) in &states[i + 1..] {
            if a.colour == Rgb::OFF || b.colour == Rgb::OFF {
                continue;
            }
            if difference(a.colour, b.colour, None) < THRESHOLD {
                // Alike for everyone: the policy's choice, not a colour-vision issue.
                continue;
            }
            for deficiency in Deficiency::ALL {
                let seen = difference(a.colour, b.colour, Some(deficiency));
                if seen < THRESHOLD {
                    findings.push(Finding {
                        first,
                        second,
                        deficiency,
                        first_colour: a.colour,
                        second_colour: b.colour,
                        difference: seen,
                        told_apart_by_animation: a.animated != b.animated,
                    });
                }
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(colour: Rgb) -> Shown {
        Shown {
            colour,
            animated: false,
        }
    }

    #[test]
    fn ciede2000_matches_the_published_test_data_without_lightness() {
        // Sharma et al.'s pair 1 has no lightness difference: ΔE00 = 2.0425.
        let d = chromatic_de2000([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485]);
        assert!((d - 2.0425).abs() < 1e-3, "{d}");
        // Pair 7 (ΔL = 0 too, one colour neutral): 2.3669.
        let d = chromatic_de2000([50.0, 0.0, 0.0], [50.0, -1.0, 2.0]);
        assert!((d - 2.3669).abs() < 1e-3, "{d}");
    }

    #[test]
    fn samples_are_in_their_states() {
        for state in LINTED_STATES {
            let snapshot = sample_snapshot(state, 1000);
            assert_eq!(snapshot.counts.of(state), 3, "{state:?}");
        }
        assert_eq!(
            dominant(&[
                Rgb::OFF,
                Rgb::new(1, 0, 0),
                Rgb::new(1, 0, 0),
                Rgb::new(0, 1, 0)
            ]),
            Rgb::new(1, 0, 0)
        );
        assert_eq!(dominant(&[Rgb::OFF]), Rgb::OFF);
    }

    #[test]
    fn the_default_red_and_green_are_flagged_for_deuteranopia() {
        let findings = lint(&[
            ("failed", steady(Rgb::new(50, 0, 0))),
            ("running", steady(Rgb::new(0, 25, 0))),
        ]);
        assert!(
            findings
                .iter()
                .any(|f| f.deficiency == Deficiency::Deuteranopia),
            "{findings:?}"
        );
        let blinking = lint(&[
            (
                "failed",
                Shown {
                    colour: Rgb::new(50, 0, 0),
                    animated: true,
                },
            ),
            ("running", steady(Rgb::new(0, 25, 0))),
        ]);
        assert!(blinking.iter().all(|f| f.told_apart_by_animation));
    }
}
