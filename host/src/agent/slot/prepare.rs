//! Preparing: signature check, compile (or the cache), start and a trial evaluation on
//! the current snapshot — everything before a policy may replace the running one.

use std::sync::Arc;

use super::ReloadError;
use super::fetch::{Fetched, Tried, fetch};
use super::publish::Origin;
use crate::agent::source::Found;
use crate::agent::source::PolicySource;
use crate::policy::signature::TrustedKeys;
use crate::policy::{BUILTIN_NAME, Policy, PolicyEngine, PolicyError, PolicyInstance, precompiled};
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
/// trial-evaluates on the current snapshot, off the async runtime's workers. What
/// was tried is hashed only when it failed.
pub(super) async fn prepare(
    engine: Arc<PolicyEngine>,
    source: &PolicySource,
    found: &Found,
    snapshot: Arc<Snapshot>,
    leds: u32,
) -> Result<Prepared, Failed> {
    let fetched = match &found.plugin {
        Some(file) => Some(fetch(source, file, engine.target()).await?),
        None => None,
    };
    let max_plugin_size = engine.options().max_plugin_size;
    let failed = move |error: ReloadError, fetched: &Option<Fetched>| Failed {
        error,
        tried: fetched
            .as_ref()
            .map(|f| f.tried(max_plugin_size))
            .unwrap_or_default(),
    };
    if let (Some(plugin), Some(file)) = (&fetched, &found.plugin)
        && !source.trust.keys.is_empty()
    {
        let key = source
            .trust
            .keys
            .verify(&plugin.name, &plugin.bytes, file.signature.as_deref())
            .map_err(|e| failed(e.into(), &fetched))?;
        tracing::info!(plugin = %plugin.name, %key, "policy signature verified");
    }
    let keys = Arc::clone(&source.trust.keys);
    let settings = found.settings.clone();
    let (started, fetched) = tokio::task::spawn_blocking(move || {
        let started = start(&engine, fetched.as_ref(), &keys, settings, &snapshot, leds);
        (started, fetched)
    })
    .await
    .map_err(|source| Failed::from(ReloadError::Panicked { source }))?;
    started.map_err(|e| failed(e.into(), &fetched))
}

/// Compiles (or takes from the cache, or from its precompiled artifact when one of
/// `keys` signed it) the fetched plugin, or the built-in one, starts it and evaluates it once.
fn start(
    engine: &PolicyEngine,
    fetched: Option<&Fetched>,
    keys: &TrustedKeys,
    settings: Option<String>,
    snapshot: &Arc<Snapshot>,
    leds: u32,
) -> Result<Prepared, PolicyError> {
    let (policy, origin) = match fetched {
        Some(fetched) => {
            let policy = match &fetched.precompiled {
                Some(pulled) => {
                    let offered = pulled.as_ref().map_err(Clone::clone).and_then(|pulled| {
                        precompiled::verified(
                            keys,
                            &fetched.name,
                            &pulled.bytes,
                            pulled.signature.as_deref(),
                        )
                    });
                    engine.load_bytes_offered(&fetched.name, &fetched.bytes, offered)?
                }
                None => engine.load_bytes(&fetched.name, &fetched.bytes)?,
            };
            let precompiled = policy.info().precompiled.clone();
            (
                policy,
                Origin {
                    text: fetched.origin.clone(),
                    pulled_layer: fetched.pulled_layer.clone(),
                    precompiled,
                },
            )
        }
        None => (
            engine.builtin()?,
            Origin {
                text: BUILTIN_NAME.to_string(),
                pulled_layer: None,
                precompiled: None,
            },
        ),
    };
    let policy: Arc<Policy> = Arc::new(policy);
    let mut instance = policy.instantiate(settings)?;
    match instance.evaluate_at(snapshot, leds, wall_clock_ms()) {
        // The first call pays one-time costs — code pages faulted in (translated, under
        // emulation), the plugin's own lazy set-up — which on a slow or busy node can
        // alone pass the deadline: a fresh sandbox gets one more try before the
        // policy is refused.
        Err(PolicyError::Timeout { .. }) => {
            tracing::info!(policy = %policy.name(), "the trial evaluation ran past its deadline; trying once more");
            instance.evaluate_at(snapshot, leds, wall_clock_ms())?;
        }
        first => {
            first?;
        }
    }
    Ok(Prepared { instance, origin })
}
