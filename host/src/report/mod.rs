//! The node report: what each agent says of itself — policy, last reload, sticks —
//! and how it travels: its schema here, its Lease encoding in [`lease`], and what a
//! set of reports says of a policy's rollout in [`rollout`] (all pure; publishing and
//! reading the Leases is `cluster`'s, printing them the `status` command's). A new
//! field is added here and filled in by `agent/status.rs`.
//! Times are wall-clock milliseconds since the Unix epoch, passed in.

mod lease;
mod rollout;

pub use lease::{
    REPORT_VALID_SECONDS, STATUS_ANNOTATION, STATUS_SELECTOR, lease_name, lease_of, published_of,
};
pub use rollout::{
    Expected, ExpectedAgent, NodeVerdict, Rollout, human_age, node_verdict, rollout, short_sha,
};

use serde::{Deserialize, Serialize};

use crate::policy::untrusted::{MAX_PLUGIN_TEXT, sanitize};

/// One agent's account of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    pub node: String,
    /// The agent's pod, when it runs in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub policy: ActivePolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload: Option<ReloadOutcome>,
    pub device: DeviceReport,
    /// The agent's version.
    #[serde(default)]
    pub version: String,
    /// With layers: the LEDs the base layer (`policy`) sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_leds: Vec<u32>,
    /// The layers above the base, bottom up; none without layers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerReport>,
}

/// A layer above the base: its name in the stack, its policy, the LEDs it sets now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerReport {
    pub layer: String,
    pub policy: ActivePolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload: Option<ReloadOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_error: Option<String>,
    #[serde(default)]
    pub leds: Vec<u32>,
}

/// The policy the agent runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivePolicy {
    pub name: String,
    /// Of the component (after decompressing a `.wasm.gz`).
    pub sha256: String,
    /// Of the file as delivered, when it differs from `sha256` (a `.wasm.gz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_sha256: Option<String>,
    /// `builtin`, a file path, or the ConfigMap and key.
    pub origin: String,
    /// When it became active.
    pub since_ms: u64,
}

/// How the last reload attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadOutcome {
    pub at_ms: u64,
    pub ok: bool,
    /// The sha256 of the plugin file it tried (or of the layer it pulled; none for the
    /// built-in policy or an unreadable directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_sha256: Option<String>,
    /// The sha256 of the component inside, when it differs from the file's (a
    /// `.wasm.gz`): a refusal is found by either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReloadOutcome {
    /// Whether this attempt was at the policy with `sha256` (of its file or component).
    pub fn tried(&self, sha256: &str) -> bool {
        let wanted = sha256.trim().to_ascii_lowercase();
        self.file_sha256.as_deref() == Some(wanted.as_str())
            || self.sha256.as_deref() == Some(wanted.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceReport {
    /// Lights connected.
    pub connected: usize,
    pub leds: usize,
    /// Their families (`blinkstick`, `blink1`, `luxafor`, `wled`), each once. Names,
    /// not an enum: a report from a newer agent with a family this one does not know
    /// still reads.
    #[serde(default)]
    pub families: Vec<String>,
}

/// A report as read back from the cluster, with its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub report: NodeReport,
    /// When the agent last renewed it.
    pub renewed_ms: u64,
    /// How long a report stays fresh without renewal.
    pub valid_for_ms: u64,
}

impl Published {
    /// Renewed within its validity.
    pub fn fresh(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.renewed_ms) <= self.valid_for_ms
    }
}

impl ActivePolicy {
    /// Whether this is the policy with `sha256` (of the component or of its file).
    pub fn is(&self, sha256: &str) -> bool {
        let wanted = sha256.trim().to_ascii_lowercase();
        self.sha256 == wanted || self.file_sha256.as_deref() == Some(wanted.as_str())
    }
}

impl NodeReport {
    /// The report as safe to show: it was read from the cluster, where anyone allowed
    /// to write the agents' Leases could have written it, and its errors quote plugins.
    pub fn sanitized(self) -> NodeReport {
        NodeReport {
            node: clean(self.node),
            pod: clean_opt(self.pod),
            policy: self.policy.sanitized(),
            last_reload: self.last_reload.map(ReloadOutcome::sanitized),
            device: DeviceReport {
                families: self
                    .device
                    .families
                    .into_iter()
                    .take(MAX_REPORTED_FAMILIES)
                    .map(|family| sanitize(&family, MAX_FAMILY_NAME))
                    .collect(),
                ..self.device
            },
            version: clean(self.version),
            base_leds: self.base_leds.into_iter().take(MAX_REPORTED_LEDS).collect(),
            layers: self
                .layers
                .into_iter()
                .take(MAX_REPORTED_LAYERS)
                .map(|layer| LayerReport {
                    layer: clean(layer.layer),
                    policy: layer.policy.sanitized(),
                    last_reload: layer.last_reload.map(ReloadOutcome::sanitized),
                    evaluation_error: clean_opt(layer.evaluation_error),
                    leds: layer.leds.into_iter().take(MAX_REPORTED_LEDS).collect(),
                })
                .collect(),
        }
    }

    /// Every policy it runs: the base, then each layer above it.
    pub fn policies(&self) -> impl Iterator<Item = (&ActivePolicy, Option<&ReloadOutcome>)> {
        std::iter::once((&self.policy, self.last_reload.as_ref())).chain(
            self.layers
                .iter()
                .map(|l| (&l.policy, l.last_reload.as_ref())),
        )
    }
}

/// Most layers and LED indices shown of a report read back.
const MAX_REPORTED_LAYERS: usize = 16;
const MAX_REPORTED_LEDS: usize = 1024;
/// Families kept from a report, and characters of each name: podlight knows four.
const MAX_REPORTED_FAMILIES: usize = 8;
const MAX_FAMILY_NAME: usize = 32;

fn clean(text: String) -> String {
    sanitize(&text, MAX_PLUGIN_TEXT)
}

fn clean_opt(text: Option<String>) -> Option<String> {
    text.map(clean)
}

impl ActivePolicy {
    fn sanitized(self) -> ActivePolicy {
        ActivePolicy {
            name: clean(self.name),
            sha256: clean(self.sha256),
            file_sha256: clean_opt(self.file_sha256),
            origin: clean(self.origin),
            since_ms: self.since_ms,
        }
    }
}

impl ReloadOutcome {
    fn sanitized(self) -> ReloadOutcome {
        ReloadOutcome {
            file_sha256: clean_opt(self.file_sha256),
            sha256: clean_opt(self.sha256),
            error: clean_opt(self.error),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_back_are_made_safe_to_show() {
        let report = NodeReport {
            node: "node-a\u{1b}[2J".into(),
            last_reload: Some(ReloadOutcome {
                at_ms: 1,
                ok: false,
                file_sha256: None,
                sha256: None,
                error: Some(format!("bad\nforged line{}", "x".repeat(5000))),
            }),
            device: DeviceReport {
                connected: 1,
                leds: 60,
                families: std::iter::once("wled\u{1b}[2J".to_string())
                    .chain(std::iter::repeat_n("x".repeat(100), 100))
                    .collect(),
            },
            ..NodeReport::default()
        };
        let report = report.sanitized();
        assert_eq!(report.node, "node-a\\u{1b}[2J");
        let families = &report.device.families;
        assert_eq!(families.len(), MAX_REPORTED_FAMILIES, "{families:?}");
        assert_eq!(families[0], "wled\\u{1b}[2J");
        assert!(families.iter().all(|f| f.len() < 64), "{families:?}");
        let error = report.last_reload.and_then(|r| r.error).unwrap_or_default();
        assert!(!error.contains('\n') && error.len() < 1200, "{error}");
    }
}
