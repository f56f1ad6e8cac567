//! `--update`: each step's `expect` (and a present `again_after_ms`) rewritten to what
//! the policy produced, everything else in the file — comments, order, layout — kept.

use toml_edit::{DocumentMut, Item, value};

use super::expect::written_expectation;
use super::plan::StepResult;

/// The test file's text with the steps' expectations set from `results` (one per
/// `[[step]]`, in order). Steps that produced no frame keep theirs.
pub fn rewrite_expectations(text: &str, results: &[StepResult]) -> Result<String, String> {
    let mut document: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    let steps = document
        .get_mut("step")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or("no [[step]] to update")?;
    for (step, result) in steps.iter_mut().zip(results) {
        let Some(frame) = &result.frame else {
            continue;
        };
        if step.contains_key("expect") {
            step["expect"] = value(written_expectation(&frame.leds));
        }
        if step.contains_key("again_after_ms") {
            step["again_after_ms"] = match frame.again_after_ms {
                Some(ms) => value(i64::from(ms)),
                None => value("none"),
            };
        }
    }
    Ok(document.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, Rgb};
    use crate::policy_test::plan::Outcome;

    #[test]
    fn only_expectations_change() {
        let text = "# a comment\nplugin = \"builtin\"\n\n[[step]]\nname = \"one\" # why\nexpect = \"all #ff0000\"\nagain_after_ms = 5\n\n[[step]]\nat_ms = 3\n";
        let result = |leds: Vec<Rgb>| StepResult {
            name: String::new(),
            line: 0,
            at_ms: 0,
            expected: None,
            frame: Some(Frame::of(leds, None)),
            outcome: Outcome::Passed,
        };
        let updated = rewrite_expectations(
            text,
            &[result(vec![Rgb::new(0, 255, 0); 2]), result(vec![Rgb::OFF])],
        )
        .expect("rewritten");
        assert!(
            updated.contains("# a comment") && updated.contains("# why"),
            "{updated}"
        );
        assert!(updated.contains("expect = \"all #00ff00\""), "{updated}");
        assert!(updated.contains("again_after_ms = \"none\""), "{updated}");
        assert!(
            !updated.contains("expect = \"all #000000\""),
            "a step without an expectation gets none: {updated}"
        );
    }
}
