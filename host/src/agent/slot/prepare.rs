//! Preparing: signature check, compile (or the cache), start and a trial evaluation on
//! the current snapshot — everything before a policy may replace the running one.

use std::sync::Arc;

use super::ReloadError;
use super::fetch::{Tried, fetch};
use super::publish::Origin;
use crate::agent::source::Found;
use crate::agent::source::PolicySource;
use crate::policy::{BUILTIN_NAME, Policy, PolicyEngine, PolicyError, PolicyInstance};
use crate::state::{Snapshot, wall_clock_ms};

/// A policy ready to run: compiled, started and trial-evaluated.
pub(super) struct Prepared {
    pub(super) instance: PolicyInstance,
    pub(super) origin: Origin,
}

/// A policy that could not be made ready: why, and what was tried.
pub(super) struct Failed {
    pub(super) error: ReloadError,
    pub(super) tried: Tried,
}

impl From<ReloadError> for Failed {
    fn from(error: ReloadError) -> Failed {
        Failed {
            error,
            tried: Tried::default(),
        }
    }
}

/// Fetches, checks the signature, compiles (or takes from the cache) and
/// trial-evaluates on the current snapshot, off the async runtime's workers.
pub(super) async fn prepare(
    engine: Arc<PolicyEngine>,
    source: &PolicySource,
    found: &Found,
    snapshot: Arc<Snapshot>,
    leds: u32,
) -> Result<Prepared, Failed> {
    let fetched = match &found.plugin {
        Some(file) => Some(fetch(source, file).await?),
        None => None,
    };
    let tried = fetched
        .as_ref()
        .map(|f| f.tried(engine.options().max_plugin_size))
        .unwrap_or_default();
    let failed = |error: ReloadError| Failed {
        error,
        tried: tried.clone(),
    };
    if let (Some(fetched), Some(file)) = (&fetched, &found.plugin)
        && !source.trust.keys.is_empty()
    {
        let key = source
            .trust
            .keys
            .verify(&fetched.name, &fetched.bytes, file.signature.as_deref())
            .map_err(|e| failed(e.into()))?;
        tracing::info!(plugin = %fetched.name, %key, "policy signature verified");
    }
    let settings = found.settings.clone();
    tokio::task::spawn_blocking(move || {
        let (policy, origin) = match fetched {
            Some(fetched) => (
                engine.load_bytes(&fetched.name, &fetched.bytes)?,
                Origin {
                    text: fetched.origin,
                    pulled_layer: fetched.pulled_layer,
                },
            ),
            None => (
                engine.builtin()?,
                Origin {
                    text: BUILTIN_NAME.to_string(),
                    pulled_layer: None,
                },
            ),
        };
        let policy: Arc<Policy> = Arc::new(policy);
        let mut instance = policy.instantiate(settings)?;
        instance.evaluate_at(&snapshot, leds, wall_clock_ms())?;
        Ok::<_, PolicyError>(Prepared { instance, origin })
    })
    .await
    .map_err(|source| failed(ReloadError::Panicked { source }))?
    .map_err(|e| failed(e.into()))
}
