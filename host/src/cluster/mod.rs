//! The cluster watch: this node's pods and the node object (or, in cluster scope,
//! every node and pod), from the Kubernetes API, into snapshots. Errors are logged
//! and retried; nothing here ends the agent.

mod agent_proxy;
mod backoff;
pub(crate) mod cluster_scope;
mod config;
mod convert;
mod expected;
mod node_status;
mod policies;
pub(crate) mod protobuf;
mod protobuf_watch;
mod slim;
mod watch;
mod watch_loop;

pub use agent_proxy::{
    AgentProxyError, MAX_ANSWER_BYTES as MAX_AGENT_ANSWER_BYTES, find_agent_pod, get_through_proxy,
};
pub use backoff::WatchBackoff;
pub use config::{ClusterError, ConnectOptions, Connection, client, connect, node_name};
pub use convert::{node_info, pod_info};
pub use expected::expected_agents;
pub use node_status::ReportLeases;
pub use policies::{PolicyConfigMapWatch, PolicyFiles, files_of};
pub use protobuf::{ProtobufError, pod_from_envelope};
pub use protobuf_watch::ProtobufWatchError;
pub use slim::{SlimNode, SlimPod};
pub use watch::{ClusterStatus, ListCounts, StateWatch, WatchOptions};
