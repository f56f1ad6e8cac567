//! `podlight run`: the DaemonSet's agent.

use super::agent::{AgentArgs, AgentInputs, on_runtime, serve};
use super::args::{AlertArgs, ClusterArgs, ScopeArg};
use anyhow::Result;
use clap::Args;
use podlight::agent::{ApiPolicies, EventSink, StatusReporter};
use podlight::alerts::AlertFeed;
use podlight::cluster::{PolicyConfigMapWatch, ReportLeases};
use std::time::Duration;

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
    alerts: AlertArgs,
    #[command(flatten)]
    agent: AgentArgs,
}

pub fn run(args: RunArgs) -> Result<()> {
    // A malformed Alertmanager flag stops the start, before anything connects.
    let alertmanager = args.alerts.options()?;
    on_runtime(async {
        let (node, connection) = args.cluster.connect().await?;
        let alerts =
            match alertmanager {
                Some(options) => {
                    // The cluster light reads every node's alerts; an agent its own node's.
                    let about = (args.cluster.scope == ScopeArg::Node).then(|| node.clone());
                    Some(AlertFeed::start(options, about).map_err(|e| {
                        anyhow::anyhow!("cannot set up the Alertmanager client: {e}")
                    })?)
                }
                None => None,
            };
        // Unlike `snapshot`, the agent does not give up when the first check fails:
        // the watch retries, so a node added later, a fixed RBAC rule or a server back
        // up need no restart. The error is said once, here; `/readyz` tells the rest.
        if let Err(error) = args.cluster.check(&node, &connection, CHECK_TIMEOUT).await {
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
        tokio::spawn(async {
            tokio::time::sleep(STARTUP_SETTLES).await;
            podlight::memory::release_startup_code();
        });
        let inputs = AgentInputs {
            snapshots: watch.snapshots(),
            cluster: Some(watch.status()),
            events,
            api,
            reporter,
            alerts,
        };
        serve(&args.agent, inputs, None).await
    })
}

/// After this, the code that only started the agent is given back to the kernel
/// (`memory::release_startup_code`): the first list and the policy's load are done.
const STARTUP_SETTLES: Duration = Duration::from_secs(20);

/// How long the agent gives the API server's first answer before saying what is wrong.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
