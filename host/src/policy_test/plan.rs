//! A test file made ready to run: referenced files read, pods and expectations
//! parsed, every problem tied to its file and line; then run against any evaluator.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::expect::{
    ExpectedHint, ExpectedLeds, Mismatch, compare, compare_reasons, parse_expected_hint,
    parse_expected_leds,
};
use super::file::{FileProblem, Lines, TestFile, as_json, keys, settings_json};
use crate::frame::{Frame, Rgb};
use crate::state::{NodeInfo, NodeSummary, PodInfo, Scope, Snapshot};

/// Where the virtual clock starts when nothing says: 2025-11-24T16:00:00Z.
pub const DEFAULT_START_MS: u64 = 1_764_000_000_000;

/// What a test runs: the built-in policy or a plugin file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginRef {
    Builtin,
    File(PathBuf),
}

#[derive(Debug)]
pub struct Plan {
    pub path: PathBuf,
    pub plugin: PluginRef,
    pub plugin_line: usize,
    pub settings: Option<String>,
    pub leds: u32,
    pub start_ms: u64,
    pub steps: Vec<PlannedStep>,
}

#[derive(Debug)]
pub struct PlannedStep {
    pub name: String,
    pub line: usize,
    pub changes: Vec<Change>,
    /// Recorded snapshots, by ms after the first, played before the expectation.
    pub timeline: Vec<(u64, Snapshot)>,
    pub time: StepTime,
    pub expect: Option<ExpectedLeds>,
    pub hint: Option<ExpectedHint>,
    pub reason: Option<String>,
    pub reason_pods: Option<Vec<String>>,
}

#[derive(Debug)]
pub enum Change {
    /// A snapshot file: the node and its pods, or in cluster scope every node with
    /// its counts and the pods in trouble.
    Replace(Box<Snapshot>),
    Node(serde_json::Map<String, serde_json::Value>),
    Pods(Vec<PodInfo>),
    Set(Vec<PodInfo>),
    Remove(Vec<(String, String)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepTime {
    Same,
    At(u64),
    After(u64),
    Hint,
}

/// A test file that cannot run, with where.
#[derive(Debug, thiserror::Error)]
#[error("{}:{}", path.display(), problem.located())]
pub struct PlanError {
    pub path: PathBuf,
    pub problem: FileProblem,
}

impl Plan {
    /// Reads a test file and everything it names, relative to its directory.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError {
            path: path.to_path_buf(),
            problem: FileProblem {
                line: 0,
                message: format!("cannot read the test file: {e}"),
            },
        })?;
        Plan::from_text(path, &text, &|target| std::fs::read_to_string(target))
    }

    /// A test file's `text` (read from `path`); `read_file` reads what it names,
    /// relative to the file's directory.
    pub fn from_text(
        path: &Path,
        text: &str,
        read_file: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Plan, PlanError> {
        let fail = |problem: FileProblem| PlanError {
            path: path.to_path_buf(),
            problem,
        };
        let file = TestFile::parse(text).map_err(fail)?;
        let lines = Lines(text);
        let dir = path.parent().unwrap_or(Path::new("."));
        let read = |name: &toml::Spanned<String>, what: &str| {
            let target = dir.join(name.get_ref());
            read_file(&target).map_err(|e| {
                lines.problem(
                    name.span().start,
                    format!("cannot read the {what} {}: {e}", target.display()),
                )
            })
        };
        let plugin = match file.plugin.get_ref().as_str() {
            "builtin" => PluginRef::Builtin,
            name => PluginRef::File(dir.join(name)),
        };
        let settings = match (&file.settings, &file.settings_file) {
            (Some(table), _) => Some(settings_json(table.get_ref())),
            (None, Some(name)) => Some(read(name, "settings file").map_err(fail)?),
            (None, None) => None,
        };
        let leds = *file.leds.get_ref();
        let mut first_snapshot_ms = None;
        let mut steps = Vec::new();
        for (index, step) in file.steps.iter().enumerate() {
            let line = lines.of(step.span().start);
            let spec = step.get_ref();
            let mut changes = Vec::new();
            let mut timeline = Vec::new();
            if let Some(name) = &spec.snapshot {
                let snapshot = Snapshot::from_json(&read(name, "snapshot").map_err(fail)?)
                    .map_err(|e| {
                        fail(lines.problem(name.span().start, format!("{}: {e}", name.get_ref())))
                    })?;
                first_snapshot_ms.get_or_insert(snapshot.now_ms);
                changes.push(Change::Replace(Box::new(snapshot)));
            }
            if let Some(name) = &spec.timeline {
                timeline = read_timeline(&read(name, "timeline").map_err(fail)?).map_err(|e| {
                    fail(lines.problem(name.span().start, format!("{}: {e}", name.get_ref())))
                })?;
                if let Some((_, first)) = timeline.first() {
                    first_snapshot_ms.get_or_insert(first.now_ms);
                }
            }
            if let Some(node) = &spec.node {
                let json = as_json(node.get_ref());
                let mut merged = serde_json::to_value(NodeInfo::default()).unwrap_or_default();
                merge(&mut merged, &json);
                serde_json::from_value::<NodeInfo>(merged).map_err(|e| {
                    fail(lines.problem(
                        node.span().start,
                        format!("node {{{}}}: {e}", keys(node.get_ref())),
                    ))
                })?;
                if let serde_json::Value::Object(map) = json {
                    changes.push(Change::Node(map));
                }
            }
            let pods = |list: &toml::Spanned<Vec<toml::Table>>| {
                list.get_ref()
                    .iter()
                    .map(|table| {
                        serde_json::from_value::<PodInfo>(as_json(table)).map_err(|e| {
                            fail(lines.problem(
                                list.span().start,
                                format!("a pod: {e} (the fields of snapshot JSON)"),
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            if let Some(list) = &spec.pods {
                changes.push(Change::Pods(pods(list)?));
            }
            if let Some(list) = &spec.set {
                changes.push(Change::Set(pods(list)?));
            }
            if let Some(names) = &spec.remove {
                let names = names
                    .iter()
                    .map(|n| match n.split_once('/') {
                        Some((ns, name)) => (ns.to_string(), name.to_string()),
                        None => ("default".to_string(), n.clone()),
                    })
                    .collect();
                changes.push(Change::Remove(names));
            }
            let time = match (spec.at_ms, spec.after_ms, spec.after_hint) {
                (Some(at), _, _) => StepTime::At(at),
                (_, Some(after), _) => StepTime::After(after),
                (_, _, Some(true)) => StepTime::Hint,
                _ => StepTime::Same,
            };
            let expect = spec
                .expect
                .as_ref()
                .map(|e| {
                    parse_expected_leds(&e.get_ref().items(), leds as usize)
                        .map_err(|m| fail(lines.problem(e.span().start, m)))
                })
                .transpose()?;
            let hint = spec
                .again_after_ms
                .as_ref()
                .map(|h| {
                    parse_expected_hint(h.get_ref())
                        .map_err(|m| fail(lines.problem(h.span().start, m)))
                })
                .transpose()?;
            steps.push(PlannedStep {
                reason: spec.reason.clone(),
                reason_pods: spec.reason_pods.clone(),
                name: spec
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("step {}", index + 1)),
                line,
                changes,
                timeline,
                time,
                expect,
                hint,
            });
        }
        Ok(Plan {
            path: path.to_path_buf(),
            plugin,
            plugin_line: lines.of(file.plugin.span().start),
            settings,
            leds,
            start_ms: file
                .start_ms
                .or(first_snapshot_ms)
                .unwrap_or(DEFAULT_START_MS),
            steps,
        })
    }
}

/// A recorded timeline: one snapshot JSON per line, by ms after the first.
pub fn read_timeline(text: &str) -> Result<Vec<(u64, Snapshot)>, String> {
    let mut records = Vec::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let snapshot =
            Snapshot::from_json(line).map_err(|e| format!("record on line {}: {e}", number + 1))?;
        records.push(snapshot);
    }
    let first = records
        .first()
        .map(|s| s.now_ms)
        .ok_or("an empty timeline: record one with `podlight record`")?;
    Ok(records
        .into_iter()
        .map(|s| (s.now_ms.saturating_sub(first), s))
        .collect())
}

fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
    if let (Some(base), Some(patch)) = (base.as_object_mut(), patch.as_object()) {
        for (key, value) in patch {
            base.insert(key.clone(), value.clone());
        }
    }
}

/// How one step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(Mismatch),
    /// The policy failed to evaluate, or the step could not run (e.g. `after_hint`
    /// with no hint before it).
    Error(String),
    /// Only inputs: nothing expected.
    NotChecked,
}

#[derive(Debug, Clone)]
pub struct StepResult {
    pub name: String,
    pub line: usize,
    /// Virtual time of the evaluation, in ms from the start.
    pub at_ms: u64,
    pub expected: Option<Vec<Rgb>>,
    pub frame: Option<Frame>,
    pub outcome: Outcome,
}

/// Evaluates a snapshot for a LED count at a `now-ms`.
pub type Evaluate<'a> = dyn FnMut(&Arc<Snapshot>, u32, u64) -> Result<Frame, String> + 'a;

/// Runs every step in order on a virtual clock and checks each expectation.
pub fn run(plan: &Plan, evaluate: &mut Evaluate<'_>) -> Vec<StepResult> {
    let mut node = NodeInfo::default();
    let mut pods: Vec<PodInfo> = Vec::new();
    // Cluster scope's nodes, once a cluster snapshot was read.
    let mut cluster: Option<Vec<NodeSummary>> = None;
    let mut clock = 0u64;
    let mut previous: Option<Frame> = None;
    let mut results = Vec::new();
    for step in &plan.steps {
        let mut result = StepResult {
            name: step.name.clone(),
            line: step.line,
            at_ms: clock,
            expected: None,
            frame: None,
            outcome: Outcome::NotChecked,
        };
        match step.time {
            StepTime::Same => {}
            StepTime::At(at) => clock = at,
            StepTime::After(ms) => clock += ms,
            StepTime::Hint => match previous.as_ref().and_then(|f| f.again_after_ms) {
                Some(ms) => clock += u64::from(ms),
                None => {
                    result.outcome = Outcome::Error(
                        "after_hint: the previous frame asked for no re-evaluation (no again-after-ms)".into(),
                    );
                    results.push(result);
                    continue;
                }
            },
        }
        for change in &step.changes {
            apply(change, &mut node, &mut pods, &mut cluster);
        }
        let mut frame = None;
        let mut evaluated_on = None;
        let mut failure = None;
        let timeline_start = clock;
        let records: Vec<(u64, Option<&Snapshot>)> = if step.timeline.is_empty() {
            vec![(0, None)]
        } else {
            step.timeline.iter().map(|(at, s)| (*at, Some(s))).collect()
        };
        for (offset, record) in records {
            if let Some(record) = record {
                apply(
                    &Change::Replace(Box::new(record.clone())),
                    &mut node,
                    &mut pods,
                    &mut cluster,
                );
                clock = timeline_start + offset;
            }
            let now = plan.start_ms + clock;
            let snapshot = Arc::new(match &cluster {
                Some(nodes) => Snapshot::cluster(nodes.clone(), pods.clone(), now),
                None => Snapshot::new(node.clone(), pods.clone(), now),
            });
            match evaluate(&snapshot, plan.leds, now) {
                Ok(f) => {
                    frame = Some(f);
                    evaluated_on = Some(snapshot);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        result.at_ms = clock;
        if let Some(error) = failure {
            result.outcome = Outcome::Error(format!("the policy failed: {error}"));
            results.push(result);
            continue;
        }
        let Some(frame) = frame else {
            results.push(result);
            continue;
        };
        let expected = match &step.expect {
            Some(ExpectedLeds::Exactly(leds)) => Some(leds.clone()),
            Some(ExpectedLeds::Unchanged) => match &previous {
                Some(before) => Some(before.leds.clone()),
                None => {
                    result.outcome = Outcome::Error(
                        "`unchanged` in the first step: there is no frame before".into(),
                    );
                    results.push(result);
                    continue;
                }
            },
            None => None,
        };
        let checks_reasons = step.reason.is_some() || step.reason_pods.is_some();
        if expected.is_some() || step.hint.is_some() || checks_reasons {
            let leds = expected.as_deref().unwrap_or(&frame.leds);
            let mut mismatch = compare(leds, step.hint, &frame);
            if let Some(snapshot) = &evaluated_on {
                mismatch.reasons = compare_reasons(
                    step.reason.as_deref(),
                    step.reason_pods.as_deref(),
                    &frame,
                    snapshot,
                );
            }
            result.outcome = if mismatch.is_empty() {
                Outcome::Passed
            } else {
                Outcome::Failed(mismatch)
            };
        }
        result.expected = expected;
        result.frame = Some(frame.clone());
        previous = Some(frame);
        results.push(result);
    }
    results
}

fn apply(
    change: &Change,
    node: &mut NodeInfo,
    pods: &mut Vec<PodInfo>,
    cluster: &mut Option<Vec<NodeSummary>>,
) {
    match change {
        Change::Replace(snapshot) => {
            node.clone_from(&snapshot.node);
            pods.clone_from(&snapshot.pods);
            *cluster = (snapshot.scope == Scope::Cluster).then(|| snapshot.nodes.clone());
        }
        Change::Node(fields) => {
            let mut value = serde_json::to_value(&*node).unwrap_or_default();
            merge(&mut value, &serde_json::Value::Object(fields.clone()));
            if let Ok(merged) = serde_json::from_value(value) {
                *node = merged;
            }
        }
        Change::Pods(p) => *pods = p.clone(),
        Change::Set(set) => {
            for pod in set {
                match pods
                    .iter_mut()
                    .find(|p| p.namespace == pod.namespace && p.name == pod.name)
                {
                    Some(existing) => *existing = pod.clone(),
                    None => pods.push(pod.clone()),
                }
            }
        }
        Change::Remove(names) => {
            pods.retain(|p| {
                !names
                    .iter()
                    .any(|(ns, n)| &p.namespace == ns && &p.name == n)
            });
        }
    }
}
