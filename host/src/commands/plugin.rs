//! `podlight plugin check` and `podlight plugin compile`.

use super::args::EngineArgs;
use anyhow::{Context, Result};
use clap::Args;
use podlight::policy::compile::{EXIT_INVALID, limit_this_process};
use podlight::policy::{Backend, CompileBudget, EngineOptions, PolicyEngine, PolicyError};
use podlight::state::Snapshot;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct CheckArgs {
    /// A .wasm or .wasm.gz component, or `builtin`.
    plugin: String,
    #[command(flatten)]
    engine: EngineArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn plugin_check(args: CheckArgs) -> Result<()> {
    let json = args.json;
    let engine = args.engine.engine()?;
    let policy = Arc::new(args.engine.load(&engine, &args.plugin)?);
    // A plugin that cannot even start on an empty node is not valid.
    let mut instance = policy.instantiate(None)?;
    let empty = Arc::new(Snapshot::new(Default::default(), Vec::new(), 0));
    instance.evaluate(&empty, 1)?;
    let info = policy.info();
    if json {
        outln!("{}", serde_json::to_string_pretty(info)?)?;
        return Ok(());
    }
    outln!("plugin:     {}", info.name)?;
    outln!(
        "contract:   podlight:policy@{} (host loads {})",
        info.contract_version,
        podlight::policy::supported_versions()
    )?;
    let size = if info.gzip {
        format!(
            "{} bytes gzip, {} bytes component",
            info.file_bytes, info.component_bytes
        )
    } else {
        format!("{} bytes", info.component_bytes)
    };
    outln!("size:       {size}")?;
    outln!("sha256:     {}", info.sha256)?;
    outln!("backend:    {}", engine.options().backend.name())?;
    outln!("imports:    {}", info.imports.len())?;
    for import in &info.imports {
        outln!("  {import}")?;
    }
    outln!("ok: loads, starts and evaluates an empty node")?;
    Ok(())
}

#[derive(Args)]
pub struct CompileArgs {
    /// The component to compile (.wasm, uncompressed).
    input: PathBuf,
    /// Where to write the compiled artifact.
    output: PathBuf,
    /// Compile for the Pulley interpreter.
    #[arg(long)]
    pulley: bool,
    /// Refuse to use more memory than this, in MiB.
    #[arg(long)]
    memory_budget_mib: Option<usize>,
    /// Refuse to use more CPU time than this, in seconds.
    #[arg(long)]
    cpu_budget_seconds: Option<u64>,
}

/// Compiles one plugin for this machine's engine, under budgets applied to this very
/// process: the agent and the other commands run this as their compiling child, and
/// load only what it writes.
pub fn plugin_compile(args: CompileArgs) -> Result<()> {
    let defaults = CompileBudget::default();
    limit_this_process(
        args.memory_budget_mib.map_or(defaults.memory, |m| m << 20),
        args.cpu_budget_seconds
            .map_or(defaults.cpu, Duration::from_secs),
    )
    .context("cannot apply the compile budget")?;
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let engine = PolicyEngine::new(EngineOptions {
        backend: if args.pulley {
            Backend::Pulley
        } else {
            Backend::native()
        },
        // One thread: a lower memory peak within the budget, and the agent's other
        // core stays free.
        parallel_compilation: false,
        ..EngineOptions::default()
    })?;
    let name = args
        .input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let artifact = match engine.precompile(&name, &bytes) {
        Ok(artifact) => artifact,
        Err(PolicyError::Invalid { reason, .. }) => {
            eprintln!("{reason}");
            std::process::exit(EXIT_INVALID);
        }
        Err(error) => return Err(error.into()),
    };
    std::fs::write(&args.output, artifact)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(())
}
