//! Which node, and how to reach the API server.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

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
    #[error("cannot set up the Kubernetes client: {0}")]
    Client(String),
    #[error("the API server at {url} did not answer within {seconds} s: {reason}")]
    Unreachable {
        url: String,
        seconds: u64,
        reason: String,
    },
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
    kube::Client::try_from(config).map_err(|e| ClusterError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_and_blank_is_no_name() {
        assert_eq!(node_name(Some("n1")).ok().as_deref(), Some("n1"));
        assert!(matches!(
            node_name(Some("  ")),
            Err(ClusterError::NoNodeName)
        ));
    }
}
