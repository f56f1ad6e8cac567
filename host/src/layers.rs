//! Policies in layers: several policies evaluated on the same snapshot, stacked from
//! the base up (e.g. `priority` → `alerts` → `incident`). Each LED shows the topmost
//! layer that does not leave it to the layers below (contract 0.4's per-LED
//! `see-through`; plugins built for earlier contracts cover every LED). Pure: the
//! evaluator hands it each layer's frame.
//!
//! Why transparency per LED rather than LED ranges per layer: an overlay such as an
//! incident layer lights whichever LEDs it likes, when it likes, and a policy knows
//! best which of its LEDs say something; ranges would fix the split at deploy time.

use crate::frame::{Frame, LedReason, Rgb};

/// One layer's answer for the composition.
pub struct LayerFrame<'a> {
    /// The layer's name (its policy's name in the policy directory or ConfigMap).
    pub name: &'a str,
    /// Its frame: this evaluation's, or its last good one when this evaluation
    /// failed or was skipped; none if it never gave one.
    pub frame: Option<&'a Frame>,
    /// Why the frame is not this evaluation's (its last evaluation failed); its
    /// reasons then point into an older snapshot and are not used.
    pub stale: Option<&'a str>,
}

/// The composed frame: each LED from the topmost layer that sets it, with that
/// layer's reasons (each naming its layer); LEDs no layer sets are off and left to
/// whatever is below the stack. Evaluate again at the soonest any layer asks.
pub fn compose(layers: &[LayerFrame<'_>], leds: usize) -> Frame {
    if let [only] = layers
        && only.stale.is_none()
        && let Some(frame) = only.frame
    {
        // One layer is today's behaviour, unchanged.
        return frame.clone();
    }
    let mut owner: Vec<Option<usize>> = vec![None; leds];
    let mut colours = vec![Rgb::OFF; leds];
    for (index, layer) in layers.iter().enumerate() {
        let Some(frame) = layer.frame else { continue };
        let mut clear = vec![false; leds];
        for &led in &frame.see_through {
            if let Some(c) = clear.get_mut(led as usize) {
                *c = true;
            }
        }
        for led in 0..leds.min(frame.leds.len()) {
            if !clear[led] {
                owner[led] = Some(index);
                colours[led] = frame.leds[led];
            }
        }
    }
    let mut reasons = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let Some(frame) = layer.frame else { continue };
        let owned: Vec<u32> = (0..leds)
            .filter(|&led| owner[led] == Some(index))
            .map(|led| led as u32)
            .collect();
        if owned.is_empty() {
            continue;
        }
        if let Some(error) = layer.stale {
            reasons.push(LedReason {
                leds: owned,
                rule: format!("its last evaluation failed ({error}); showing its last good frame"),
                layer: layer.name.to_string(),
                ..LedReason::default()
            });
            continue;
        }
        let mut explained = vec![false; leds];
        for reason in &frame.reasons {
            let mine: Vec<u32> = reason
                .leds
                .iter()
                .copied()
                .filter(|&led| owner.get(led as usize) == Some(&Some(index)))
                .collect();
            if mine.is_empty() {
                continue;
            }
            for &led in &mine {
                explained[led as usize] = true;
            }
            reasons.push(LedReason {
                leds: mine,
                layer: layer.name.to_string(),
                ..reason.clone()
            });
        }
        let unexplained: Vec<u32> = owned
            .into_iter()
            .filter(|&led| !explained[led as usize])
            .collect();
        if !unexplained.is_empty() {
            // The layer is still named; the explanation says it gave no reason.
            reasons.push(LedReason {
                leds: unexplained,
                layer: layer.name.to_string(),
                ..LedReason::default()
            });
        }
    }
    let see_through = (0..leds)
        .filter(|&led| owner[led].is_none())
        .map(|led| led as u32)
        .collect();
    let again_after_ms = layers
        .iter()
        .filter(|l| l.stale.is_none())
        .filter_map(|l| l.frame.and_then(|f| f.again_after_ms))
        .min();
    Frame {
        leds: colours,
        again_after_ms,
        reasons,
        see_through,
    }
}

/// The layer that set each LED of a composed frame (none: no layer did).
pub fn layer_of_each_led(frame: &Frame) -> Vec<Option<&str>> {
    (0..frame.leds.len())
        .map(|led| {
            frame
                .reason_for(led as u32)
                .map(|r| r.layer.as_str())
                .filter(|l| !l.is_empty())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Rgb = Rgb::new(50, 0, 0);
    const GREEN: Rgb = Rgb::new(0, 25, 0);
    const BLUE: Rgb = Rgb::new(0, 0, 50);

    fn frame(leds: Vec<Rgb>, see_through: Vec<u32>, rule: &str) -> Frame {
        Frame {
            reasons: vec![LedReason {
                leds: (0..leds.len() as u32).collect(),
                rule: rule.into(),
                pods: vec![0],
                ..LedReason::default()
            }],
            leds,
            see_through,
            again_after_ms: None,
        }
    }

    #[test]
    fn the_top_layer_wins_except_where_it_sees_through() {
        let base = frame(vec![GREEN; 4], vec![], "pods fine");
        let alerts = Frame {
            again_after_ms: Some(500),
            ..frame(vec![RED; 4], vec![0, 1, 2], "alert")
        };
        let incident = frame(vec![BLUE; 4], vec![1, 2, 3], "incident");
        let layers = [
            LayerFrame {
                name: "base",
                frame: Some(&base),
                stale: None,
            },
            LayerFrame {
                name: "alerts",
                frame: Some(&alerts),
                stale: None,
            },
            LayerFrame {
                name: "incident",
                frame: Some(&incident),
                stale: None,
            },
        ];
        let composed = compose(&layers, 4);
        assert_eq!(composed.leds, [BLUE, GREEN, GREEN, RED]);
        assert_eq!(
            layer_of_each_led(&composed),
            [Some("incident"), Some("base"), Some("base"), Some("alerts")]
        );
        assert_eq!(
            composed.reason_for(3).map(|r| r.rule.as_str()),
            Some("alert")
        );
        assert_eq!(
            composed.reason_for(3).map(|r| r.pods.clone()),
            Some(vec![0])
        );
        assert_eq!(composed.again_after_ms, Some(500));
        assert!(composed.see_through.is_empty());
        // A stale middle layer keeps its LEDs; its reasons are not trusted.
        let stale = [LayerFrame {
            name: "alerts",
            frame: Some(&alerts),
            stale: Some("trapped"),
        }];
        let composed = compose(&stale, 4);
        assert_eq!(composed.leds[3], RED);
        assert_eq!(composed.see_through, [0, 1, 2]);
        let reason = composed
            .reason_for(3)
            .map(|r| (r.rule.clone(), r.pods.len()));
        assert!(
            reason
                .as_ref()
                .is_some_and(|(rule, pods)| rule.contains("trapped") && *pods == 0),
            "{reason:?}"
        );
        // A layer that never gave a frame covers nothing.
        let none = [LayerFrame {
            name: "broken",
            frame: None,
            stale: Some("trapped"),
        }];
        assert_eq!(compose(&none, 2).leds, [Rgb::OFF, Rgb::OFF]);
    }

    #[test]
    fn one_layer_is_its_frame_unchanged() {
        let only = frame(vec![GREEN; 2], vec![1], "x");
        let composed = compose(
            &[LayerFrame {
                name: "priority",
                frame: Some(&only),
                stale: None,
            }],
            2,
        );
        assert_eq!(composed, only);
    }
}
