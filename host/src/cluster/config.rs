//! Which node, and how to reach the API server.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error_chain::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no node name: pass --node, or set NODE_NAME (in a DaemonSet, from the downward API: \
         fieldRef spec.nodeName)"
    )]
    NoNodeName,
    #[error("cannot read kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    #[error(
        "no cluster configuration: not running in a pod and no kubeconfig found ({reason}); \
         pass --kubeconfig or set KUBECONFIG"
    )]
    NoConfig { reason: String },
    #[error("cannot set up the Kubernetes client: {source}")]
    Client {
        #[source]
        source: kube::Error,
    },
    #[error("the API server at {url} did not answer within {seconds} s: {reason}")]
    Unreachable {
        url: String,
        seconds: u64,
        reason: String,
    },
    #[error(
        "the API server at {url} cannot be reached: {reason}; check the server address in the \
         kubeconfig and that the API server is running"
    )]
    Connect { url: String, reason: String },
    #[error("the API server at {url} answered {code}: {message}")]
    Answered {
        url: String,
        code: u16,
        message: String,
    },
    #[error(
        "the API server at {url} refused our credentials (401 Unauthorized); the token or \
         client certificate in the kubeconfig (in a pod: the ServiceAccount token) is wrong or \
         expired"
    )]
    Unauthorized { url: String },
    #[error(
        "the API server at {url} denied access (403 Forbidden): {message}; grant that \
         permission (deploy/base/rbac.yaml has what podlight needs)"
    )]
    Forbidden { url: String, message: String },
    #[error(
        "the API server at {url} has no node named {node}; check --node / NODE_NAME \
         (`kubectl get nodes` lists them)"
    )]
    NodeNotFound { url: String, node: String },
}

/// The node to watch: the flag, else `NODE_NAME`, else the prototype's `NODE_HOSTNAME`.
pub fn node_name(flag: Option<&str>) -> Result<String, ClusterError> {
    flag.map(str::to_string)
        .or_else(|| std::env::var("NODE_NAME").ok())
        .or_else(|| std::env::var("NODE_HOSTNAME").ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .ok_or(ClusterError::NoNodeName)
}

/// How to reach the cluster; everything unset means "infer".
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// A client: with `--kubeconfig`/`--context`, from that file and context; otherwise
/// the in-cluster config inside a pod, else `KUBECONFIG` or `~/.kube/config`.
pub async fn client(options: &ConnectOptions) -> Result<kube::Client, ClusterError> {
    Ok(connect(options).await?.client)
}

/// A client and the API server it talks to, for messages.
pub struct Connection {
    pub client: kube::Client,
    /// The API server's URL, as configured.
    pub url: String,
}

/// [`client`], keeping the server's URL.
pub async fn connect(options: &ConnectOptions) -> Result<Connection, ClusterError> {
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &options.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|e| ClusterError::Kubeconfig {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            kube::Config::from_custom_kubeconfig(file, &kube_options)
                .await
                .map_err(|e| ClusterError::Kubeconfig {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&kube_options)
            .await
            .map_err(|e| ClusterError::NoConfig {
                reason: e.to_string(),
            })?,
        None => kube::Config::infer()
            .await
            .map_err(|e| ClusterError::NoConfig {
                reason: e.to_string(),
            })?,
    };
    let url = config.cluster_url.to_string();
    let client =
        kube::Client::try_from(config).map_err(|source| ClusterError::Client { source })?;
    Ok(Connection { client, url })
}

impl Connection {
    /// One request for the node, within `timeout`: says at once whether the server
    /// answers, takes our credentials, lets us read nodes, and knows the node — each
    /// with its own message. The watch retries all of these by itself; this is for
    /// telling people.
    /// Lists one node: the cluster scope's first check (credentials, access, reach).
    pub async fn check_nodes(&self, timeout: Duration) -> Result<(), ClusterError> {
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        let url = self.url.clone();
        match tokio::time::timeout(
            timeout,
            nodes.list(&kube::api::ListParams::default().limit(1)),
        )
        .await
        {
            Err(_) => Err(ClusterError::Unreachable {
                url,
                seconds: timeout.as_secs(),
                reason: "no answer".to_string(),
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(ClusterError::of_request(url, error)),
        }
    }

    pub async fn check_node(&self, node: &str, timeout: Duration) -> Result<(), ClusterError> {
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        let url = self.url.clone();
        match tokio::time::timeout(timeout, nodes.get_opt(node)).await {
            Err(_) => Err(ClusterError::Unreachable {
                url,
                seconds: timeout.as_secs(),
                reason: "no answer".to_string(),
            }),
            Ok(Ok(Some(_))) => Ok(()),
            Ok(Ok(None)) => Err(ClusterError::NodeNotFound {
                url,
                node: node.to_string(),
            }),
            Ok(Err(error)) => Err(ClusterError::of_request(url, error)),
        }
    }
}

impl ClusterError {
    /// A failed request, said the way people can act on: refused credentials, denied
    /// access, or no connection.
    /// The API server's words are a remote party's: bounded and stripped of control
    /// characters before they reach a log, a page or a terminal.
    pub fn of_request(url: String, error: kube::Error) -> ClusterError {
        use crate::policy::untrusted::sanitize;
        match error {
            kube::Error::Api(status) if status.code == 401 => ClusterError::Unauthorized { url },
            kube::Error::Api(status) if status.code == 403 => ClusterError::Forbidden {
                url,
                message: sanitize(&status.message, MAX_SERVER_TEXT),
            },
            kube::Error::Api(status) => ClusterError::Answered {
                url,
                code: status.code,
                message: sanitize(&status.message, MAX_SERVER_TEXT),
            },
            error => ClusterError::Connect {
                url,
                reason: sanitize(&error_chain(&error), MAX_SERVER_TEXT),
            },
        }
    }
}

/// Characters of an API server's message kept.
const MAX_SERVER_TEXT: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_servers_words_are_bounded_and_stripped() {
        let status = kube::core::Status::failure(
            &format!(
                "\u{1b}[2Jforbidden\nforged: level=ERROR{}",
                "x".repeat(5_000)
            ),
            "Forbidden",
        )
        .with_code(403);
        let error = ClusterError::of_request("https://api".into(), kube::Error::Api(status.into()));
        let text = error.to_string();
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text}");
        assert!(text.len() < 1_500, "{} bytes", text.len());
        assert!(text.contains("forbidden"), "{text}");
    }

    #[test]
    fn the_flag_wins_and_blank_is_no_name() {
        assert_eq!(node_name(Some("n1")).ok().as_deref(), Some("n1"));
        assert!(matches!(
            node_name(Some("  ")),
            Err(ClusterError::NoNodeName)
        ));
    }
}
