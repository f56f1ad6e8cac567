//! What a test expects of a frame, written by hand: `all #00ff00`, `0-2 #ff0000`,
//! `#ff0000 #000000*7`, `unchanged`; and how a frame differs from it.

use crate::frame::{Frame, Rgb};

/// One step's expectation of the LEDs, resolved for a LED count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedLeds {
    /// The same LEDs as the previous step's frame.
    Unchanged,
    Exactly(Vec<Rgb>),
}

/// One step's expectation of `again-after-ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedHint {
    /// No re-evaluation asked for.
    None,
    Ms(u32),
}

/// Parses an expectation: each item sets some LEDs, later items over earlier ones,
/// and every LED must end up set — a LED nobody wrote an expectation for is an error,
/// never a pass. Items:
/// - `unchanged` (alone): the previous frame's LEDs;
/// - `all COLOUR`;
/// - `N COLOUR`, `A-B COLOUR`, `A.. COLOUR`: one LED, a range, from A to the end;
/// - a sequence from LED 0: `COLOUR COLOUR*N …`.
///
/// Colours are `#rrggbb` (or off, red, green, blue, yellow, white).
pub fn parse_expected_leds(items: &[String], led_count: usize) -> Result<ExpectedLeds, String> {
    if items.len() == 1 && items[0].trim() == "unchanged" {
        return Ok(ExpectedLeds::Unchanged);
    }
    if items.is_empty() {
        return Err("an empty expectation: write the colours, `all #rrggbb` or `unchanged`".into());
    }
    let mut leds: Vec<Option<Rgb>> = vec![None; led_count];
    for item in items {
        let words: Vec<&str> = item.split_whitespace().collect();
        match words.as_slice() {
            [] => return Err("an empty item in the expectation".into()),
            ["unchanged"] => {
                return Err("`unchanged` stands alone: it means every LED as before".into());
            }
            ["all", colour] => {
                let colour = Rgb::parse(colour)?;
                leds.iter_mut().for_each(|led| *led = Some(colour));
            }
            [range, colour] if range.starts_with(|c: char| c.is_ascii_digit()) => {
                let (from, to) = parse_range(range, led_count)?;
                let colour = Rgb::parse(colour)?;
                leds[from..=to]
                    .iter_mut()
                    .for_each(|led| *led = Some(colour));
            }
            sequence => {
                let mut index = 0;
                for word in sequence {
                    let (colour, times) = match word.split_once('*') {
                        Some((colour, times)) => (
                            colour,
                            times
                                .parse::<usize>()
                                .map_err(|_| format!("{word:?}: after `*` comes a count"))?,
                        ),
                        None => (*word, 1),
                    };
                    let colour = Rgb::parse(colour)?;
                    for _ in 0..times {
                        let led = leds.get_mut(index).ok_or_else(|| {
                            format!("{item:?} sets more than the {led_count} LEDs the test has")
                        })?;
                        *led = Some(colour);
                        index += 1;
                    }
                }
            }
        }
    }
    let unset: Vec<usize> = (0..led_count).filter(|&i| leds[i].is_none()).collect();
    if let (Some(first), Some(last)) = (unset.first(), unset.last()) {
        return Err(format!(
            "LEDs {} have no expected colour (of {led_count}): set every LED, e.g. with `all #000000` first",
            if first == last {
                first.to_string()
            } else {
                format!("{first}–{last}")
            }
        ));
    }
    Ok(ExpectedLeds::Exactly(leds.into_iter().flatten().collect()))
}

/// `N`, `A-B` or `A..` within `led_count` LEDs, as an inclusive range.
fn parse_range(text: &str, led_count: usize) -> Result<(usize, usize), String> {
    let number = |s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("{text:?} is not a LED index or range (N, A-B or A..)"))
    };
    let (from, to) = if let Some(from) = text.strip_suffix("..") {
        (number(from)?, led_count.saturating_sub(1))
    } else if let Some((from, to)) = text.split_once('-') {
        (number(from)?, number(to)?)
    } else {
        let only = number(text)?;
        (only, only)
    };
    if from > to || to >= led_count {
        return Err(format!(
            "LEDs {text} are not within 0–{} (the test has {led_count} LEDs)",
            led_count.saturating_sub(1)
        ));
    }
    Ok((from, to))
}

/// Parses `again_after_ms`: a number of milliseconds, or `"none"`.
pub fn parse_expected_hint(value: &toml::Value) -> Result<ExpectedHint, String> {
    match value {
        toml::Value::String(s) if s == "none" => Ok(ExpectedHint::None),
        toml::Value::Integer(ms) => u32::try_from(*ms)
            .map(ExpectedHint::Ms)
            .map_err(|_| format!("again_after_ms = {ms} is out of range")),
        other => Err(format!(
            "again_after_ms is a number of milliseconds or \"none\", not {other}"
        )),
    }
}

/// How a frame differs from what a step expected; empty when it matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mismatch {
    /// (LED, expected, actual) for each LED that differs.
    pub leds: Vec<(usize, Rgb, Rgb)>,
    /// (expected, actual) when `again-after-ms` differs.
    pub hint: Option<(ExpectedHint, Option<u32>)>,
    /// What differs in the reasons the policy gave (`reason`, `reason_pods`).
    pub reasons: Vec<String>,
}

impl Mismatch {
    pub fn is_empty(&self) -> bool {
        self.leds.is_empty() && self.hint.is_none() && self.reasons.is_empty()
    }
}

/// Checks the frame's reasons: every LED's rule contains `rule` (an LED with no
/// reason has [`NO_REASON`](crate::explain::NO_REASON)), and the pods the reasons
/// name, as `namespace/name`, are exactly `pods`.
pub fn compare_reasons(
    rule: Option<&str>,
    pods: Option<&[String]>,
    frame: &Frame,
    snapshot: &crate::state::Snapshot,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(rule) = rule {
        for led in 0..frame.leds.len() {
            let led = u32::try_from(led).unwrap_or(u32::MAX);
            let said = frame
                .reason_for(led)
                .map_or(crate::explain::NO_REASON, |r| r.rule.as_str());
            if !said.contains(rule) {
                problems.push(format!(
                    "LED {led}: reason {said:?} does not contain {rule:?}"
                ));
            }
        }
    }
    if let Some(want) = pods {
        let mut named: Vec<String> = frame
            .reasons
            .iter()
            .flat_map(|r| &r.pods)
            .filter_map(|&i| snapshot.pods.get(i as usize))
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        named.sort();
        named.dedup();
        let mut want = want.to_vec();
        want.sort();
        want.dedup();
        if named != want {
            problems.push(format!(
                "the reasons name pods [{}], expected [{}]",
                named.join(", "),
                want.join(", ")
            ));
        }
    }
    problems
}

/// Compares a frame with the expected LEDs (already resolved: `unchanged` is the
/// previous frame's) and hint. A frame of another length differs at every LED the
/// two do not share, shown as off on the missing side.
pub fn compare(expected: &[Rgb], hint: Option<ExpectedHint>, actual: &Frame) -> Mismatch {
    let len = expected.len().max(actual.leds.len());
    let leds = (0..len)
        .filter_map(|i| {
            let want = expected.get(i).copied().unwrap_or(Rgb::OFF);
            let got = actual.leds.get(i).copied().unwrap_or(Rgb::OFF);
            (want != got || i >= expected.len() || i >= actual.leds.len()).then_some((i, want, got))
        })
        .collect();
    let hint = hint.and_then(|want| {
        let matches = match want {
            ExpectedHint::None => actual.again_after_ms.is_none(),
            ExpectedHint::Ms(ms) => actual.again_after_ms == Some(ms),
        };
        (!matches).then_some((want, actual.again_after_ms))
    });
    Mismatch {
        leds,
        hint,
        reasons: Vec::new(),
    }
}

/// The shortest expectation that matches `leds` exactly, for `--update`: `all C`
/// when every LED agrees, else a run-length sequence (`#ff0000 #000000*7`).
pub fn written_expectation(leds: &[Rgb]) -> String {
    match leds.split_first() {
        Some((first, rest)) if rest.iter().all(|c| c == first) => format!("all {first}"),
        _ => {
            let mut runs: Vec<(Rgb, usize)> = Vec::new();
            for &led in leds {
                match runs.last_mut() {
                    Some((colour, count)) if *colour == led => *count += 1,
                    _ => runs.push((led, 1)),
                }
            }
            runs.iter()
                .map(|(colour, count)| match count {
                    1 => colour.to_string(),
                    n => format!("{colour}*{n}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Rgb = Rgb::new(255, 0, 0);
    const GREEN: Rgb = Rgb::new(0, 255, 0);

    fn items(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn exactly(list: &[&str], count: usize) -> Vec<Rgb> {
        match parse_expected_leds(&items(list), count) {
            Ok(ExpectedLeds::Exactly(leds)) => leds,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    #[test]
    fn shorthands_ranges_and_sequences() {
        assert_eq!(exactly(&["all #00ff00"], 3), vec![GREEN; 3]);
        assert_eq!(
            exactly(&["all off", "1 red"], 3),
            vec![Rgb::OFF, RED, Rgb::OFF]
        );
        assert_eq!(
            exactly(&["0-1 #ff0000", "2.. green"], 4),
            vec![RED, RED, GREEN, GREEN]
        );
        assert_eq!(
            exactly(&["#ff0000 #00ff00*2 off"], 4),
            vec![RED, GREEN, GREEN, Rgb::OFF]
        );
        assert_eq!(
            parse_expected_leds(&items(&["unchanged"]), 8),
            Ok(ExpectedLeds::Unchanged)
        );
    }

    #[test]
    fn a_led_without_an_expectation_is_an_error_not_a_pass() {
        let error = parse_expected_leds(&items(&["0-2 red"]), 8).unwrap_err();
        assert!(
            error.contains("LEDs 3–7 have no expected colour"),
            "{error}"
        );
        assert!(parse_expected_leds(&[], 8).is_err());
        assert!(parse_expected_leds(&items(&["red*9"]), 8).is_err());
        assert!(parse_expected_leds(&items(&["6-9 red"]), 8).is_err());
        assert!(parse_expected_leds(&items(&["all #12345"]), 8).is_err());
        assert!(parse_expected_leds(&items(&["all red", "unchanged"]), 8).is_err());
    }

    #[test]
    fn a_mismatch_is_found_whichever_way_it_differs() {
        let frame = |leds: Vec<Rgb>, again| Frame::of(leds, again);
        assert!(compare(&[RED, GREEN], None, &frame(vec![RED, GREEN], Some(5))).is_empty());
        let wrong = compare(&[RED, GREEN], None, &frame(vec![RED, RED], None));
        assert_eq!(wrong.leds, vec![(1, GREEN, RED)]);
        // Expected off, got a colour; and the other way round.
        assert_eq!(
            compare(&[Rgb::OFF], None, &frame(vec![RED], None)).leds,
            vec![(0, Rgb::OFF, RED)]
        );
        assert_eq!(
            compare(&[RED], None, &frame(vec![Rgb::OFF], None)).leds,
            vec![(0, RED, Rgb::OFF)]
        );
        // A shorter frame differs even where the missing LEDs would be off.
        assert_eq!(
            compare(&[Rgb::OFF; 2], None, &frame(vec![Rgb::OFF], None))
                .leds
                .len(),
            1
        );
        let hint = compare(&[RED], Some(ExpectedHint::Ms(250)), &frame(vec![RED], None));
        assert_eq!(hint.hint, Some((ExpectedHint::Ms(250), None)));
        let none = compare(
            &[RED],
            Some(ExpectedHint::None),
            &frame(vec![RED], Some(250)),
        );
        assert_eq!(none.hint, Some((ExpectedHint::None, Some(250))));
    }

    #[test]
    fn updates_write_the_shortest_exact_expectation() {
        assert_eq!(written_expectation(&[GREEN; 8]), "all #00ff00");
        let mixed = [RED, RED, GREEN, Rgb::OFF, Rgb::OFF, Rgb::OFF];
        let written = written_expectation(&mixed);
        assert_eq!(written, "#ff0000*2 #00ff00 #000000*3");
        assert_eq!(exactly(&[&written], 6), mixed.to_vec());
    }
}
