//! Kubernetes Events on the agent's own pod, so `kubectl describe pod` shows policy
//! reload failures where operators look.

use k8s_openapi::api::core::v1::ObjectReference;
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

    /// A Warning event; failures to publish are logged, never returned.
    pub async fn warn(&self, reason: &str, note: String) {
        let Some((recorder, reference)) = &self.target else {
            return;
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "ReloadPolicy".into(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, reference).await {
            tracing::warn!(%error, "cannot record a Kubernetes Event on the agent's pod");
        }
    }
}
