//! What `podlight run` and `podlight demo` share: the agent's flags, and running it
//! from them until a stop signal.

use super::args::{DeviceArgs, EngineArgs, RegistryArgs};
use super::build::trusted_keys;
use super::stop_signal;
use anyhow::{Context, Result};
use clap::Args;
use podlight::agent::{
    AgentConfig, ApiPolicies, EventSink, PolicySource, PolicyTrust, StatusReporter,
};
use podlight::alerts::AlertFeed;
use podlight::cluster::ClusterStatus;
use podlight::device::WriterOptions;
use podlight::quiet::QuietHours;
use podlight::state::Snapshot;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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
    /// A candidate policy from the same policy directory (or ConfigMap), NAME as for
    /// --policy: evaluated on every change beside the active one, its frame on the
    /// status page and in metrics, never on the sticks. Without a NAME.wasm: the
    /// built-in policy with the settings NAME.json.
    #[arg(long, env = "PODLIGHT_SHADOW_POLICY")]
    shadow_policy: Option<String>,
    /// Policies stacked above --policy, bottom up (repeat or comma-separate), NAME as
    /// for --policy: each LED shows the topmost layer that does not leave it to the
    /// layers below. Without a NAME.wasm: the built-in policy with the settings
    /// NAME.json (e.g. an alerts overlay).
    #[arg(long = "layer", value_delimiter = ',', env = "PODLIGHT_LAYERS")]
    layers: Vec<String>,
    /// Address for /healthz, /readyz, /metrics and the status page.
    #[arg(long, default_value = "0.0.0.0:9102", env = "PODLIGHT_LISTEN")]
    listen: SocketAddr,
    /// Fade between colours over this many milliseconds.
    #[arg(long, default_value_t = 300)]
    fade_ms: u64,
    /// On shutdown, leave the LEDs as they are instead of turning them off.
    #[arg(long)]
    leave_leds_on: bool,
    /// Run only plugins signed with one of these public keys (PEM files as `cosign
    /// generate-key-pair` writes `cosign.pub`, or directories of them, e.g. a mounted
    /// ConfigMap): `NAME.sig` beside the plugin, as `cosign sign-blob --key` writes it.
    #[arg(
        long = "verify-key",
        value_delimiter = ',',
        env = "PODLIGHT_VERIFY_KEYS"
    )]
    verify_keys: Vec<PathBuf>,
    /// Quiet hours: dim every LED in these windows of local time, HH:MM-HH:MM@PERCENT%
    /// (e.g. 22:00-07:00@10%; several, comma-separated or repeated; the dimmest wins
    /// where they overlap). Applied after the policy and the brightness cap.
    #[arg(
        long = "quiet-hours",
        value_delimiter = ',',
        env = "PODLIGHT_QUIET_HOURS"
    )]
    quiet_hours: Vec<String>,
    /// The time zone of the quiet hours, an IANA name (Europe/Berlin, America/Chicago).
    #[arg(long, default_value = "UTC", env = "PODLIGHT_TIME_ZONE")]
    time_zone: String,
    /// During quiet hours, LEDs that show failed pods (not silenced) stay at full
    /// brightness.
    #[arg(long, env = "PODLIGHT_QUIET_HOURS_KEEP_FAILURES")]
    quiet_hours_keep_failures: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Most policies in a stack, the base included.
const MAX_LAYERS: usize = 8;

/// The layers above `base`: distinct names, each a policy name, a bounded stack.
fn checked_layers(base: &str, layers: &[String]) -> Result<Vec<String>> {
    let layers: Vec<String> = layers
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if layers.len() + 1 > MAX_LAYERS {
        anyhow::bail!(
            "--layer names {} layers; a stack holds at most {MAX_LAYERS} policies, the base included",
            layers.len()
        );
    }
    for (i, name) in layers.iter().enumerate() {
        if name == base || layers[..i].contains(name) {
            anyhow::bail!(
                "--layer {name:?} appears twice in the stack ({base} then {}); each layer is a different policy",
                layers.join(", ")
            );
        }
        if name.contains('/') || name.starts_with('.') {
            anyhow::bail!(
                "--layer {name:?} is not a policy name: name a NAME.wasm, NAME.ref or NAME.json in the policy directory"
            );
        }
    }
    Ok(layers)
}

/// Runs the agent's future on its own runtime. On the way out, work still running on
/// blocking threads (a plugin compile waiting on its child) is not waited for: the
/// process exits, and the compiling child dies with it.
pub fn on_runtime(agent: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    let runtime = super::runtime()?;
    let result = runtime.block_on(agent);
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// What the agent shows and whom it tells, besides its flags.
pub struct AgentInputs {
    /// The node's snapshots: the cluster watch's, or the demo's.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The watch's status, for readiness and metrics; none without a cluster.
    pub cluster: Option<Arc<ClusterStatus>>,
    /// Where reload failures are recorded as Kubernetes Events.
    pub events: EventSink,
    /// The policies ConfigMap as the API serves it.
    pub api: Option<ApiPolicies>,
    /// Where this node's report is published.
    pub reporter: Option<StatusReporter>,
    /// Alerts from Alertmanager.
    pub alerts: Option<AlertFeed>,
}

impl AgentInputs {
    /// Snapshots from nowhere but `snapshots`: no cluster, Events, API or report.
    pub fn alone(snapshots: watch::Receiver<Arc<Snapshot>>) -> AgentInputs {
        AgentInputs {
            snapshots,
            cluster: None,
            events: EventSink::none(),
            api: None,
            reporter: None,
            alerts: None,
        }
    }
}

/// Runs the agent and its HTTP server until SIGTERM or SIGINT (or `stop_after`).
pub async fn serve(
    args: &AgentArgs,
    inputs: AgentInputs,
    stop_after: Option<Duration>,
) -> Result<()> {
    let AgentInputs {
        snapshots,
        cluster,
        events,
        api,
        reporter,
        alerts,
    } = inputs;
    // A bad window or time zone stops the start, before any device is opened.
    let quiet = QuietHours::new(
        &args.quiet_hours,
        &args.time_zone,
        args.quiet_hours_keep_failures,
        args.device.brightness_cap,
    )?
    .map(Arc::new);
    let (bus, device) = args.device.open()?;
    let config = AgentConfig {
        bus,
        device,
        writer: WriterOptions {
            fade: Duration::from_millis(args.fade_ms),
            brightness_cap: args.device.brightness_cap,
            ..WriterOptions::default()
        },
        observer: args.device.observer(),
        snapshots,
        cluster,
        engine: Arc::new(args.engine.engine()?),
        source: PolicySource {
            dir: Some(args.policy_dir.clone()),
            name: args.policy.clone(),
            api,
            trust: PolicyTrust {
                registry: Some(Arc::new(
                    args.registry
                        .client(args.engine.max_plugin_bytes(), args.engine.cache_dir())?,
                )),
                keys: Arc::new(trusted_keys(&args.verify_keys)?),
            },
        },
        events,
        reporter,
        listen: Some(args.listen),
        shadow: args.shadow_policy.clone(),
        quiet,
        alerts,
        layers: checked_layers(&args.policy, &args.layers)?,
    };
    // A stop is honoured even while the first policy still compiles.
    let stop = stop_signal(stop_after)?;
    tokio::pin!(stop);
    let started = config
        .start_unless(stop.as_mut(), args.leave_leds_on)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let Some(agent) = started else {
        tracing::info!("shut down while the first policy was still loading");
        return Ok(());
    };
    stop.await;
    tracing::info!("shutting down");
    agent.stop(args.leave_leds_on).await;
    Ok(())
}
