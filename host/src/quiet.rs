//! Quiet hours: a brightness schedule the host applies to every policy's frame, after
//! the policy and the brightness cap — e.g. `22:00-07:00@10%` in `Europe/Berlin`,
//! several windows allowed (the dimmest wins where they overlap), optionally leaving
//! LEDs that show failures at full brightness. Pure: the caller passes the time.
//!
//! Windows are wall-clock times in the configured time zone, so they follow daylight
//! saving: `22:00-07:00` is dark from 22:00 to 07:00 local time on the night the
//! clocks change too (that night is an hour shorter or longer).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use crate::device::cap_brightness;
use crate::frame::{Frame, Rgb};
use crate::state::{PodState, Snapshot};

/// One window: from `start` to `end` (minutes after local midnight; `end` before
/// `start` crosses midnight) at `percent` brightness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: u16,
    end: u16,
    percent: u8,
}

impl Window {
    fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// A window that cannot be read, or a time zone that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum QuietHoursError {
    #[error("quiet hours \"{text}\": {problem}. Write HH:MM-HH:MM@PERCENT%, e.g. 22:00-07:00@10%")]
    Window {
        /// The window as written, sanitised and cut to a readable length.
        text: String,
        problem: String,
    },
    #[error(
        "time zone {name:?} is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC): {source}"
    )]
    TimeZone {
        name: String,
        #[source]
        source: jiff::Error,
    },
}

/// Reads `HH:MM-HH:MM@P%`.
pub fn parse_window(text: &str) -> Result<Window, QuietHoursError> {
    let refuse = |problem: &str| QuietHoursError::Window {
        // The message quotes the window, not whatever else the value held (found by
        // fuzzing: a 4,000-character value made a 4,000-character message).
        text: crate::policy::untrusted::sanitize(text, 40),
        problem: problem.to_string(),
    };
    let (times, percent) = text
        .trim()
        .split_once('@')
        .ok_or_else(|| refuse("no @PERCENT%"))?;
    let percent: u8 = percent
        .trim()
        .trim_end_matches('%')
        .parse()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| refuse("the brightness is not a percentage from 0 to 100"))?;
    let (start, end) = times
        .split_once('-')
        .ok_or_else(|| refuse("no START-END"))?;
    let minute = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        // `then`, not `then_some`: the minute is computed only for an hour that fits
        // (found by fuzzing: `20220:00` overflowed before it was refused).
        (h < 24 && m < 60 && t.trim().len() == 5).then(|| h * 60 + m)
    };
    let start = minute(start).ok_or_else(|| refuse("the start is not a time HH:MM"))?;
    let end = minute(end).ok_or_else(|| refuse("the end is not a time HH:MM"))?;
    if start == end {
        return Err(refuse("the window starts where it ends"));
    }
    Ok(Window {
        start,
        end,
        percent,
    })
}

/// The schedule.
#[derive(Debug, Clone)]
pub struct QuietHours {
    windows: Vec<Window>,
    zone: TimeZone,
    keep_failures: bool,
    brightness_cap: Option<u8>,
}

impl QuietHours {
    /// Checks every window and the time zone; an empty list gives no schedule.
    pub fn new(
        windows: &[String],
        zone: &str,
        keep_failures: bool,
        brightness_cap: Option<u8>,
    ) -> Result<Option<QuietHours>, QuietHoursError> {
        let windows = windows
            .iter()
            .flat_map(|w| w.split(','))
            .filter(|w| !w.trim().is_empty())
            .map(parse_window)
            .collect::<Result<Vec<_>, _>>()?;
        let zone = TimeZone::get(zone).map_err(|source| QuietHoursError::TimeZone {
            name: zone.to_string(),
            source,
        })?;
        Ok((!windows.is_empty()).then_some(QuietHours {
            windows,
            zone,
            keep_failures,
            brightness_cap,
        }))
    }

    fn zoned(&self, now_ms: u64) -> Option<Zoned> {
        let ms = i64::try_from(now_ms).ok()?;
        Some(
            Timestamp::from_millisecond(ms)
                .ok()?
                .to_zoned(self.zone.clone()),
        )
    }

    /// The brightness in percent at `now_ms`, and when it may change next.
    pub fn at(&self, now_ms: u64) -> (u8, Option<u64>) {
        let Some(local) = self.zoned(now_ms) else {
            return (100, None);
        };
        let minute = u16::try_from(local.hour()).unwrap_or(0) * 60
            + u16::try_from(local.minute()).unwrap_or(0);
        let percent = self
            .windows
            .iter()
            .filter(|w| w.contains(minute))
            .map(|w| w.percent)
            .min()
            .unwrap_or(100);
        (percent, self.next_boundary(local.date(), now_ms))
    }

    /// The first window start or end after `now_ms`, today or in the next two days
    /// (a boundary that does not exist on a day clocks spring forward is the first
    /// instant after the gap).
    fn next_boundary(&self, today: Date, now_ms: u64) -> Option<u64> {
        let days = [
            Some(today),
            today.tomorrow().ok(),
            today.tomorrow().ok().and_then(|d| d.tomorrow().ok()),
        ];
        days.into_iter()
            .flatten()
            .flat_map(|day| {
                self.windows
                    .iter()
                    .flat_map(|w| [w.start, w.end])
                    .map(move |minute| (day, minute))
            })
            .filter_map(|(day, minute)| {
                let at = day.at(
                    i8::try_from(minute / 60).ok()?,
                    i8::try_from(minute % 60).ok()?,
                    0,
                    0,
                );
                let zoned = self.zone.to_ambiguous_zoned(at).compatible().ok()?;
                u64::try_from(zoned.timestamp().as_millisecond()).ok()
            })
            // The clocks' next change too: a boundary inside a spring gap is crossed
            // at the gap, earlier than `compatible` places it.
            .chain(self.next_transition(now_ms))
            .filter(|&ms| ms > now_ms)
            .min()
    }

    fn next_transition(&self, now_ms: u64) -> Option<u64> {
        let now = Timestamp::from_millisecond(i64::try_from(now_ms).ok()?).ok()?;
        let transition = self.zone.following(now).next()?;
        u64::try_from(transition.timestamp().as_millisecond()).ok()
    }

    /// What the sticks show of `frame` (evaluated on `snapshot`) at `now_ms`, and when
    /// that may change with time alone. LEDs showing failures stay at full brightness
    /// when asked: those whose reason names a failed pod without a silence (or a node
    /// with one), or every LED while such a pod exists if the policy gave no reason.
    pub fn apply(
        &self,
        frame: &Frame,
        snapshot: &Snapshot,
        now_ms: u64,
    ) -> (Vec<Rgb>, Option<u64>) {
        let (percent, next) = self.at(now_ms);
        if percent >= 100 {
            return (frame.leds.clone(), next);
        }
        let unsilenced_failure = snapshot.counts.failed > snapshot.silenced.failed;
        let summaries = snapshot.node_summaries();
        let shows_failure = |led: u32| -> bool {
            match frame.reason_for(led) {
                None => unsilenced_failure,
                Some(reason) => {
                    reason.pods.iter().any(|&i| {
                        snapshot
                            .pods
                            .get(i as usize)
                            .is_some_and(|p| p.state == PodState::Failed && p.silence.is_none())
                    }) || reason.nodes.iter().any(|&i| {
                        summaries
                            .get(i as usize)
                            .is_some_and(|n| n.counts.failed > n.silenced.failed)
                    })
                }
            }
        };
        let dim = |c: u8| ((u32::from(c) * u32::from(percent) + 50) / 100) as u8;
        let leds = frame
            .leds
            .iter()
            .enumerate()
            .map(|(index, &colour)| {
                let led = u32::try_from(index).unwrap_or(u32::MAX);
                if self.keep_failures && shows_failure(led) {
                    return colour;
                }
                let capped = self
                    .brightness_cap
                    .map_or(colour, |cap| cap_brightness(colour, cap));
                Rgb::new(dim(capped.r), dim(capped.g), dim(capped.b))
            })
            .collect();
        (leds, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::LedReason;

    fn ms(text: &str) -> u64 {
        let t: Timestamp = text.parse().expect("RFC 3339");
        u64::try_from(t.as_millisecond()).expect("after 1970")
    }

    fn berlin(windows: &[&str]) -> QuietHours {
        let windows: Vec<String> = windows.iter().map(|w| w.to_string()).collect();
        QuietHours::new(&windows, "Europe/Berlin", false, None)
            .expect("valid")
            .expect("some windows")
    }

    #[test]
    fn a_window_across_midnight_dims_until_morning_and_says_when_it_ends() {
        let q = berlin(&["22:00-07:00@10%"]);
        // 21:59 local (UTC+1 in December).
        assert_eq!(
            q.at(ms("2026-12-02T20:59:00Z")),
            (100, Some(ms("2026-12-02T21:00:00Z")))
        );
        assert_eq!(
            q.at(ms("2026-12-02T21:00:00Z")),
            (10, Some(ms("2026-12-03T06:00:00Z")))
        );
        assert_eq!(
            q.at(ms("2026-12-02T23:30:00Z")).0,
            10,
            "after local midnight"
        );
        assert_eq!(q.at(ms("2026-12-03T05:59:59Z")).0, 10);
        assert_eq!(
            q.at(ms("2026-12-03T06:00:00Z")),
            (100, Some(ms("2026-12-03T21:00:00Z")))
        );
    }

    #[test]
    fn daylight_saving_changes_keep_local_times() {
        let q = berlin(&["01:00-04:00@0%"]);
        // 29 March 2026: 02:00 CET becomes 03:00 CEST. The window ends at 04:00
        // CEST = 02:00 UTC (two hours after it began at 01:00 CET = 00:00 UTC).
        // The clocks' change is a moment to look again, too.
        assert_eq!(
            q.at(ms("2026-03-29T00:00:00Z")),
            (0, Some(ms("2026-03-29T01:00:00Z")))
        );
        assert_eq!(
            q.at(ms("2026-03-29T01:00:00Z")),
            (0, Some(ms("2026-03-29T02:00:00Z")))
        );
        assert_eq!(q.at(ms("2026-03-29T01:30:00Z")).0, 0, "03:30 CEST");
        assert_eq!(q.at(ms("2026-03-29T02:00:00Z")).0, 100);
        // 25 October 2026: 03:00 CEST becomes 02:00 CET; 04:00 CET = 03:00 UTC.
        assert_eq!(
            q.at(ms("2026-10-24T23:00:00Z")),
            (0, Some(ms("2026-10-25T01:00:00Z")))
        );
        assert_eq!(
            q.at(ms("2026-10-25T01:00:00Z")),
            (0, Some(ms("2026-10-25T03:00:00Z")))
        );
        assert_eq!(
            q.at(ms("2026-10-25T02:30:00Z")).0,
            0,
            "03:30 CET, the second time"
        );
        // A window starting in the spring gap starts at the first instant after it.
        let gap = berlin(&["02:30-05:00@20%"]);
        assert_eq!(
            gap.at(ms("2026-03-29T00:30:00Z")).1,
            Some(ms("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn overlapping_windows_take_the_dimmest_and_bad_input_is_refused() {
        let q = berlin(&["20:00-23:00@50%", "22:00-06:00@10%"]);
        assert_eq!(q.at(ms("2026-12-02T19:30:00Z")).0, 50);
        assert_eq!(q.at(ms("2026-12-02T21:30:00Z")).0, 10);
        for bad in [
            "22:00-07:00",
            "22-07@10%",
            "22:00-07:00@150%",
            "25:00-07:00@1%",
            "07:00-07:00@1%",
            // An hour too large to multiply (found by fuzzing).
            "20220:00-07:00@10%",
        ] {
            let error = QuietHours::new(&[bad.to_string()], "UTC", false, None).expect_err(bad);
            assert!(
                error.to_string().contains("HH:MM-HH:MM@PERCENT%"),
                "{error}"
            );
        }
        let zone = QuietHours::new(&["22:00-07:00@1%".into()], "Mars/Olympus", false, None)
            .expect_err("no such zone");
        assert!(zone.to_string().contains("IANA"), "{zone}");
        assert!(
            QuietHours::new(&[], "UTC", false, None)
                .expect("valid")
                .is_none()
        );
    }

    #[test]
    fn failures_can_stay_bright_and_the_cap_applies_first() {
        let snapshot = Snapshot::from_json(
            r#"{"nowMs": 0, "node": {"name": "n"}, "pods": [
                {"name": "bad", "phase": "Failed"}, {"name": "ok", "phase": "Running", "ready": true}]}"#,
        )
        .expect("valid");
        let frame = Frame {
            leds: vec![
                Rgb::new(200, 0, 0),
                Rgb::new(0, 200, 0),
                Rgb::new(0, 100, 0),
            ],
            reasons: vec![
                LedReason {
                    leds: vec![0],
                    rule: "failed".into(),
                    pods: vec![0],
                    ..LedReason::default()
                },
                LedReason {
                    leds: vec![1],
                    rule: "running".into(),
                    pods: vec![1],
                    ..LedReason::default()
                },
            ],
            ..Frame::default()
        };
        let night = ms("2026-12-02T23:00:00Z");
        let keep = QuietHours::new(&["22:00-07:00@10%".into()], "UTC", true, Some(100))
            .expect("valid")
            .expect("some");
        let (leds, _) = keep.apply(&frame, &snapshot, night);
        assert_eq!(
            leds[0],
            Rgb::new(200, 0, 0),
            "the failure stays as the policy said"
        );
        assert_eq!(leds[1], Rgb::new(0, 10, 0), "capped to 100, then 10 %");
        assert_eq!(
            leds[2],
            Rgb::new(0, 100, 0),
            "no reason, and a failure exists"
        );
        let dim_all = QuietHours::new(&["22:00-07:00@10%".into()], "UTC", false, None)
            .expect("valid")
            .expect("some");
        let (leds, _) = dim_all.apply(&frame, &snapshot, night);
        assert_eq!(leds[0], Rgb::new(20, 0, 0));
        let (day, _) = dim_all.apply(&frame, &snapshot, ms("2026-12-02T12:00:00Z"));
        assert_eq!(day, frame.leds);
    }
}
