//! The `*.test.toml` format: what a test file says, parsed without touching the disk,
//! and each problem tied to its line.

use serde::Deserialize;
use toml::Spanned;

/// A test file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// A `.wasm`/`.wasm.gz` path relative to the test file, or `builtin`.
    pub plugin: Spanned<String>,
    /// The policy's settings, inline (written to the policy as JSON).
    #[serde(default)]
    pub settings: Option<Spanned<toml::Table>>,
    /// Or a settings file relative to the test file.
    #[serde(default)]
    pub settings_file: Option<Spanned<String>>,
    /// LEDs to evaluate for.
    #[serde(default = "default_leds")]
    pub leds: Spanned<u32>,
    /// The virtual clock's start (`now-ms` at time 0); default: the first snapshot
    /// file's `nowMs`, else 2025-11-24T16:00:00Z.
    #[serde(default)]
    pub start_ms: Option<u64>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Spanned<StepSpec>>,
}

fn default_leds() -> Spanned<u32> {
    Spanned::new(0..0, 8)
}

/// One `[[step]]`: inputs, a time, and what the frame after them must be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// A snapshot file (as `podlight snapshot` prints) replaces the node and its pods.
    #[serde(default)]
    pub snapshot: Option<Spanned<String>>,
    /// A recorded timeline (`podlight record`) plays through, record by record at
    /// their recorded spacing; the expectation is about the frame after the last.
    #[serde(default)]
    pub timeline: Option<Spanned<String>>,
    /// Node fields to set (`ready = false`, `memoryPressure = true`, …).
    #[serde(default)]
    pub node: Option<Spanned<toml::Table>>,
    /// Every pod on the node, replacing those before (snapshot JSON fields).
    #[serde(default)]
    pub pods: Option<Spanned<Vec<toml::Table>>>,
    /// Pods added or replaced, by namespace and name.
    #[serde(default)]
    pub set: Option<Spanned<Vec<toml::Table>>>,
    /// Pods removed: `namespace/name`, or `name` in `default`.
    #[serde(default)]
    pub remove: Option<Vec<String>>,
    /// Virtual time of this step, in ms from the start.
    #[serde(default)]
    pub at_ms: Option<u64>,
    /// Or this many ms after the previous step.
    #[serde(default)]
    pub after_ms: Option<u64>,
    /// Or when the previous frame asked to be evaluated again (`again-after-ms`).
    #[serde(default)]
    pub after_hint: Option<bool>,
    /// The expected LEDs: a string or a list of them (see `expect::parse_expected_leds`).
    #[serde(default)]
    pub expect: Option<Spanned<Expectation>>,
    /// The expected `again-after-ms`: milliseconds, or "none".
    #[serde(default)]
    pub again_after_ms: Option<Spanned<toml::Value>>,
    /// Text every LED's reason (its rule) contains.
    #[serde(default)]
    pub reason: Option<String>,
    /// The pods the frame's reasons name, as `namespace/name`, in any order.
    #[serde(default)]
    pub reason_pods: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expectation {
    One(String),
    Items(Vec<String>),
}

impl Expectation {
    pub fn items(&self) -> Vec<String> {
        match self {
            Expectation::One(item) => vec![item.clone()],
            Expectation::Items(items) => items.clone(),
        }
    }
}

/// A problem with a test file, at a line (1-based; 0 when the whole file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FileProblem {
    pub line: usize,
    pub message: String,
}

impl FileProblem {
    /// `LINE: message` (or ` message` for the whole file), to follow `FILE:`.
    pub fn located(&self) -> String {
        if self.line > 0 {
            format!("{}: {}", self.line, self.message)
        } else {
            format!(" {}", self.message)
        }
    }
}

/// Line numbers of byte offsets in one source text.
pub struct Lines<'a>(pub &'a str);

impl Lines<'_> {
    pub fn of(&self, offset: usize) -> usize {
        let end = offset.min(self.0.len());
        self.0.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub fn problem(&self, offset: usize, message: impl Into<String>) -> FileProblem {
        FileProblem {
            line: self.of(offset),
            message: message.into(),
        }
    }
}

impl TestFile {
    /// Parses a test file; a syntax error or an unknown key names its line.
    pub fn parse(text: &str) -> Result<TestFile, FileProblem> {
        let file: TestFile = toml::from_str(text).map_err(|error| FileProblem {
            line: error.span().map_or(0, |span| Lines(text).of(span.start)),
            message: error.message().trim().to_string(),
        })?;
        let lines = Lines(text);
        if file.steps.is_empty() {
            return Err(FileProblem {
                line: 0,
                message: "no [[step]]: a test needs at least one step with an `expect`".into(),
            });
        }
        if !file.steps.iter().any(|s| s.get_ref().expect.is_some()) {
            return Err(FileProblem {
                line: 0,
                message: "no step has an `expect`: such a test would pass whatever the policy does"
                    .into(),
            });
        }
        if file.settings.is_some() && file.settings_file.is_some() {
            let at = file.settings_file.as_ref().map_or(0, |s| s.span().start);
            return Err(lines.problem(at, "`settings` and `settings_file` both given: keep one"));
        }
        if *file.leds.get_ref() == 0 {
            return Err(lines.problem(file.leds.span().start, "leds = 0: a test needs a LED"));
        }
        for step in &file.steps {
            let spec = step.get_ref();
            let times = [
                spec.at_ms.is_some(),
                spec.after_ms.is_some(),
                spec.after_hint == Some(true),
            ];
            if times.iter().filter(|&&t| t).count() > 1 {
                return Err(lines.problem(
                    step.span().start,
                    "a step has one time: `at_ms`, `after_ms` or `after_hint`",
                ));
            }
            if spec.snapshot.is_some() && spec.timeline.is_some() {
                return Err(lines.problem(
                    step.span().start,
                    "a step reads `snapshot` or `timeline`, not both",
                ));
            }
        }
        Ok(file)
    }
}

/// Settings as the policy reads them: JSON.
pub fn settings_json(table: &toml::Table) -> String {
    serde_json::to_string(table).unwrap_or_else(|_| "{}".into())
}

/// A TOML table as JSON, for the snapshot types' own deserialisers (so pods and
/// nodes in a test file take exactly the fields snapshot JSON takes).
pub fn as_json(table: &toml::Table) -> serde_json::Value {
    serde_json::to_value(table).unwrap_or(serde_json::Value::Null)
}

/// Keys of a table, for messages.
pub fn keys(table: &toml::Table) -> String {
    table.keys().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_their_line() {
        let text = "plugin = \"builtin\"\n\n[[step]]\nexpectt = \"all red\"\n";
        let problem = TestFile::parse(text).unwrap_err();
        assert_eq!(problem.line, 4, "{problem}");
        assert!(problem.message.contains("expectt"), "{problem}");

        let no_expect = "plugin = \"builtin\"\n[[step]]\nat_ms = 5\n";
        assert!(
            TestFile::parse(no_expect)
                .unwrap_err()
                .message
                .contains("would pass whatever")
        );
        let two_times = "plugin = \"builtin\"\n[[step]]\nexpect = \"all red\"\n\n[[step]]\nat_ms = 1\nafter_ms = 2\nexpect = \"unchanged\"\n";
        assert_eq!(TestFile::parse(two_times).unwrap_err().line, 5);
    }

    #[test]
    fn expectations_are_one_string_or_a_list() {
        let text = "plugin = \"builtin\"\nleds = 4\n[[step]]\nexpect = [\"all off\", \"0 red\"]\n[[step]]\nexpect = \"unchanged\"\nagain_after_ms = \"none\"\n";
        let file = TestFile::parse(text).expect("valid");
        assert_eq!(*file.leds.get_ref(), 4);
        let first = file.steps[0].get_ref().expect.as_ref().expect("expect");
        assert_eq!(first.get_ref().items(), vec!["all off", "0 red"]);
        assert_eq!(Lines(text).of(file.steps[1].span().start), 5);
    }
}
