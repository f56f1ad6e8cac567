//! `podlight test`: runs `*.test.toml` files against their policies on a virtual clock.
//! Exit 0 when every expectation holds, 1 when one does not, 2 when a test file or a
//! plugin cannot be read (named with its file and line).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use podlight::policy_test::TEST_FILE_SUFFIX;
use podlight::policy_test::plan::{Outcome, Plan, PluginRef, StepResult, run};
use podlight::policy_test::report::{SuiteReport, explain, heading, junit};
use podlight::policy_test::update::rewrite_expectations;

use super::Exit;
use super::args::EngineArgs;

#[derive(Args)]
pub struct TestArgs {
    /// Test files (`*.test.toml`) or directories searched for them; default: `.`.
    paths: Vec<PathBuf>,
    /// Rewrite each step's `expect` (and a present `again_after_ms`) to what the policy
    /// produced: golden files. Review the diff before committing it.
    #[arg(long)]
    update: bool,
    /// Also write the results as JUnit XML to this file, for CI.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Instead of the steps, check the policy of each test file (with its settings):
    /// `colour-vision` flags every pair of failed, pending and running whose colours
    /// people with protanopia, deuteranopia or tritanopia cannot tell apart.
    #[arg(long, value_enum)]
    lint: Option<Lint>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Lint {
    ColourVision,
}

/// Every test file under `paths`, sorted, each once.
fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let default = [PathBuf::from(".")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    for path in paths {
        if path.is_dir() {
            collect(path, &mut files)
                .with_context(|| format!("cannot search {} for tests", path.display()))?;
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            // Build output and dependencies hold no tests of this project's.
            if !matches!(name.as_str(), "target" | "node_modules" | ".git") {
                collect(&path, files)?;
            }
        } else if name.ends_with(TEST_FILE_SUFFIX) {
            files.push(path);
        }
    }
    Ok(())
}

pub fn test(args: TestArgs) -> Result<()> {
    let files = test_files(&args.paths)?;
    if files.is_empty() {
        eprintln!(
            "podlight test: no *{TEST_FILE_SUFFIX} files under {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Err(Exit(2).into());
    }
    let engine = args.engine.engine()?;
    if let Some(Lint::ColourVision) = args.lint {
        return lint_colour_vision(&args.engine, &engine, &files);
    }
    let colour = std::io::stdout().is_terminal();
    let mut suites = Vec::new();
    let (mut passed, mut failed, mut broken) = (0usize, 0usize, 0usize);
    for path in &files {
        let file = path.display().to_string();
        let results = match load_and_run(&args.engine, &engine, path) {
            Ok(results) => results,
            Err(reason) => {
                outln!("ERROR {reason}")?;
                broken += 1;
                suites.push(SuiteReport {
                    file,
                    results: Vec::new(),
                    broken: Some(reason),
                });
                continue;
            }
        };
        for result in &results {
            outln!("{}", heading(&file, result))?;
            let explanation = explain(result, colour);
            if !explanation.is_empty() {
                outln!("{}", explanation.trim_end())?;
            }
            match result.outcome {
                Outcome::Passed => passed += 1,
                Outcome::Failed(_) | Outcome::Error(_) => failed += 1,
                Outcome::NotChecked => {}
            }
        }
        if args.update {
            update(path, &results)?;
        }
        suites.push(SuiteReport {
            file,
            results,
            broken: None,
        });
    }
    if let Some(junit_path) = &args.junit {
        std::fs::write(junit_path, junit(&suites))
            .with_context(|| format!("cannot write the JUnit report {}", junit_path.display()))?;
    }
    outln!(
        "{} files: {passed} passed, {failed} failed{}{}",
        files.len(),
        if broken > 0 {
            format!(", {broken} could not run")
        } else {
            String::new()
        },
        if args.update {
            " (expectations updated)"
        } else {
            ""
        }
    )?;
    if broken > 0 {
        Err(Exit(2).into())
    } else if failed > 0 && !args.update {
        Err(Exit(1).into())
    } else {
        Ok(())
    }
}

/// The colour-vision lint over each test file's policy and settings. Exit 1 when a
/// pair is flagged, 2 when a file or policy cannot be read.
fn lint_colour_vision(
    args: &EngineArgs,
    engine: &podlight::policy::PolicyEngine,
    files: &[PathBuf],
) -> Result<()> {
    use podlight::policy_test::colour_vision::{
        LINTED_STATES, Shown, THRESHOLD, dominant, lint, sample_snapshot,
    };
    let (mut flagged, mut broken) = (0usize, 0usize);
    for path in files {
        let shown = (|| -> Result<Vec<(&'static str, Shown)>, String> {
            let (plan, mut instance) = start_policy(args, engine, path)?;
            LINTED_STATES
                .iter()
                .map(|&state| {
                    let now = plan.start_ms;
                    let snapshot = std::sync::Arc::new(sample_snapshot(state, now));
                    let frame = instance
                        .evaluate_at(&snapshot, plan.leds, now)
                        .map_err(|e| e.to_string())?;
                    // Animated: the frame a moment later (when it asked) differs.
                    let animated = match frame.again_after_ms {
                        Some(ms) => {
                            let later = now + u64::from(ms);
                            instance
                                .evaluate_at(&snapshot, plan.leds, later)
                                .map_err(|e| e.to_string())?
                                .leds
                                != frame.leds
                        }
                        None => false,
                    };
                    let colour = dominant(&frame.leds);
                    Ok((state.name(), Shown { colour, animated }))
                })
                .collect()
        })();
        let file = path.display();
        let shown = match shown {
            Ok(shown) => shown,
            Err(reason) => {
                outln!("ERROR {reason}")?;
                broken += 1;
                continue;
            }
        };
        let findings = lint(&shown);
        let states: Vec<String> = shown
            .iter()
            .map(|(state, s)| format!("{state} {}", s.colour))
            .collect();
        if findings.is_empty() {
            outln!("ok    {file}: {} apart for all three", states.join(", "))?;
        }
        for finding in &findings {
            outln!("FLAG  {file}: {}", finding.describe())?;
        }
        flagged += findings
            .iter()
            .filter(|f| !f.told_apart_by_animation)
            .count();
    }
    outln!(
        "{} files: {flagged} pairs of states alike under a colour vision deficiency (chromatic CIEDE2000 < {THRESHOLD}){}",
        files.len(),
        if broken > 0 {
            format!(", {broken} could not run")
        } else {
            String::new()
        }
    )?;
    if broken > 0 {
        Err(Exit(2).into())
    } else if flagged > 0 {
        Err(Exit(1).into())
    } else {
        Ok(())
    }
}

/// A test file's plan and its policy started with its settings.
fn start_policy(
    args: &EngineArgs,
    engine: &podlight::policy::PolicyEngine,
    path: &Path,
) -> Result<(Plan, podlight::policy::PolicyInstance), String> {
    let plan = Plan::load(path).map_err(|e| e.to_string())?;
    let at_plugin = |what: String| format!("{}:{}: {what}", path.display(), plan.plugin_line);
    let policy = match &plan.plugin {
        PluginRef::Builtin => args.load(engine, "builtin"),
        PluginRef::File(file) => args.load(engine, &file.to_string_lossy()),
    }
    .map_err(|e| at_plugin(e.to_string()))?;
    let (instance, complaint) = std::sync::Arc::new(policy)
        .instantiate_with_complaint(plan.settings.clone())
        .map_err(|e| at_plugin(format!("the policy does not start: {e}")))?;
    if let Some(complaint) = complaint {
        return Err(at_plugin(format!(
            "the policy refused the test's settings: {complaint}"
        )));
    }
    Ok((plan, instance))
}

/// Loads a test file and its policy and runs it; a reason naming the file (and line)
/// when either cannot be read.
fn load_and_run(
    args: &EngineArgs,
    engine: &podlight::policy::PolicyEngine,
    path: &Path,
) -> Result<Vec<StepResult>, String> {
    let (plan, mut instance) = start_policy(args, engine, path)?;
    Ok(run(&plan, &mut |snapshot, leds, now| {
        instance
            .evaluate_at(snapshot, leds, now)
            .map_err(|e| e.to_string())
    }))
}

fn update(path: &Path, results: &[StepResult]) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} to update it", path.display()))?;
    let updated = rewrite_expectations(&text, results)
        .map_err(|e| anyhow::anyhow!("cannot update {}: {e}", path.display()))?;
    if updated != text {
        std::fs::write(path, updated)
            .with_context(|| format!("cannot write the updated {}", path.display()))?;
    }
    Ok(())
}
