//! The `podlight` command line: parses flags in one place and wires the library's
//! pieces. Errors become messages for people here.

mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::{
    Exit, demo, devices, emulate, eval, explain, off, plugin, plugin_new, plugin_oci, record,
    replay, run, set, silence, snapshot, status, test,
};
use podlight::error_chain::error_chain;

#[derive(Parser)]
#[command(
    name = "podlight",
    version,
    about = "A node-status light for Kubernetes: pod states through a Wasm policy onto a BlinkStick"
)]
struct Cli {
    /// Log format: human-readable text, or JSON lines for log collectors.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: watch this node's pods and show them on the stick.
    Run(Box<run::RunArgs>),
    /// Run the agent on a scripted node with a virtual device (no cluster, no stick).
    Demo(Box<demo::DemoArgs>),
    /// Evaluate a policy on a snapshot and print the frame.
    Eval(eval::EvalArgs),
    /// Print the node's current snapshot as JSON (what `podlight eval` reads).
    Snapshot(snapshot::SnapshotArgs),
    /// Write the node's snapshots over time, one JSON line per change (a timeline
    /// for `replay` and for test files).
    Record(record::RecordArgs),
    /// Play a recorded timeline through a policy, on stdout or the sticks.
    Replay(replay::ReplayArgs),
    /// What every node runs: policy, last reload, sticks (from the agents' reports);
    /// `--wait --policy-sha256 SHA` follows a rollout.
    Status(status::StatusArgs),
    /// Why each LED has its colour: the rule, the pods, nodes and alerts behind it,
    /// asked of the node's agent through the API server (your own RBAC).
    Explain(explain::ExplainArgs),
    /// Acknowledge a known failure: show a pod's failure (or a node, in maintenance)
    /// quietly until the silence ends; `--list` shows every silence.
    Silence(silence::SilenceArgs),
    /// End silences set by `podlight silence`.
    Unsilence(silence::UnsilenceArgs),
    /// Run a policy's `*.test.toml` files: expected frames on a virtual clock
    /// (exit 0 all pass, 1 a failure, 2 a file or plugin that cannot be read).
    Test(test::TestArgs),
    /// Work with policy plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List the BlinkSticks plugged in.
    Devices(devices::DevicesArgs),
    /// Set the LEDs to a colour (diagnostics).
    Set(set::SetArgs),
    /// Turn the LEDs off.
    Off(off::OffArgs),
    /// Become a virtual BlinkStick through Linux uhid (root; `modprobe uhid`).
    Emulate(emulate::EmulateArgs),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Start a policy project in Rust, JavaScript, Python or Go: source, contract,
    /// build script, samples and a passing `podlight test` file.
    New(plugin_new::NewArgs),
    /// Push a plugin to an OCI registry (the CNCF Wasm OCI artifact format); prints
    /// the reference pinned to the digest.
    Push(plugin_oci::PushArgs),
    /// Pull a plugin from an OCI registry.
    Pull(plugin_oci::PullArgs),
    /// Validate a plugin and describe it (contract version, size, imports).
    Check(plugin::CheckArgs),
    /// Compile a plugin under a memory and CPU budget (what podlight runs as its
    /// compiling child process).
    Compile(plugin::CompileArgs),
}

fn main() -> ExitCode {
    podlight::memory::map_own_code_on_demand();
    let cli = Cli::parse();
    init_logging(&cli.log_format, cli.command.is_agent());
    commands::set_json_logs(cli.log_format == "json");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output stopped reading (`| head`): nothing more to say.
        Err(error) if is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<Exit>().is_some() => {
            ExitCode::from(error.downcast_ref::<Exit>().map_or(1, |exit| exit.0))
        }
        Err(error) => {
            eprintln!("podlight: {}", error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

impl Command {
    /// A long-running agent, whose log is its record (`run`, `demo`, `emulate`), rather
    /// than a command a person runs and reads the answer of.
    fn is_agent(&self) -> bool {
        matches!(
            self,
            Command::Run(_) | Command::Demo(_) | Command::Emulate(_)
        )
    }
}

/// The log level when `RUST_LOG` does not say: an agent logs everything from info up;
/// a command people run keeps its terminal for its answer and podlight's own lines
/// (a plugin's output among them), with only errors from the libraries beneath — no
/// client's notice that a kubeconfig skips TLS verification on every `podlight status`.
fn default_filter(agent: bool) -> &'static str {
    if agent { "info" } else { "error,podlight=info" }
}

/// Human-readable logs on a terminal, JSON lines for clusters; the level from
/// `RUST_LOG`, else [`default_filter`].
fn init_logging(format: &str, agent: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter(agent)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Demo(args) => demo::demo(*args),
        Command::Eval(args) => eval::eval(args),
        Command::Snapshot(args) => snapshot::snapshot(args),
        Command::Status(args) => status::status(args),
        Command::Record(args) => record::record(args),
        Command::Replay(args) => replay::replay(args),
        Command::Test(args) => test::test(args),
        Command::Explain(args) => explain::explain(args),
        Command::Silence(args) => silence::silence(args),
        Command::Unsilence(args) => silence::unsilence(args),
        Command::Plugin(PluginCommand::New(args)) => plugin_new::plugin_new(args),
        Command::Plugin(PluginCommand::Push(args)) => plugin_oci::plugin_push(args),
        Command::Plugin(PluginCommand::Pull(args)) => plugin_oci::plugin_pull(args),
        Command::Plugin(PluginCommand::Check(args)) => plugin::plugin_check(args),
        Command::Plugin(PluginCommand::Compile(args)) => plugin::plugin_compile(args),
        Command::Devices(args) => devices::devices(args),
        Command::Set(args) => set::set(args),
        Command::Off(args) => off::off(args),
        Command::Emulate(args) => emulate::emulate(args),
    }
}
