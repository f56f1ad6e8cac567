//! Kubernetes Events on the agent's own pod, so `kubectl describe pod` shows policy
//! reload failures where operators look.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use tokio::sync::watch;

use crate::state::{SILENCE_ANNOTATION, SILENCE_FORMAT, Snapshot};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes Events about the agent's pod; does nothing when the pod is not known
/// (outside a cluster, or without POD_NAME/POD_NAMESPACE).
#[derive(Clone, Default)]
pub struct EventSink {
    target: Option<(Recorder, ObjectReference)>,
}

impl EventSink {
    pub fn new(
        client: kube::Client,
        pod_namespace: &str,
        pod_name: &str,
        pod_uid: Option<String>,
    ) -> EventSink {
        let reporter = Reporter {
            controller: "podlight".into(),
            instance: Some(pod_name.to_string()),
        };
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(pod_namespace.to_string()),
            name: Some(pod_name.to_string()),
            uid: pod_uid,
            ..ObjectReference::default()
        };
        EventSink {
            target: Some((Recorder::new(client, reporter), reference)),
        }
    }

    pub fn none() -> EventSink {
        EventSink::default()
    }

    /// Whether Events go anywhere.
    pub fn publishes(&self) -> bool {
        self.target.is_some()
    }

    /// A Warning event about a policy reload; failures to publish are logged, never
    /// returned.
    pub async fn warn(&self, reason: &str, note: String) {
        self.warn_during("ReloadPolicy", reason, note).await;
    }

    /// A Warning event on the agent's pod about `action`.
    pub async fn warn_during(&self, action: &str, reason: &str, note: String) {
        let Some((recorder, reference)) = &self.target else {
            return;
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, reference).await {
            tracing::warn!(%error, "cannot record a Kubernetes Event on the agent's pod");
        }
    }
}

/// Most malformed silences remembered, so each is reported once; past it the memory
/// starts again (a repeat Event is better than unbounded memory).
const MAX_REPORTED_SILENCES: usize = 4096;

/// Reports each malformed `podlight.dev/silence` annotation (a pod's or the node's)
/// once, as a Warning Event on the agent's own pod naming the object and the format:
/// the agent needs no permission beyond its own namespace's Events, and the
/// annotation is otherwise ignored (the pod shows as if it had none).
pub(crate) async fn warn_about_silences(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    events: EventSink,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reported: HashSet<(String, String)> = HashSet::new();
    loop {
        let problems: Vec<(String, String)> = {
            let snapshot = snapshots.borrow_and_update();
            let node = snapshot
                .node
                .silence_problem
                .iter()
                .map(|p| (format!("node/{}", snapshot.node.name), p.clone()));
            let pods = snapshot.pods.iter().filter_map(|pod| {
                pod.silence_problem
                    .as_ref()
                    .map(|p| (format!("pod {}/{}", pod.namespace, pod.name), p.clone()))
            });
            node.chain(pods).collect()
        };
        for (object, problem) in problems {
            if reported.len() >= MAX_REPORTED_SILENCES {
                reported.clear();
            }
            if !reported.insert((object.clone(), problem.clone())) {
                continue;
            }
            let note = format!(
                "{object}: its {SILENCE_ANNOTATION} annotation is ignored: {problem}. Write it as {SILENCE_FORMAT}, or use `podlight silence`"
            );
            tracing::warn!("{note}");
            events
                .warn_during("ReadSilence", "MalformedSilence", note)
                .await;
        }
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}
