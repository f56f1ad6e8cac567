//! Publishing: what the agent reports of a slot's policy — active, or why a new one
//! was refused (status page, node report, log, metric and Event).

use super::ReloadError;
use super::fetch::Tried;
use crate::agent::source::Found;
use crate::agent::status::PolicyRole;
use crate::agent::{AgentStatus, EventSink};
use crate::policy::{PolicyInstance, PrecompiledUse};
use crate::report::ReloadOutcome;
use crate::state::wall_clock_ms;

/// Where a policy came from, for people, and — for a pulled one — its layer's sha256,
/// reported as the plugin file's.
pub(crate) struct Origin {
    pub(super) text: String,
    pub(super) pulled_layer: Option<String>,
    /// What became of a precompiled artifact pulled with it.
    pub(super) precompiled: Option<PrecompiledUse>,
}

/// Makes `instance` the policy the agent reports; `reload` when it came from a reload
/// (not the start).
pub(super) fn publish_active(
    status: &AgentStatus,
    role: PolicyRole,
    instance: &PolicyInstance,
    origin: Origin,
    found: &Found,
    reload: Option<ReloadOutcome>,
) {
    let info = instance.policy().info().clone();
    let Origin {
        text: origin,
        pulled_layer,
        precompiled,
    } = origin;
    match role {
        PolicyRole::Active => {
            tracing::info!(policy = %info.name, sha256 = %info.sha256, %origin, cache_hit = info.cache_hit, precompiled = ?info.precompiled, "policy active");
        }
        PolicyRole::Layer(layer) => {
            tracing::info!(layer, policy = %info.name, sha256 = %info.sha256, %origin, cache_hit = info.cache_hit, "layer policy active");
        }
        PolicyRole::Shadow => {
            tracing::info!(policy = %info.name, sha256 = %info.sha256, %origin, cache_hit = info.cache_hit, "shadow policy loaded (evaluated beside the active one, never shown)");
        }
    }
    let file_sha256 = pulled_layer
        .or_else(|| found.fingerprint().file_sha256())
        .filter(|file| *file != info.sha256);
    status.update_policy_of(role, |p| {
        p.name = info.name;
        p.sha256 = info.sha256;
        p.file_sha256 = file_sha256;
        p.origin = origin;
        p.precompiled = precompiled;
        p.cache_problem = info.cache_problem;
        p.settings = found.settings.clone();
        p.last_error = None;
        p.since_ms = wall_clock_ms();
        if reload.is_some() {
            p.last_reload = reload;
        }
    });
}

pub(super) fn succeeded(file_sha256: Option<String>) -> ReloadOutcome {
    ReloadOutcome {
        at_ms: wall_clock_ms(),
        ok: true,
        file_sha256,
        sha256: None,
        error: None,
    }
}

pub(super) async fn report_failure(
    status: &AgentStatus,
    role: PolicyRole,
    events: &EventSink,
    error: &ReloadError,
    tried: Tried,
) {
    let reason = match role {
        PolicyRole::Active => {
            tracing::error!(%error, "policy reload failed; keeping the last good policy");
            status.metrics.reload(error.metric_result());
            "PolicyReloadFailed"
        }
        PolicyRole::Layer(layer) => {
            tracing::error!(%error, layer, "layer policy reload failed; keeping the layer's last good policy");
            status.metrics.reload(error.metric_result());
            "PolicyReloadFailed"
        }
        PolicyRole::Shadow => {
            tracing::error!(%error, "shadow policy reload failed; keeping the last good shadow");
            "ShadowPolicyReloadFailed"
        }
    };
    status.update_policy_of(role, |p| {
        p.last_error = Some(error.to_string());
        p.last_reload = Some(ReloadOutcome {
            at_ms: wall_clock_ms(),
            ok: false,
            file_sha256: tried.file_sha256,
            sha256: tried.sha256,
            error: Some(error.to_string()),
        });
    });
    events
        .warn(reason, format!("kept the last good policy: {error}"))
        .await;
}
