//! Why a new policy was not taken.

use crate::policy::PolicyError;
use crate::policy::signature::SignatureError;
use crate::registry::{PullError, ReferenceError};

/// Why a new policy was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read the policy directory: {source}")]
    Read {
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the policy loader panicked: {source}")]
    Panicked {
        #[source]
        source: tokio::task::JoinError,
    },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "plugin {name} is an OCI reference ({reference}), but this agent pulls from no registry; run it with registry access (the default) or ship the plugin itself"
    )]
    NoRegistry { name: String, reference: String },
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Unverified(#[from] SignatureError),
}

impl ReloadError {
    /// The `result` label of `podlight_policy_reloads_total` for this failure.
    pub fn metric_result(&self) -> &'static str {
        match self {
            ReloadError::Unverified(_) => "unverified",
            _ => "failed",
        }
    }

    /// Worth trying again with nothing changed: a registry that was down, or a trial
    /// evaluation that ran past its deadline (twice) — on a node busy or slow for a
    /// while, not necessarily a slow policy. Tried again with backoff, the running
    /// policy kept meanwhile; a policy that is always too slow costs one trial a minute.
    pub(super) fn is_transient(&self) -> bool {
        match self {
            ReloadError::Pull(error) => error.is_transient(),
            ReloadError::Policy(PolicyError::Timeout { .. }) => true,
            _ => false,
        }
    }
}
