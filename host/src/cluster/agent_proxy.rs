//! Asking a running agent through the API server's pod proxy, the way `kubectl`
//! reaches a pod: with the user's own credentials and RBAC (`list pods` and
//! `get pods/proxy` in podlight's namespace), so the agents need no new permission
//! and nothing is exposed outside the cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::policy::untrusted::sanitize;

/// The agents' pods: the DaemonSet's and the cluster light's.
const AGENT_PODS: &str = "app.kubernetes.io/name in (podlight,podlight-cluster)";
/// Most bytes of an agent's answer read.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Why an agent could not be asked, said as what to do.
#[derive(Debug, thiserror::Error)]
pub enum AgentProxyError {
    #[error(
        "you may not {verb} in namespace {namespace} (the API server said: {message}); ask for a \
         Role granting it — `kubectl auth can-i {verb} -n {namespace}` checks"
    )]
    Forbidden {
        verb: &'static str,
        namespace: String,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("the API server did not answer within {0} s")]
    Timeout(u64),
    #[error("asking the agent through the API server failed: {0}")]
    Failed(String),
}

fn refused(verb: &'static str, namespace: &str, error: kube::Error) -> AgentProxyError {
    match error {
        kube::Error::Api(status) if status.code == 403 => AgentProxyError::Forbidden {
            verb,
            namespace: namespace.to_string(),
            message: sanitize(&status.message, 300),
        },
        kube::Error::Api(status) if status.code == 404 => {
            AgentProxyError::NotFound(sanitize(&status.message, 300))
        }
        other => AgentProxyError::Failed(sanitize(&other.to_string(), 300)),
    }
}

/// The running agent pod on `node` in `namespace` (without a node: the only one, or
/// the cluster light when there is one).
pub async fn find_agent_pod(
    client: kube::Client,
    namespace: &str,
    node: Option<&str>,
    deadline: Duration,
) -> Result<String, AgentProxyError> {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let mut params = ListParams::default().labels(AGENT_PODS);
    let fields = match node {
        Some(node) => format!("status.phase=Running,spec.nodeName={node}"),
        None => "status.phase=Running".to_string(),
    };
    params = params.fields(&fields);
    let listed = tokio::time::timeout(deadline, pods.list(&params))
        .await
        .map_err(|_| AgentProxyError::Timeout(deadline.as_secs()))?
        .map_err(|e| refused("list pods", namespace, e))?;
    let names: Vec<(String, String, bool)> = listed
        .items
        .iter()
        .map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let cluster_light = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/name"))
                .is_some_and(|n| n == "podlight-cluster");
            (name, node, cluster_light)
        })
        .collect();
    match (node, names.as_slice()) {
        (_, []) => Err(AgentProxyError::NotFound(match node {
            Some(node) => format!(
                "no running podlight agent on node {node} in namespace {namespace} \
                 (`kubectl get pods -n {namespace} -o wide` lists them)"
            ),
            None => format!("no running podlight agent in namespace {namespace}"),
        })),
        (_, [(name, _, _)]) => Ok(name.clone()),
        (None, several) => match several.iter().find(|(_, _, cluster)| *cluster) {
            Some((name, _, _)) => Ok(name.clone()),
            None => Err(AgentProxyError::NotFound(format!(
                "{} agents run in namespace {namespace}; say which with --node (one of {})",
                several.len(),
                several
                    .iter()
                    .map(|(_, node, _)| node.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
        (Some(_), [(name, _, _), ..]) => Ok(name.clone()),
    }
}

/// `GET path` on the agent pod's `port` through the API server's pod proxy, within
/// `deadline`, the answer bounded.
pub async fn get_through_proxy(
    client: kube::Client,
    namespace: &str,
    pod: &str,
    port: u16,
    path: &str,
    deadline: Duration,
) -> Result<String, AgentProxyError> {
    let uri = format!(
        "/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{}",
        path.trim_start_matches('/')
    );
    let request = http::Request::get(uri)
        .body(Vec::new())
        .map_err(|e| AgentProxyError::Failed(e.to_string()))?;
    let text = tokio::time::timeout(deadline, client.request_text(request))
        .await
        .map_err(|_| AgentProxyError::Timeout(deadline.as_secs()))?
        .map_err(|e| refused("get pods/proxy", namespace, e))?;
    if text.len() > MAX_ANSWER_BYTES {
        return Err(AgentProxyError::Failed(format!(
            "the agent answered {} bytes, more than {MAX_ANSWER_BYTES}",
            text.len()
        )));
    }
    Ok(text)
}
