//! Pods and watch events in the API server's protobuf encoding, read as the JSON
//! reader in `slim.rs` reads them: only what a policy can see and what a watch needs
//! to follow the pod, every other field skipped unread. The same 110,000 pods are
//! 190 MB as protobuf against 312 MB as JSON, and the API server encodes them in half
//! the time (2.8–3.3 s against 4.9–5.5 s on the reference machine), which is most of
//! the cluster light's wait for its first frame. Pure.
//!
//! The wire form (k8s.io/apimachinery `runtime/serializer/protobuf`): a watch answer
//! is a sequence of frames, each a 4-byte big-endian length and a `WatchEvent`
//! message; the event's object is `k8s\0` followed by a `runtime.Unknown` envelope
//! whose `raw` holds the object's own message. Single objects and error answers
//! are that envelope alone.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use prost::Message;

use super::slim::SlimPod;
use crate::policy::untrusted::{MAX_PLUGIN_TEXT, sanitize};
use crate::state::SILENCE_ANNOTATION;

/// What every protobuf-encoded object starts with.
const MAGIC: &[u8] = b"k8s\0";

/// The annotation on the bookmark that ends a watch's initial events.
pub(super) const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// The longest frame a watch may send. etcd refuses objects over 1.5 MiB; an
/// API server's frame is one object and a few bytes of event around it.
pub(super) const MAX_FRAME_BYTES: usize = 16 << 20;

/// Why bytes from the API server could not be read as what they claim to be.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error(
        "the API server sent a watch frame of {0} bytes, over the {MAX_FRAME_BYTES}-byte bound; the stream is not protobuf watch frames"
    )]
    FrameTooLarge(usize),
    #[error("the API server's {what} does not start with the protobuf magic `k8s\\0`")]
    NoMagic { what: &'static str },
    #[error("the API server's {what} is not valid protobuf")]
    Decode {
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    #[error("the API server sent a watch event of unknown type `{0}`")]
    UnknownEventType(String),
    #[error("the API server sent a {0} watch event without an object")]
    NoObject(String),
    #[error("the API server sent a time out of range ({seconds} s, {nanos} ns) in a pod")]
    TimeOutOfRange { seconds: i64, nanos: i32 },
}

/// Splits a byte stream into the frames of a protobuf watch.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    buffer: BytesMut,
}

impl Frames {
    /// Appends bytes as they arrived.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, if its bytes have all arrived.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Bytes>, ProtobufError> {
        let Some(header) = self.buffer.first_chunk::<4>() else {
            return Ok(None);
        };
        let length = u32::from_be_bytes(*header) as usize;
        if length > MAX_FRAME_BYTES {
            return Err(ProtobufError::FrameTooLarge(length));
        }
        if self.buffer.len() < 4 + length {
            // Room for the rest of the frame at once, not in doublings.
            self.buffer.reserve(4 + length - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(4);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }
}

/// One event of a pod watch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PodEvent {
    Added(SlimPod),
    Modified(SlimPod),
    Deleted(SlimPod),
    /// The watch has sent everything up to `resource_version`; `initial_events_end`:
    /// and that ends its initial events (a streamed list is complete).
    Bookmark {
        resource_version: String,
        initial_events_end: bool,
    },
    /// The API server's error (a 410 Gone: the watch's place is too old).
    Error(kube::core::Status),
}

/// One frame of a pod watch.
pub(crate) fn pod_event(frame: Bytes) -> Result<PodEvent, ProtobufError> {
    let event = WireWatchEvent::decode(frame).map_err(|source| ProtobufError::Decode {
        what: "watch event",
        source,
    })?;
    let Some(object) = event.object else {
        return Err(ProtobufError::NoObject(bounded(&event.r#type)));
    };
    let object = unwrap_envelope(object.raw, "watch event's object")?;
    match event.r#type.as_str() {
        "ADDED" => Ok(PodEvent::Added(pod(object)?)),
        "MODIFIED" => Ok(PodEvent::Modified(pod(object)?)),
        "DELETED" => Ok(PodEvent::Deleted(pod(object)?)),
        "BOOKMARK" => {
            let wire = decode::<WirePod>(object, "bookmark")?;
            let meta = wire.metadata.unwrap_or_default();
            Ok(PodEvent::Bookmark {
                initial_events_end: meta
                    .annotations
                    .iter()
                    .any(|a| a.key == INITIAL_EVENTS_END && a.value.as_ref() == b"true"),
                resource_version: meta.resource_version.unwrap_or_default(),
            })
        }
        "ERROR" => Ok(PodEvent::Error(status_message(object)?)),
        other => Err(ProtobufError::UnknownEventType(bounded(other))),
    }
}

/// A pod as the API server sends it alone (`GET …/pods/NAME` in protobuf).
pub fn pod_from_envelope(bytes: Bytes) -> Result<SlimPod, ProtobufError> {
    pod(unwrap_envelope(bytes, "pod")?)
}

/// The API server's error answer (a `Status`) in protobuf, its text bounded and
/// stripped of control characters.
pub(super) fn status_from_envelope(bytes: Bytes) -> Result<kube::core::Status, ProtobufError> {
    status_message(unwrap_envelope(bytes, "error answer")?)
}

fn unwrap_envelope(bytes: Bytes, what: &'static str) -> Result<Bytes, ProtobufError> {
    let Some(inner) = bytes.strip_prefix(MAGIC) else {
        return Err(ProtobufError::NoMagic { what });
    };
    let start = bytes.len() - inner.len();
    Ok(decode::<WireUnknown>(bytes.slice(start..), what)?.raw)
}

fn decode<M: Message + Default>(bytes: Bytes, what: &'static str) -> Result<M, ProtobufError> {
    M::decode(bytes).map_err(|source| ProtobufError::Decode { what, source })
}

fn bounded(text: &str) -> String {
    sanitize(text, MAX_PLUGIN_TEXT)
}

fn status_message(bytes: Bytes) -> Result<kube::core::Status, ProtobufError> {
    let wire = decode::<WireStatus>(bytes, "error status")?;
    Ok(kube::core::Status {
        status: match wire.status.as_deref() {
            Some("Success") => Some(kube::core::response::StatusSummary::Success),
            Some("Failure") => Some(kube::core::response::StatusSummary::Failure),
            _ => None,
        },
        code: u16::try_from(wire.code.unwrap_or(0)).unwrap_or(0),
        message: bounded(wire.message.as_deref().unwrap_or("")),
        reason: bounded(wire.reason.as_deref().unwrap_or("")),
        metadata: None,
        details: None,
    })
}

/// The API server writes every string field, empty ones too; JSON leaves empty ones
/// out. Reading an empty string as absent makes both encodings read alike.
fn present(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

/// A zero time is written as an empty message (JSON: `null`).
fn time(time: Option<WireTime>) -> Result<Option<Time>, ProtobufError> {
    match time {
        None
        | Some(WireTime {
            seconds: 0,
            nanos: 0,
        }) => Ok(None),
        Some(WireTime { seconds, nanos }) => jiff::Timestamp::new(seconds, nanos)
            .map(|t| Some(Time(t)))
            .map_err(|_| ProtobufError::TimeOutOfRange { seconds, nanos }),
    }
}

fn pod(bytes: Bytes) -> Result<SlimPod, ProtobufError> {
    let wire = decode::<WirePod>(bytes, "pod")?;
    let meta = wire.metadata.unwrap_or_default();
    let annotations: BTreeMap<String, String> = meta
        .annotations
        .into_iter()
        .filter(|a| a.key == SILENCE_ANNOTATION)
        .map(|a| (a.key, String::from_utf8_lossy(&a.value).into_owned()))
        .collect();
    let metadata = ObjectMeta {
        name: present(meta.name),
        namespace: present(meta.namespace),
        uid: present(meta.uid),
        resource_version: present(meta.resource_version),
        labels: (!meta.labels.is_empty()).then_some(meta.labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: (!meta.owner_references.is_empty()).then(|| {
            meta.owner_references
                .into_iter()
                .map(|o| OwnerReference {
                    api_version: o.api_version.unwrap_or_default(),
                    kind: o.kind.unwrap_or_default(),
                    name: o.name.unwrap_or_default(),
                    uid: o.uid.unwrap_or_default(),
                    controller: o.controller,
                    block_owner_deletion: o.block_owner_deletion,
                })
                .collect()
        }),
        creation_timestamp: time(meta.creation_timestamp)?,
        deletion_timestamp: time(meta.deletion_timestamp)?,
        ..ObjectMeta::default()
    };
    let status = match wire.status {
        None => None,
        Some(s) => Some(PodStatus {
            phase: present(s.phase),
            reason: present(s.reason),
            conditions: (!s.conditions.is_empty()).then(|| {
                s.conditions
                    .into_iter()
                    .map(|c| PodCondition {
                        type_: c.r#type.unwrap_or_default(),
                        status: c.status.unwrap_or_default(),
                        ..PodCondition::default()
                    })
                    .collect()
            }),
            start_time: time(s.start_time)?,
            container_statuses: containers(s.container_statuses)?,
            init_container_statuses: containers(s.init_container_statuses)?,
            ..PodStatus::default()
        }),
    };
    Ok(SlimPod(Pod {
        metadata,
        spec: wire.spec.map(|s| PodSpec {
            node_name: present(s.node_name),
            ..PodSpec::default()
        }),
        status,
    }))
}

fn containers(
    wire: Vec<WireContainerStatus>,
) -> Result<Option<Vec<ContainerStatus>>, ProtobufError> {
    if wire.is_empty() {
        return Ok(None);
    }
    wire.into_iter()
        .map(|c| {
            Ok(ContainerStatus {
                name: c.name.unwrap_or_default(),
                ready: c.ready.unwrap_or(false),
                restart_count: c.restart_count.unwrap_or(0),
                state: container_state(c.state)?,
                last_state: container_state(c.last_state)?,
                ..ContainerStatus::default()
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn container_state(
    wire: Option<WireContainerState>,
) -> Result<Option<ContainerState>, ProtobufError> {
    let Some(wire) = wire else { return Ok(None) };
    Ok(Some(ContainerState {
        waiting: wire.waiting.map(|w| ContainerStateWaiting {
            reason: present(w.reason),
            ..ContainerStateWaiting::default()
        }),
        running: match wire.running {
            None => None,
            Some(r) => Some(ContainerStateRunning {
                started_at: time(r.started_at)?,
            }),
        },
        terminated: wire.terminated.map(|t| ContainerStateTerminated {
            exit_code: t.exit_code.unwrap_or(0),
            reason: present(t.reason),
            ..ContainerStateTerminated::default()
        }),
    }))
}

// The messages as the API defines them (k8s.io/api core/v1 and k8s.io/apimachinery
// `generated.proto`), with only the fields read here; prost skips the others.

#[derive(Clone, PartialEq, Message)]
struct WireWatchEvent {
    #[prost(string, tag = "1")]
    r#type: String,
    #[prost(message, optional, tag = "2")]
    object: Option<WireRawExtension>,
}

#[derive(Clone, PartialEq, Message)]
struct WireRawExtension {
    #[prost(bytes = "bytes", tag = "1")]
    raw: Bytes,
}

/// `runtime.Unknown`: the envelope after the magic.
#[derive(Clone, PartialEq, Message)]
struct WireUnknown {
    #[prost(bytes = "bytes", tag = "2")]
    raw: Bytes,
}

#[derive(Clone, PartialEq, Message)]
struct WireStatus {
    #[prost(string, optional, tag = "2")]
    status: Option<String>,
    #[prost(string, optional, tag = "3")]
    message: Option<String>,
    #[prost(string, optional, tag = "4")]
    reason: Option<String>,
    #[prost(int32, optional, tag = "6")]
    code: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct WirePod {
    #[prost(message, optional, tag = "1")]
    metadata: Option<WireMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<WirePodSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<WirePodStatus>,
}

#[derive(Clone, PartialEq, Message)]
struct WireMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "5")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(message, optional, tag = "8")]
    creation_timestamp: Option<WireTime>,
    #[prost(message, optional, tag = "9")]
    deletion_timestamp: Option<WireTime>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    /// A map's entries as the messages they are on the wire, so that the values of
    /// the annotations not kept (`last-applied-configuration` is often the largest
    /// part of a pod) stay slices of the frame instead of copies.
    #[prost(message, repeated, tag = "12")]
    annotations: Vec<WireEntry>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<WireOwnerReference>,
}

#[derive(Clone, PartialEq, Message)]
struct WireEntry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

#[derive(Clone, PartialEq, Message)]
struct WireOwnerReference {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(bool, optional, tag = "6")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    block_owner_deletion: Option<bool>,
}

#[derive(Clone, Copy, PartialEq, Message)]
struct WireTime {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

#[derive(Clone, PartialEq, Message)]
struct WirePodSpec {
    #[prost(string, optional, tag = "10")]
    node_name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct WirePodStatus {
    #[prost(string, optional, tag = "1")]
    phase: Option<String>,
    #[prost(message, repeated, tag = "2")]
    conditions: Vec<WirePodCondition>,
    #[prost(string, optional, tag = "4")]
    reason: Option<String>,
    #[prost(message, optional, tag = "7")]
    start_time: Option<WireTime>,
    #[prost(message, repeated, tag = "8")]
    container_statuses: Vec<WireContainerStatus>,
    #[prost(message, repeated, tag = "10")]
    init_container_statuses: Vec<WireContainerStatus>,
}

#[derive(Clone, PartialEq, Message)]
struct WirePodCondition {
    #[prost(string, optional, tag = "1")]
    r#type: Option<String>,
    #[prost(string, optional, tag = "2")]
    status: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct WireContainerStatus {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, optional, tag = "2")]
    state: Option<WireContainerState>,
    #[prost(message, optional, tag = "3")]
    last_state: Option<WireContainerState>,
    #[prost(bool, optional, tag = "4")]
    ready: Option<bool>,
    #[prost(int32, optional, tag = "5")]
    restart_count: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct WireContainerState {
    #[prost(message, optional, tag = "1")]
    waiting: Option<WireWaiting>,
    #[prost(message, optional, tag = "2")]
    running: Option<WireRunning>,
    #[prost(message, optional, tag = "3")]
    terminated: Option<WireTerminated>,
}

#[derive(Clone, PartialEq, Message)]
struct WireWaiting {
    #[prost(string, optional, tag = "1")]
    reason: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct WireRunning {
    #[prost(message, optional, tag = "1")]
    started_at: Option<WireTime>,
}

#[derive(Clone, PartialEq, Message)]
struct WireTerminated {
    #[prost(int32, optional, tag = "1")]
    exit_code: Option<i32>,
    #[prost(string, optional, tag = "3")]
    reason: Option<String>,
}

/// A watch as a real API server (v1.35) sent it: the initial events of ten pods in
/// every state (`varied_pods` in the cluster scope tests), the bookmark ending them,
/// then a status change, a deletion (the deletion time set, then the pod gone) and
/// the bookmark the API server sends before it ends the watch. The fuzz target's
/// seed: its first byte is the fuzzer's piece size.
#[cfg(test)]
pub(super) const REAL_WATCH: &[u8] =
    include_bytes!("../../../fuzz/corpus/protobuf_watch/initial-events-then-changes");

/// An error event as the API server sends it when a watch's version is gone (410),
/// after the fuzzer's piece size.
#[cfg(test)]
pub(super) const GONE_EVENT: &[u8] = include_bytes!("../../../fuzz/corpus/protobuf_watch/gone");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::pod_info;

    fn envelope(object: &impl Message) -> Bytes {
        let unknown = WireUnknown {
            raw: object.encode_to_vec().into(),
        };
        [MAGIC, &unknown.encode_to_vec()].concat().into()
    }

    fn framed(kind: &str, object: &impl Message) -> Vec<u8> {
        let event = WireWatchEvent {
            r#type: kind.to_string(),
            object: Some(WireRawExtension {
                raw: envelope(object),
            }),
        }
        .encode_to_vec();
        [&(event.len() as u32).to_be_bytes()[..], &event].concat()
    }

    fn text(value: &str) -> Option<String> {
        Some(value.to_string())
    }

    fn crash_looping_pod() -> WirePod {
        let terminated = |code, reason: &str| WireContainerState {
            terminated: Some(WireTerminated {
                exit_code: Some(code),
                reason: text(reason),
            }),
            ..WireContainerState::default()
        };
        WirePod {
            metadata: Some(WireMeta {
                name: text("web-1"),
                namespace: text("shop"),
                uid: text("0b6c1f7e"),
                resource_version: text("4711"),
                creation_timestamp: Some(WireTime {
                    seconds: 1_796_119_200,
                    nanos: 0,
                }),
                // As the API server writes an unset pointer: not at all.
                deletion_timestamp: None,
                labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                annotations: vec![
                    WireEntry {
                        key: "kubectl.kubernetes.io/last-applied-configuration".into(),
                        value: Bytes::from("x".repeat(10_000)),
                    },
                    WireEntry {
                        key: SILENCE_ANNOTATION.into(),
                        value: Bytes::from_static(br#"{"until": "2099-01-01T00:00:00Z"}"#),
                    },
                ],
                owner_references: vec![WireOwnerReference {
                    kind: text("ReplicaSet"),
                    controller: Some(true),
                    ..WireOwnerReference::default()
                }],
            }),
            spec: Some(WirePodSpec {
                node_name: text("node-7"),
            }),
            status: Some(WirePodStatus {
                phase: text("Running"),
                conditions: vec![WirePodCondition {
                    r#type: text("Ready"),
                    status: text("False"),
                }],
                // Unset, as the API server writes an unset string: empty.
                reason: text(""),
                start_time: Some(WireTime::default()),
                container_statuses: vec![WireContainerStatus {
                    name: text("app"),
                    state: Some(WireContainerState {
                        waiting: Some(WireWaiting {
                            reason: text("CrashLoopBackOff"),
                        }),
                        ..WireContainerState::default()
                    }),
                    last_state: Some(terminated(1, "Error")),
                    ready: Some(false),
                    restart_count: Some(7),
                }],
                init_container_statuses: vec![WireContainerStatus {
                    name: text("init"),
                    state: Some(terminated(0, "Completed")),
                    ready: Some(true),
                    restart_count: Some(0),
                    ..WireContainerStatus::default()
                }],
            }),
        }
    }

    fn frames_of(bytes: &[u8], chunk: usize) -> Vec<Bytes> {
        let mut frames = Frames::default();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            frames.push(piece);
            while let Some(frame) = frames.next_frame().expect("frames") {
                out.push(frame);
            }
        }
        out
    }

    #[test]
    fn a_watch_reads_the_same_however_its_bytes_arrive() {
        let pod = crash_looping_pod();
        let bookmark = WirePod {
            metadata: Some(WireMeta {
                resource_version: text("4800"),
                annotations: vec![WireEntry {
                    key: INITIAL_EVENTS_END.into(),
                    value: Bytes::from_static(b"true"),
                }],
                ..WireMeta::default()
            }),
            ..WirePod::default()
        };
        let stream = [
            framed("ADDED", &pod),
            framed("BOOKMARK", &bookmark),
            framed("DELETED", &pod),
        ]
        .concat();
        let whole = frames_of(&stream, stream.len());
        assert_eq!(whole.len(), 3);
        for chunk in [1, 3, 4, 5, 1000] {
            assert_eq!(frames_of(&stream, chunk), whole, "chunks of {chunk}");
        }
        let events: Vec<PodEvent> = whole
            .into_iter()
            .map(|f| pod_event(f).expect("an event"))
            .collect();
        let PodEvent::Added(added) = &events[0] else {
            panic!("{:?}", events[0]);
        };
        assert_eq!(
            events[1],
            PodEvent::Bookmark {
                resource_version: "4800".into(),
                initial_events_end: true
            }
        );
        assert_eq!(events[2], PodEvent::Deleted(added.clone()));
        let info = pod_info(&added.0);
        assert_eq!(
            (info.namespace.as_str(), info.name.as_str()),
            ("shop", "web-1")
        );
        assert_eq!(info.containers.len(), 2);
        assert!(info.containers[0].init && !info.containers[1].init);
        assert_eq!(info.containers[1].restart_count, 7);
        assert_eq!(
            info.containers[1].last_termination_reason.as_deref(),
            Some("Error")
        );
        assert_eq!(info.owner_kind, "ReplicaSet");
        assert!(info.silence.is_some());
        assert_eq!(info.created_ms, 1_796_119_200_000);
        let meta = &added.0.metadata;
        assert_eq!(meta.resource_version.as_deref(), Some("4711"));
        assert_eq!(
            meta.annotations.as_ref().map(|a| a.len()),
            Some(1),
            "only the silence is kept"
        );
        // What the API server writes for unset fields reads as JSON's absence.
        let status = added.0.status.as_ref().expect("a status");
        assert_eq!(
            (status.reason.as_ref(), status.start_time.as_ref()),
            (None, None)
        );
        assert!(meta.deletion_timestamp.is_none() && !info.deleting);
    }

    #[test]
    fn a_real_api_servers_watch_reads_whole() {
        let frames = frames_of(&REAL_WATCH[1..], 4096);
        let events: Vec<PodEvent> = frames
            .into_iter()
            .map(|f| pod_event(f).expect("an event"))
            .collect();
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match e {
                PodEvent::Added(_) => "added",
                PodEvent::Modified(_) => "modified",
                PodEvent::Deleted(_) => "deleted",
                PodEvent::Bookmark {
                    initial_events_end: true,
                    ..
                } => "end of initial events",
                PodEvent::Bookmark { .. } => "bookmark",
                PodEvent::Error(_) => "error",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ["added"; 10].as_slice(),
                &[
                    "end of initial events",
                    "modified",
                    "modified",
                    "deleted",
                    "bookmark",
                ]
            ]
            .concat()
        );
        let pods: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                PodEvent::Added(pod) => Some(pod_info(&pod.0)),
                _ => None,
            })
            .collect();
        let owned = pods.iter().find(|p| p.name == "owned").expect("owned");
        assert!(owned.deleting && owned.silence.is_some(), "{owned:?}");
        assert_eq!(owned.owner_kind, "ReplicaSet");
        assert_eq!(owned.containers.len(), 2);
        let crash = pods
            .iter()
            .find(|p| p.name == "crashloop")
            .expect("crashloop");
        assert_eq!(crash.containers[0].restart_count, 4);
        assert!(
            pods.iter()
                .all(|p| p.namespace == "web" && !p.uid.is_empty())
        );
    }

    #[test]
    fn an_oversized_frame_is_refused_before_its_bytes_are_kept() {
        let mut frames = Frames::default();
        frames.push(&u32::MAX.to_be_bytes());
        assert!(matches!(
            frames.next_frame(),
            Err(ProtobufError::FrameTooLarge(_))
        ));
        // A frame at the bound waits for its bytes.
        let mut frames = Frames::default();
        frames.push(&(MAX_FRAME_BYTES as u32).to_be_bytes());
        assert!(matches!(frames.next_frame(), Ok(None)));
    }

    #[test]
    fn errors_and_strange_events_are_read_or_refused_with_their_text_made_safe() {
        let gone = WireStatus {
            status: text("Failure"),
            message: text("too old resource version: 1 (4711)\u{1b}[2J\nforged line"),
            reason: text("Expired"),
            code: Some(410),
        };
        let Some(frame) = frames_of(&framed("ERROR", &gone), 1000).pop() else {
            panic!("no frame");
        };
        let PodEvent::Error(status) = pod_event(frame).expect("an error event") else {
            panic!("not an error");
        };
        assert_eq!(status.code, 410);
        assert!(
            !status.message.contains(['\u{1b}', '\n']),
            "{}",
            status.message
        );
        assert!(status.message.starts_with("too old resource version"));
        let alone = status_from_envelope(envelope(&gone)).expect("a status");
        assert_eq!(alone, status);

        let strange = frames_of(&framed("RENAMED\u{7}", &crash_looping_pod()), 1000);
        let error = pod_event(strange[0].clone()).expect_err("unknown type");
        assert!(error.to_string().contains("RENAMED\\u{7}"), "{error}");
        assert!(matches!(
            pod_from_envelope(Bytes::from_static(b"{\"kind\":\"Pod\"}")),
            Err(ProtobufError::NoMagic { .. })
        ));
        assert!(matches!(
            pod_from_envelope(Bytes::from_static(b"k8s\0\x12\xff")),
            Err(ProtobufError::Decode { .. })
        ));
        let far = WirePod {
            metadata: Some(WireMeta {
                creation_timestamp: Some(WireTime {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                ..WireMeta::default()
            }),
            ..WirePod::default()
        };
        assert!(matches!(
            pod_from_envelope(envelope(&far)),
            Err(ProtobufError::TimeOutOfRange { .. })
        ));
    }
}
