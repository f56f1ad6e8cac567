//! How results read: a failure shows expected and actual LEDs one above the other
//! (colour blocks on a terminal, `#rrggbb` always) with each differing LED; JUnit XML
//! for CI.

use std::fmt::Write as _;

use super::expect::{ExpectedHint, Mismatch};
use super::plan::{Outcome, StepResult};
use crate::frame::{Rgb, ansi_blocks, hex_codes};

fn leds_row(leds: &[Rgb], colour: bool) -> String {
    if colour {
        ansi_blocks(leds)
    } else {
        hex_codes(leds)
    }
}

fn hint_text(hint: Option<u32>) -> String {
    hint.map_or_else(|| "none".to_string(), |ms| format!("{ms} ms"))
}

fn expected_hint_text(hint: ExpectedHint) -> String {
    match hint {
        ExpectedHint::None => "none".into(),
        ExpectedHint::Ms(ms) => format!("{ms} ms"),
    }
}

/// The lines explaining one failed or broken step, indented under its heading.
pub fn explain(result: &StepResult, colour: bool) -> String {
    let mut text = String::new();
    match &result.outcome {
        Outcome::Failed(Mismatch {
            leds,
            hint,
            reasons,
        }) => {
            for problem in reasons {
                let _ = writeln!(
                    text,
                    "    {}",
                    crate::policy::untrusted::sanitize(problem, 600)
                );
            }
            if !leds.is_empty() {
                if let (Some(expected), Some(frame)) = (&result.expected, &result.frame) {
                    let _ = writeln!(text, "    expected  {}", leds_row(expected, colour));
                    let _ = writeln!(text, "    actual    {}", leds_row(&frame.leds, colour));
                }
                for (index, want, got) in leds {
                    let _ = writeln!(text, "    LED {index}: expected {want}, got {got}");
                }
            }
            if let Some((want, got)) = hint {
                let _ = writeln!(
                    text,
                    "    again-after-ms: expected {}, got {}",
                    expected_hint_text(*want),
                    hint_text(*got)
                );
            }
        }
        Outcome::Error(message) => {
            let _ = writeln!(text, "    {message}");
        }
        Outcome::Passed | Outcome::NotChecked => {}
    }
    text
}

/// One line per step: `ok`, `FAIL` or `ERROR`, its name, line and virtual time.
pub fn heading(file: &str, result: &StepResult) -> String {
    let verdict = match result.outcome {
        Outcome::Passed => "ok   ",
        Outcome::Failed(_) => "FAIL ",
        Outcome::Error(_) => "ERROR",
        Outcome::NotChecked => "-    ",
    };
    format!(
        "{verdict} {file}:{} {} (t={} ms)",
        result.line, result.name, result.at_ms
    )
}

/// A file's results as JUnit XML `testsuite`; a file that could not run is one
/// failing `testcase` with the reason.
pub struct SuiteReport {
    pub file: String,
    pub results: Vec<StepResult>,
    pub broken: Option<String>,
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control characters.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The whole run as JUnit XML (one `testsuite` per file, one `testcase` per step
/// with an expectation).
pub fn junit(suites: &[SuiteReport]) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"podlight test\">\n",
    );
    for suite in suites {
        let cases: Vec<&StepResult> = suite
            .results
            .iter()
            .filter(|r| r.outcome != Outcome::NotChecked)
            .collect();
        let failures = cases
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .count();
        let errors = cases
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Error(_)))
            .count()
            + usize::from(suite.broken.is_some());
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">",
            xml_escape(&suite.file),
            cases.len() + usize::from(suite.broken.is_some())
        );
        if let Some(reason) = &suite.broken {
            let _ = writeln!(
                xml,
                "    <testcase classname=\"{0}\" name=\"load\">\n      <error message=\"{1}\">{1}</error>\n    </testcase>",
                xml_escape(&suite.file),
                xml_escape(reason)
            );
        }
        for case in cases {
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml_escape(&suite.file),
                xml_escape(&format!("{} (line {})", case.name, case.line))
            );
            match &case.outcome {
                Outcome::Failed(_) => {
                    let _ = writeln!(
                        xml,
                        ">\n      <failure message=\"the frame differs\">{}</failure>\n    </testcase>",
                        xml_escape(&explain(case, false))
                    );
                }
                Outcome::Error(message) => {
                    let _ = writeln!(
                        xml,
                        ">\n      <error message=\"{}\"/>\n    </testcase>",
                        xml_escape(message)
                    );
                }
                _ => xml.push_str("/>\n"),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    fn failed() -> StepResult {
        StepResult {
            name: "crash <loop>".into(),
            line: 7,
            at_ms: 250,
            expected: Some(vec![Rgb::new(255, 0, 0), Rgb::OFF]),
            frame: Some(Frame::of(vec![Rgb::new(0, 255, 0), Rgb::OFF], None)),
            outcome: Outcome::Failed(Mismatch {
                leds: vec![(0, Rgb::new(255, 0, 0), Rgb::new(0, 255, 0))],
                hint: Some((ExpectedHint::Ms(250), None)),
                reasons: Vec::new(),
            }),
        }
    }

    #[test]
    fn a_failure_shows_both_frames_and_each_difference() {
        let text = explain(&failed(), false);
        assert!(text.contains("expected  #ff0000 #000000"), "{text}");
        assert!(text.contains("actual    #00ff00 #000000"), "{text}");
        assert!(
            text.contains("LED 0: expected #ff0000, got #00ff00"),
            "{text}"
        );
        assert!(
            text.contains("again-after-ms: expected 250 ms, got none"),
            "{text}"
        );
        assert!(explain(&failed(), true).contains("\x1b[38;2;255;0;0m"));
        assert!(heading("a.test.toml", &failed()).starts_with("FAIL  a.test.toml:7"));
    }

    #[test]
    fn junit_counts_and_escapes() {
        let xml = junit(&[SuiteReport {
            file: "x.test.toml".into(),
            results: vec![failed()],
            broken: None,
        }]);
        assert!(
            xml.contains("tests=\"1\" failures=\"1\" errors=\"0\""),
            "{xml}"
        );
        assert!(xml.contains("crash &lt;loop&gt; (line 7)"), "{xml}");
        assert!(!xml.contains("\x1b"), "no terminal colours in XML");
    }
}
