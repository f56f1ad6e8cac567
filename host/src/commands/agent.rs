//! `podlight run` (the DaemonSet's agent) and `podlight demo` (the same path with a
//! scripted node and a virtual device).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use podlight::agent::{Agent, AgentParts, AgentState, DemoScenario, EventSink, PolicySource};
use podlight::cluster::ClusterStatus;
use podlight::device::{DeviceManager, FrameWriter, WriterOptions};
use podlight::state::Snapshot;
use tokio::sync::watch;

use super::cluster::ClusterArgs;
use super::device::{DeviceArgs, DeviceKind};
use super::policy::EngineArgs;

/// Where the DaemonSet mounts the policies ConfigMap.
pub const DEFAULT_POLICY_DIR: &str = "/etc/podlight/policies";

#[derive(Args)]
pub struct AgentArgs {
    /// Directory of policies (a ConfigMap mount); watched for changes.
    #[arg(long, default_value = DEFAULT_POLICY_DIR, env = "PODLIGHT_POLICY_DIR")]
    policy_dir: PathBuf,
    /// The policy to run: NAME.wasm (or NAME.wasm.gz) in the policy directory, with
    /// settings NAME.json; the built-in `priority` policy when there is no such file.
    #[arg(long, default_value = "priority", env = "PODLIGHT_POLICY")]
    policy: String,
    /// Address for /healthz, /readyz, /metrics and the status page.
    #[arg(long, default_value = "0.0.0.0:9102", env = "PODLIGHT_LISTEN")]
    listen: SocketAddr,
    /// Fade between colours over this many milliseconds.
    #[arg(long, default_value_t = 300)]
    fade_ms: u64,
    /// On shutdown, leave the LEDs as they are instead of turning them off.
    #[arg(long)]
    leave_leds_on: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// This pod's name and namespace (downward API), for Events about policy reloads.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    #[arg(long, env = "POD_NAMESPACE")]
    pod_namespace: Option<String>,
    #[command(flatten)]
    agent: AgentArgs,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Seconds per scenario step.
    #[arg(long, default_value_t = 2.5)]
    step: f64,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    duration: Option<f64>,
    #[command(flatten)]
    agent: AgentArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(args: RunArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (watch, client) = args.cluster.start().await?;
        let events = match (&args.pod_namespace, &args.pod_name) {
            (Some(namespace), Some(name)) => EventSink::new(client, namespace, name, None),
            _ => {
                tracing::info!("POD_NAME/POD_NAMESPACE not set: reload failures are logged but not recorded as Events");
                EventSink::none()
            }
        };
        serve(&args.agent, watch.snapshots(), Some(watch.status()), events, None).await
    })
}

pub fn demo(mut args: DemoArgs) -> Result<()> {
    args.agent.device.device = DeviceKind::Virtual;
    runtime()?.block_on(async {
        let scenario = DemoScenario::start(Duration::from_secs_f64(args.step.max(0.1)));
        let stop_after = args.duration.map(Duration::from_secs_f64);
        serve(
            &args.agent,
            scenario.snapshots.clone(),
            None,
            EventSink::none(),
            stop_after,
        )
        .await
    })
}

/// Runs the agent and its HTTP server until SIGTERM or SIGINT (or `stop_after`).
async fn serve(
    args: &AgentArgs,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    cluster: Option<Arc<ClusterStatus>>,
    events: EventSink,
    stop_after: Option<Duration>,
) -> Result<()> {
    let (bus, options) = args.device.open()?;
    let manager = DeviceManager::new(bus, options);
    let writer_options = WriterOptions {
        fade: Duration::from_millis(args.fade_ms),
        brightness_cap: args.device.brightness_cap,
        ..WriterOptions::default()
    };
    let writer = Arc::new(FrameWriter::spawn(
        manager,
        writer_options,
        args.device.observer(),
    ));
    let state = AgentState::new(snapshots.clone(), writer.status(), cluster);
    let engine = Arc::new(args.engine.engine()?);
    let source = PolicySource {
        dir: Some(args.policy_dir.clone()),
        name: args.policy.clone(),
    };
    // Serving first: /healthz answers (and /readyz says why not ready) while the
    // first policy compiles.
    let (stop_http, stop_rx) = watch::channel(false);
    let (address, http) = podlight::http::serve(args.listen, Arc::clone(&state), stop_rx)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(%address, "serving /healthz, /readyz, /metrics and the status page");
    let agent = Agent::start(AgentParts {
        engine,
        source,
        writer,
        state,
        events,
    })
    .await;

    wait_for_stop(stop_after).await?;
    tracing::info!("shutting down");
    let _ = stop_http.send(true);
    agent.stop(args.leave_leds_on).await;
    let _ = tokio::time::timeout(Duration::from_millis(500), http).await;
    Ok(())
}

/// Waits for SIGTERM or SIGINT (or the given time).
pub async fn wait_for_stop(stop_after: Option<Duration>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let timer = async {
        match stop_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = timer => {}
    }
    Ok(())
}
