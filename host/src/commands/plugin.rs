//! `podlight plugin check` and `podlight plugin compile`.

use super::args::EngineArgs;
use anyhow::{Context, Result};
use clap::Args;
use podlight::policy::compile::{EXIT_INVALID, limit_this_process};
use podlight::policy::{
    Backend, CompileBudget, CompileTarget, EngineOptions, Policy, PolicyEngine, PolicyError,
    precompiled,
};
use podlight::state::Snapshot;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct CheckArgs {
    /// A .wasm or .wasm.gz component, or `builtin`.
    plugin: String,
    #[command(flatten)]
    engine: EngineArgs,
    /// Load the compiled form from this precompiled artifact (`plugin compile
    /// --target`) instead of compiling, as an agent would: only when FILE.sig verifies
    /// with a --verify-key; otherwise the plugin is compiled and the output says why.
    #[arg(long, requires = "verify_keys")]
    precompiled: Option<PathBuf>,
    /// A cosign public key the precompiled artifact must be signed with (repeat for
    /// several).
    #[arg(long = "verify-key")]
    verify_keys: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn plugin_check(args: CheckArgs) -> Result<()> {
    let json = args.json;
    let engine = args.engine.engine()?;
    let policy = match &args.precompiled {
        Some(artifact) => load_precompiled(&engine, &args.plugin, artifact, &args.verify_keys)?,
        None => args.engine.load(&engine, &args.plugin)?,
    };
    let policy = Arc::new(policy);
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
    if let Some(precompiled) = &info.precompiled {
        outln!("compiled:   {precompiled}")?;
    }
    outln!("imports:    {}", info.imports.len())?;
    for import in &info.imports {
        outln!("  {import}")?;
    }
    outln!("ok: loads, starts and evaluates an empty node")?;
    Ok(())
}

/// Loads `plugin` with the compiled form from a precompiled artifact whose
/// signature (`ARTIFACT.sig`) verifies with one of `keys`; compiles when it does not.
fn load_precompiled(
    engine: &PolicyEngine,
    plugin: &str,
    artifact: &Path,
    keys: &[PathBuf],
) -> Result<Policy> {
    let file = std::fs::read(plugin).with_context(|| format!("cannot read {plugin}"))?;
    let name = Path::new(plugin)
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(".gz")
                .trim_end_matches(".wasm")
                .to_string()
        })
        .unwrap_or_default();
    let bytes =
        std::fs::read(artifact).with_context(|| format!("cannot read {}", artifact.display()))?;
    let signature = std::fs::read(format!("{}.sig", artifact.display())).ok();
    let keys = super::build::trusted_keys(keys)?;
    let offered = precompiled::verified(&keys, &name, &bytes, signature.as_deref());
    Ok(engine.load_bytes_offered(&name, &file, offered)?)
}

/// The budget of `plugin compile --target` unless one is given.
const AHEAD_OF_TIME_BUDGET: CompileBudget = CompileBudget {
    memory: 2 << 30,
    cpu: Duration::from_secs(600),
    wall: Duration::from_secs(1200),
};

#[derive(Args)]
pub struct CompileArgs {
    /// The component to compile (.wasm, uncompressed).
    input: PathBuf,
    /// Where to write the precompiled artifact.
    output: PathBuf,
    /// Compile for this machine's Pulley interpreter.
    #[arg(long, conflicts_with = "target")]
    pulley: bool,
    /// Compile for another machine: x86_64, aarch64 (64-bit ARM), armv7 (32-bit ARM,
    /// Pulley bytecode) or pulley64. Sign the artifact with `cosign sign-blob` and
    /// push it beside the component with `podlight plugin push --precompiled`.
    #[arg(long, value_parser = CompileTarget::parse)]
    target: Option<CompileTarget>,
    /// Refuse to use more memory than this, in MiB (default: the agent's compile
    /// budget; with --target, 2048).
    #[arg(long)]
    memory_budget_mib: Option<usize>,
    /// Refuse to use more CPU time than this, in seconds (default: the agent's; with
    /// --target, 600).
    #[arg(long)]
    cpu_budget_seconds: Option<u64>,
}

/// Compiles one plugin for this machine's engine, under budgets applied to this very
/// process: the agent and the other commands run this as their compiling child, and
/// load only what it writes.
pub fn plugin_compile(args: CompileArgs) -> Result<()> {
    // Ahead of time (`--target`), on the machine where policies are built, the
    // node's budget does not apply: a Python policy needs about 330 MB to compile.
    let defaults = match args.target {
        Some(_) => AHEAD_OF_TIME_BUDGET,
        None => CompileBudget::default(),
    };
    limit_this_process(
        args.memory_budget_mib.map_or(defaults.memory, |m| m << 20),
        args.cpu_budget_seconds
            .map_or(defaults.cpu, Duration::from_secs),
    )
    .context("cannot apply the compile budget")?;
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let backend = match args.target {
        Some(target) => target.backend(),
        None if args.pulley => Backend::Pulley,
        None => Backend::native(),
    };
    let engine = PolicyEngine::new(EngineOptions {
        backend,
        cross_target: args.target,
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
