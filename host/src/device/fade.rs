//! Fades between frames and the brightness cap. Pure: time is a parameter.

use std::time::Duration;

use crate::frame::Rgb;

/// A linear fade of every LED from one frame to another.
#[derive(Debug, Clone, PartialEq)]
pub struct Fade {
    from: Vec<Rgb>,
    to: Vec<Rgb>,
    duration: Duration,
}

impl Fade {
    /// A fade from what is shown now to `to`. Frames of other lengths are padded with
    /// off (or cut) to `to`'s length.
    pub fn new(from: &[Rgb], to: Vec<Rgb>, duration: Duration) -> Fade {
        let mut from = from.to_vec();
        from.resize(to.len(), Rgb::OFF);
        Fade { from, to, duration }
    }

    pub fn target(&self) -> &[Rgb] {
        &self.to
    }

    /// The frame `elapsed` after the fade started: exactly the target once the
    /// duration has passed, and never outside the range between start and target.
    pub fn at(&self, elapsed: Duration) -> Vec<Rgb> {
        if elapsed >= self.duration {
            return self.to.clone();
        }
        let t = elapsed.as_secs_f64() / self.duration.as_secs_f64();
        self.from
            .iter()
            .zip(&self.to)
            .map(|(a, b)| mix(*a, *b, t))
            .collect()
    }

    pub fn done(&self, elapsed: Duration) -> bool {
        elapsed >= self.duration
    }
}

/// Rounded away from the start: once any time has passed, every channel that differs
/// has moved at least one step. A fade restarted from what is shown before it ends (an
/// animation's frames come faster than the fade) therefore always gets there; rounded
/// to the nearest, a channel 1–3 steps from its target would stay where it is forever.
fn mix(a: Rgb, b: Rgb, t: f64) -> Rgb {
    let channel = |x: u8, y: u8| {
        let step = (f64::from(y) - f64::from(x)) * t;
        let v = f64::from(x) + step.abs().ceil().copysign(step);
        v.clamp(f64::from(x.min(y)), f64::from(x.max(y))) as u8
    };
    Rgb::new(channel(a.r, b.r), channel(a.g, b.g), channel(a.b, b.b))
}

/// Scales a colour so no channel exceeds `cap` (0–255), keeping its hue.
pub fn cap_brightness(c: Rgb, cap: u8) -> Rgb {
    let max = c.r.max(c.g).max(c.b);
    if max <= cap {
        return c;
    }
    let scale =
        |v: u8| ((u32::from(v) * u32::from(cap) + u32::from(max) / 2) / u32::from(max)) as u8;
    Rgb::new(scale(c.r), scale(c.g), scale(c.b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_fade_restarted_before_it_ends_still_reaches_its_target() {
        // An animation's frames every 40 ms, each starting a 300 ms fade from what is
        // shown: near-by channels used to round back to where they were.
        let target = vec![Rgb::new(0, 0, 40)];
        let mut shown = vec![Rgb::new(2, 20, 41)];
        for _ in 0..40 {
            shown = Fade::new(&shown, target.clone(), MS(300)).at(MS(40));
        }
        assert_eq!(shown, target);
        let one_step = Fade::new(&[Rgb::new(0, 1, 0)], vec![Rgb::OFF], MS(300));
        assert_eq!(one_step.at(MS(1)), vec![Rgb::OFF]);
        assert_eq!(one_step.at(MS(0)), vec![Rgb::new(0, 1, 0)]);
    }

    #[test]
    fn fade_starts_at_the_source_and_ends_exactly_on_target() {
        let fade = Fade::new(&[Rgb::new(0, 100, 255)], vec![Rgb::new(255, 0, 1)], MS(300));
        assert_eq!(fade.at(MS(0)), vec![Rgb::new(0, 100, 255)]);
        assert_eq!(fade.at(MS(150)), vec![Rgb::new(128, 50, 128)]);
        assert_eq!(fade.at(MS(300)), vec![Rgb::new(255, 0, 1)]);
        assert_eq!(fade.at(MS(5000)), vec![Rgb::new(255, 0, 1)]);
        assert!(fade.done(MS(300)) && !fade.done(MS(299)));
    }

    #[test]
    fn fade_never_overshoots_and_moves_monotonically() {
        let from = Rgb::new(10, 200, 0);
        let to = Rgb::new(250, 3, 0);
        let fade = Fade::new(&[from], vec![to], MS(300));
        let mut last = from;
        for ms in 0..=300 {
            let now = fade.at(MS(ms))[0];
            assert!(
                (from.r..=to.r).contains(&now.r) && (to.g..=from.g).contains(&now.g),
                "{ms} ms: {now:?}"
            );
            assert!(now.r >= last.r && now.g <= last.g, "{ms} ms: monotonic");
            last = now;
        }
    }

    #[test]
    fn retargeting_mid_fade_continues_from_the_colour_shown() {
        let first = Fade::new(&[Rgb::OFF], vec![Rgb::new(200, 0, 0)], MS(300));
        let shown = first.at(MS(100));
        let second = Fade::new(&shown, vec![Rgb::new(0, 0, 200)], MS(300));
        assert_eq!(second.at(MS(0)), shown, "no jump at the retarget");
        let step = second.at(MS(20))[0];
        assert!(
            shown[0].r.abs_diff(step.r) <= 14 && step.b <= 14,
            "small step: {step:?}"
        );
        assert_eq!(second.at(MS(300)), vec![Rgb::new(0, 0, 200)]);
    }

    #[test]
    fn fade_resizes_the_source_frame() {
        let fade = Fade::new(&[Rgb::new(9, 9, 9)], vec![Rgb::new(9, 9, 9); 3], MS(0));
        assert_eq!(fade.at(MS(0)).len(), 3);
        assert_eq!(
            Fade::new(&[], vec![Rgb::new(1, 1, 1)], MS(10)).at(MS(0)),
            vec![Rgb::OFF]
        );
    }

    #[test]
    fn brightness_cap_scales_keeping_the_hue() {
        assert_eq!(
            cap_brightness(Rgb::new(255, 128, 0), 64),
            Rgb::new(64, 32, 0)
        );
        assert_eq!(
            cap_brightness(Rgb::new(10, 20, 30), 64),
            Rgb::new(10, 20, 30)
        );
        assert_eq!(cap_brightness(Rgb::new(255, 255, 255), 0), Rgb::OFF);
    }
}
