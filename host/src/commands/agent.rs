//! `podlight run` (the DaemonSet's agent) and `podlight demo` (the same path with a
//! scripted node and a virtual device).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use podlight::agent::{
    Agent, AgentParts, AgentStatus, ApiPolicies, DemoScenario, EventSink, PolicySource,
    StatusReporter,
};
use podlight::cluster::{ClusterStatus, PolicyConfigMapWatch, ReportLeases};
use podlight::device::{DeviceManager, FrameWriter, WriterOptions};
use podlight::state::Snapshot;
use tokio::sync::watch;

use super::args::{ClusterArgs, DeviceArgs, DeviceKind, EngineArgs};
use super::wait_for_stop;

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
    /// Also watch this ConfigMap (in the pod's namespace) through the API: a policy
    /// change applies as soon as the API server has it, not when the kubelet next
    /// updates the mounted directory (up to 90 s later). Needs get/list/watch on it.
    #[arg(long, env = "PODLIGHT_POLICY_CONFIGMAP")]
    policy_configmap: Option<String>,
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

/// Runs the agent's future on its own runtime. On the way out, work still running on
/// blocking threads (a plugin compile waiting on its child) is not waited for: the
/// process exits, and the compiling child dies with it.
fn on_runtime(agent: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    let runtime = super::runtime()?;
    let result = runtime.block_on(agent);
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

pub fn run(args: RunArgs) -> Result<()> {
    on_runtime(async {
        let (node, connection) = args.cluster.connect().await?;
        // Unlike `snapshot`, the agent does not give up when the first check fails:
        // the watch retries, so a node added later, a fixed RBAC rule or a server back
        // up need no restart. The error is said once, here; `/readyz` tells the rest.
        if let Err(error) = connection.check_node(&node, CHECK_TIMEOUT).await {
            tracing::error!(%error, "the cluster check failed; watching anyway and retrying");
        }
        let watch = args.cluster.watch(node, &connection);
        let policies = match (&args.policy_configmap, &args.pod_namespace) {
            (Some(name), Some(namespace)) => Some((
                PolicyConfigMapWatch::start(connection.client.clone(), namespace, name),
                format!("{namespace}/{name}"),
            )),
            (Some(name), None) => {
                tracing::warn!(configmap = %name, "--policy-configmap needs POD_NAMESPACE (the downward API's metadata.namespace); using the mounted directory alone");
                None
            }
            (None, _) => None,
        };
        let api = policies.as_ref().map(|(watch, configmap)| ApiPolicies {
            configmap: configmap.clone(),
            files: watch.files(),
        });
        // Each node's report goes to a Lease in the agent's own namespace.
        let reporter = args.pod_namespace.as_ref().map(|namespace| StatusReporter {
            leases: ReportLeases::new(connection.client.clone(), &connection.url, namespace),
            pod: args.pod_name.clone(),
        });
        let events = match (&args.pod_namespace, &args.pod_name) {
            (Some(namespace), Some(name)) => {
                EventSink::new(connection.client, namespace, name, None)
            }
            _ => {
                tracing::info!(
                    "POD_NAME/POD_NAMESPACE not set: reload failures are logged but not recorded as Events"
                );
                EventSink::none()
            }
        };
        serve(
            &args.agent,
            watch.snapshots(),
            Some(watch.status()),
            events,
            api,
            reporter,
            None,
        )
        .await
    })
}

/// How long the agent gives the API server's first answer before saying what is wrong.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

pub fn demo(mut args: DemoArgs) -> Result<()> {
    args.agent.device.device = DeviceKind::Virtual;
    on_runtime(async {
        let scenario = DemoScenario::start(Duration::from_secs_f64(args.step.max(0.1)));
        let stop_after = args.duration.map(Duration::from_secs_f64);
        serve(
            &args.agent,
            scenario.snapshots.clone(),
            None,
            EventSink::none(),
            None,
            None,
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
    api: Option<ApiPolicies>,
    reporter: Option<StatusReporter>,
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
    let state = AgentStatus::new(snapshots.clone(), writer.status(), cluster);
    let engine = Arc::new(args.engine.engine()?);
    let source = PolicySource {
        dir: Some(args.policy_dir.clone()),
        name: args.policy.clone(),
        api,
    };
    // Serving first: /healthz answers (and /readyz says why not ready) while the
    // first policy compiles.
    let (stop_http, stop_rx) = watch::channel(false);
    let (address, http) = podlight::http::serve(args.listen, Arc::clone(&state), stop_rx)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(%address, "serving /healthz, /readyz, /metrics and the status page");
    // A stop is honoured even while the first policy still compiles.
    let stop = wait_for_stop(stop_after);
    tokio::pin!(stop);
    let starting = Agent::start(AgentParts {
        engine,
        source,
        writer: Arc::clone(&writer),
        state,
        events,
        reporter,
    });
    let agent = tokio::select! {
        agent = starting => Some(agent),
        stopped = &mut stop => {
            stopped?;
            None
        }
    };
    if let Some(agent) = agent {
        drop(writer);
        stop.await?;
        tracing::info!("shutting down");
        let _ = stop_http.send(true);
        agent.stop(args.leave_leds_on).await;
    } else {
        tracing::info!("shutting down while the first policy was still loading");
        let _ = stop_http.send(true);
        if !args.leave_leds_on {
            let _ =
                tokio::task::spawn_blocking(move || writer.turn_off(Duration::from_secs(1))).await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), http).await;
    Ok(())
}
