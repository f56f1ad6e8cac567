//! A report as a Lease per node in the agent's namespace.
//!
//! Why a Lease: it is the API's object for "who holds what, renewed until when" (the
//! kubelet's node heartbeats in `kube-node-lease` are Leases), so `renewTime` and
//! `leaseDurationSeconds` say at once whether an agent still reports; it is small,
//! namespaced (the agent's rights stay inside its own namespace) and needs no CRD. The
//! report itself is JSON in the annotation [`STATUS_ANNOTATION`]. The Lease is owned by
//! its Node, so deleting the node deletes it; an agent that stops cleanly removes its
//! own.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::{NodeReport, Published};

/// The annotation holding the report (JSON).
pub const STATUS_ANNOTATION: &str = "podlight.dev/status";
/// The label every report Lease carries, to list them.
pub const STATUS_SELECTOR: &str =
    "app.kubernetes.io/name=podlight,app.kubernetes.io/component=node-status";
/// How long a report stays valid without renewal; agents renew at a third of it.
pub const REPORT_VALID_SECONDS: i32 = 60;

/// The Lease of `node`'s report: `podlight-NODE`, hashed when that would be too long
/// for an object name.
pub fn lease_name(node: &str) -> String {
    let name = format!("podlight-{node}");
    if name.len() <= 253 {
        return name;
    }
    let digest = hex::encode(Sha256::digest(node.as_bytes()));
    let head: String = node.chars().take(200).collect();
    format!("podlight-{head}-{}", &digest[..16])
        .trim_end_matches(['.', '-'])
        .to_string()
}

/// The Lease carrying `report`, renewed at `now_ms`, owned by the node when its UID
/// is known.
pub fn lease_of(report: &NodeReport, now_ms: u64, node_uid: Option<&str>) -> Lease {
    let renewed = Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "podlight".to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            "node-status".to_string(),
        ),
    ]);
    let annotations = BTreeMap::from([(
        STATUS_ANNOTATION.to_string(),
        serde_json::to_string(report).unwrap_or_default(),
    )]);
    let owner_references = node_uid.map(|uid| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: report.node.clone(),
            uid: uid.to_string(),
            ..OwnerReference::default()
        }]
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(&report.node)),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(report.pod.clone().unwrap_or_else(|| report.node.clone())),
            lease_duration_seconds: Some(REPORT_VALID_SECONDS),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        }),
    }
}

/// The report a Lease carries; none for a Lease that is not a podlight report or whose
/// annotation does not parse.
pub fn published_of(lease: &Lease) -> Option<Published> {
    let text = lease
        .metadata
        .annotations
        .as_ref()?
        .get(STATUS_ANNOTATION)?;
    let report = serde_json::from_str::<NodeReport>(text).ok()?.sanitized();
    let spec = lease.spec.as_ref()?;
    let renewed_ms = spec
        .renew_time
        .as_ref()
        .map_or(0, |t| u64::try_from(t.0.as_millisecond()).unwrap_or(0));
    let valid_for_ms = u64::try_from(spec.lease_duration_seconds.unwrap_or(REPORT_VALID_SECONDS))
        .unwrap_or(0)
        * 1000;
    Some(Published {
        report,
        renewed_ms,
        valid_for_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ActivePolicy;

    #[test]
    fn a_report_survives_its_lease() {
        let report = NodeReport {
            node: "node-a".into(),
            pod: Some("podlight-x1".into()),
            policy: ActivePolicy {
                name: "priority".into(),
                sha256: "ab".repeat(32),
                origin: "builtin".into(),
                since_ms: 1_700_000_000_123,
                ..ActivePolicy::default()
            },
            ..NodeReport::default()
        };
        let lease = lease_of(&report, 1_700_000_005_000, Some("uid-1"));
        // Through JSON, as the API server stores it.
        let json = serde_json::to_string(&lease).expect("serialise");
        let back: Lease = serde_json::from_str(&json).expect("parse");
        let published = published_of(&back).expect("a report");
        assert_eq!(published.report, report);
        assert_eq!(published.renewed_ms, 1_700_000_005_000);
        assert_eq!(published.valid_for_ms, 60_000);
        assert_eq!(back.metadata.name.as_deref(), Some("podlight-node-a"));
        let owner = &back.metadata.owner_references.expect("owned")[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "uid-1"));
    }

    #[test]
    fn long_node_names_still_make_valid_names() {
        let node = "n".repeat(253);
        let name = lease_name(&node);
        assert!(name.len() <= 253, "{}", name.len());
        assert_ne!(lease_name(&node), lease_name(&"m".repeat(253)));
        assert_eq!(lease_name("a.b"), "podlight-a.b");
    }

    #[test]
    fn foreign_leases_are_not_reports() {
        assert_eq!(published_of(&Lease::default()), None);
    }
}
