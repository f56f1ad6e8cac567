//! A watch of pods in protobuf, for the cluster light's streamed list of every pod:
//! kube-runtime's watcher reads JSON only, which the API server takes 4.9–5.5 s to
//! encode for 110,000 pods on the reference machine against 2.8–3.3 s in protobuf.
//! It behaves as that watcher does with streaming lists (the events a model sees
//! are the same): `Init`, the initial events, `InitDone` at the bookmark that ends
//! them, then changes from the last version seen; a watch that ends is resumed from
//! there, one that ends before its initial events are done (an API server can end it
//! early, with nothing said) or is told its place is gone (410) lists again; an end
//! before the initial events are done, or at once without an event, is returned as
//! an error so that the backoff spaces the next attempt.
//! Errors are returned as that watcher's errors, so the same backoff paces retries
//! and an API server that refuses streaming lists is recognised the same way.

use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http::header::{ACCEPT, ACCEPT_ENCODING, HeaderValue};
use http_body_util::BodyExt;
use kube::Client;
use kube::api::WatchParams;
use kube::client::Body;
use kube::runtime::watcher;
use tokio::time::{Instant, timeout_at};

use super::protobuf::{Frames, PodEvent, ProtobufError, pod_event, status_from_envelope};
use super::slim::SlimPod;
use crate::policy::untrusted::{MAX_PLUGIN_TEXT, sanitize, sanitize_bytes};

/// What the API server is asked for: protobuf, framed for a watch.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// How long the API server keeps one watch open (kube-runtime's watcher asks the
/// same); the next one resumes where it ended.
const WATCH_SECONDS: u32 = 290;

/// How long past the API server's own end a connection is kept before it is
/// dropped and resumed: a server that stops sending without closing is not waited
/// for forever.
const WATCH_GRACE: Duration = Duration::from_secs(30);

/// A watch that ends sooner than this without a single event (not even a bookmark)
/// is a failure, paced by the backoff, not an end to resume from at once.
const QUIET_END: Duration = Duration::from_secs(1);

/// The longest wait for the API server's answer to a watch request (its headers, or
/// its whole error answer).
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// The API server's answer to a watch from a version older than it keeps (410
/// Gone, as an answer or as an error event): list again.
const GONE: u16 = 410;

/// The most of an error answer read.
const MAX_ERROR_ANSWER: usize = 64 * 1024;

/// Why a protobuf watch could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufWatchError {
    #[error("the API server did not answer the watch request within {0:?}; is it overloaded?")]
    NoAnswer(Duration),
    #[error("reading the watch from the API server failed")]
    Read(#[source] kube::Error),
    #[error("the watch stream from the API server is malformed")]
    Malformed(#[source] ProtobufError),
    #[error(
        "the API server ended the pod watch after {frames} events, before its initial events were done; listing again"
    )]
    EndedEarly { frames: u64 },
    #[error("the API server ended the pod watch at once, without an event")]
    EndedAtOnce,
    #[error("the API server answered {code} with something that is not a status: {text}")]
    UnreadableError { code: u16, text: String },
}

/// Where a watch is.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    /// A list is to start (the first, or again).
    Unlisted,
    /// The initial events are arriving.
    Listing,
    /// Listed; changes come after this version.
    Watching(String),
}

/// The pod watch of `pods` (every namespace's, or one's), narrowed by the selectors
/// of `config`.
pub(super) fn protobuf_pod_watch(
    pods: &kube::Api<SlimPod>,
    config: &watcher::Config,
) -> impl Stream<Item = watcher::Result<watcher::Event<SlimPod>>> + Send + 'static {
    let watch = PodWatch {
        request: WatchRequest {
            client: pods.clone().into_client(),
            pods: kube::core::Request::new(pods.resource_url()),
            label_selector: config.label_selector.clone(),
            field_selector: config.field_selector.clone(),
        },
        place: Place::Unlisted,
        connection: None,
    };
    futures::stream::unfold(watch, |mut watch| async move {
        let item = watch.next_event().await;
        Some((item, watch))
    })
}

struct PodWatch {
    request: WatchRequest,
    place: Place,
    connection: Option<Connection>,
}

/// What every request of one watch asks for.
struct WatchRequest {
    client: Client,
    pods: kube::core::Request,
    label_selector: Option<String>,
    field_selector: Option<String>,
}

/// One open watch request.
struct Connection {
    body: Body,
    frames: Frames,
    /// Frames read so far, and when it opened.
    frames_read: u64,
    opened: Instant,
    /// When it is dropped (and resumed) whatever the API server does.
    deadline: Instant,
}

impl PodWatch {
    async fn next_event(&mut self) -> watcher::Result<watcher::Event<SlimPod>> {
        loop {
            let Some(connection) = self.connection.as_mut() else {
                let listing = !matches!(self.place, Place::Watching(_));
                match self.request.connect(&self.place).await {
                    Ok(connection) => self.connection = Some(connection),
                    Err(error) => {
                        if matches!(&error, kube::Error::Api(status) if status.code == GONE) {
                            self.place = Place::Unlisted;
                        }
                        return Err(watcher::Error::WatchStartFailed(error));
                    }
                }
                if listing {
                    self.place = Place::Listing;
                    return Ok(watcher::Event::Init);
                }
                continue;
            };
            let frame = match connection.next_frame().await {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    let (frames, open_for) = (connection.frames_read, connection.opened.elapsed());
                    self.connection = None;
                    if self.place == Place::Listing {
                        // Not a failure of ours, but another list at once could meet
                        // the same end: the backoff spaces them.
                        return Err(self.failed(ProtobufWatchError::EndedEarly { frames }));
                    }
                    if frames == 0 && open_for < QUIET_END {
                        return Err(self.failed(ProtobufWatchError::EndedAtOnce));
                    }
                    continue;
                }
                Err(error) => return Err(self.failed(error)),
            };
            let event = match pod_event(frame) {
                Ok(event) => event,
                Err(error) => return Err(self.failed(ProtobufWatchError::Malformed(error))),
            };
            let listing = self.place == Place::Listing;
            match event {
                PodEvent::Added(pod) | PodEvent::Modified(pod) => {
                    self.seen(&pod);
                    return Ok(if listing {
                        watcher::Event::InitApply(pod)
                    } else {
                        watcher::Event::Apply(pod)
                    });
                }
                PodEvent::Deleted(pod) => {
                    self.seen(&pod);
                    return Ok(watcher::Event::Delete(pod));
                }
                PodEvent::Bookmark {
                    resource_version,
                    initial_events_end,
                } => {
                    if resource_version.is_empty() {
                        continue;
                    }
                    if listing && initial_events_end {
                        self.place = Place::Watching(resource_version);
                        return Ok(watcher::Event::InitDone);
                    }
                    if !listing {
                        self.place = Place::Watching(resource_version);
                    }
                }
                PodEvent::Error(status) => {
                    self.connection = None;
                    if listing || status.code == GONE {
                        self.place = Place::Unlisted;
                    }
                    return Err(watcher::Error::WatchError(Box::new(status)));
                }
            }
        }
    }

    /// Follows the version of a pod the watch (not its initial list) sent.
    fn seen(&mut self, pod: &SlimPod) {
        if let (Place::Watching(version), Some(seen)) =
            (&mut self.place, pod.0.metadata.resource_version.as_ref())
        {
            version.clone_from(seen);
        }
    }

    /// Drops the connection after `error`: a list under way starts again, a watch
    /// resumes from its last version.
    fn failed(&mut self, error: ProtobufWatchError) -> watcher::Error {
        self.connection = None;
        if self.place == Place::Listing {
            self.place = Place::Unlisted;
        }
        watcher::Error::WatchFailed(kube::Error::Service(Box::new(error)))
    }
}

impl WatchRequest {
    /// Opens a watch from `place`.
    async fn connect(&self, place: &Place) -> Result<Connection, kube::Error> {
        let mut params = match place {
            Place::Watching(_) => WatchParams::default(),
            Place::Unlisted | Place::Listing => WatchParams::streaming_lists(),
        }
        .timeout(WATCH_SECONDS);
        if let Some(selector) = &self.label_selector {
            params = params.labels(selector);
        }
        if let Some(selector) = &self.field_selector {
            params = params.fields(selector);
        }
        let version = match place {
            Place::Watching(version) => version.as_str(),
            Place::Unlisted | Place::Listing => "",
        };
        let mut request = self
            .pods
            .watch(&params, version)
            .map_err(kube::Error::BuildRequest)?;
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static(PROTOBUF));
        // Compression would cost the API server more CPU than the loopback or LAN
        // saves; kube's client sends the same for its watches.
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let deadline = Instant::now() + ANSWER_DEADLINE;
        let response = timeout_at(deadline, self.client.send(request.map(Body::from)))
            .await
            .map_err(|_| service(ProtobufWatchError::NoAnswer(ANSWER_DEADLINE)))??;
        let code = response.status();
        if !code.is_success() {
            return Err(error_answer(code.as_u16(), response.into_body(), deadline).await);
        }
        Ok(Connection {
            body: response.into_body(),
            frames: Frames::default(),
            frames_read: 0,
            opened: Instant::now(),
            deadline: Instant::now() + Duration::from_secs(u64::from(WATCH_SECONDS)) + WATCH_GRACE,
        })
    }
}

impl Connection {
    /// The next frame; `None` when the API server ended the watch (or it outlived
    /// its deadline).
    async fn next_frame(&mut self) -> Result<Option<Bytes>, ProtobufWatchError> {
        loop {
            if let Some(frame) = self
                .frames
                .next_frame()
                .map_err(ProtobufWatchError::Malformed)?
            {
                self.frames_read += 1;
                return Ok(Some(frame));
            }
            let Ok(read) = timeout_at(self.deadline, self.body.frame()).await else {
                return Ok(None);
            };
            match read {
                None => return Ok(None),
                Some(Err(error)) => return Err(ProtobufWatchError::Read(error)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.frames.push(&data);
                    }
                }
            }
        }
    }
}

fn service(error: ProtobufWatchError) -> kube::Error {
    kube::Error::Service(Box::new(error))
}

/// The API server's refusal (`code`), as kube's client returns one: its `Status`,
/// in protobuf or (from a proxy, or an API server of another kind) JSON.
async fn error_answer(code: u16, mut body: Body, deadline: Instant) -> kube::Error {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ERROR_ANSWER {
        match timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(error))) => return error,
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(MAX_ERROR_ANSWER);
    let bytes = Bytes::from(bytes);
    let status = status_from_envelope(bytes.clone()).ok().or_else(|| {
        serde_json::from_slice::<kube::core::Status>(&bytes)
            .ok()
            .map(|mut status| {
                status.message = sanitize(&status.message, MAX_PLUGIN_TEXT);
                status.reason = sanitize(&status.reason, MAX_PLUGIN_TEXT);
                status
            })
    });
    match status {
        Some(mut status) => {
            if status.code == 0 {
                status.code = code;
            }
            kube::Error::Api(Box::new(status))
        }
        None => service(ProtobufWatchError::UnreadableError {
            code,
            text: sanitize_bytes(&bytes, MAX_PLUGIN_TEXT),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::protobuf::{GONE_EVENT, REAL_WATCH};
    use crate::cluster::watch::refuses_streaming;
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// The real watch's frames, each with its length.
    fn real_frames() -> Vec<Vec<u8>> {
        let mut frames = Frames::default();
        frames.push(&REAL_WATCH[1..]);
        let mut out = Vec::new();
        while let Ok(Some(frame)) = frames.next_frame() {
            out.push([&(frame.len() as u32).to_be_bytes()[..], &frame].concat());
        }
        out
    }

    enum Answer {
        Watch(Vec<u8>),
        Refuse(u16, serde_json::Value),
    }

    /// An HTTP server on loopback that answers each request with the next answer and
    /// closes the connection; the requests' heads come out of the channel.
    async fn scripted(answers: Vec<Answer>) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (heads, received) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for answer in answers {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        break;
                    }
                    head.push(byte[0]);
                }
                let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
                let (status, kind, body) = match answer {
                    Answer::Watch(body) => (200, PROTOBUF, body),
                    Answer::Refuse(code, status) => {
                        (code, "application/json", status.to_string().into_bytes())
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            }
        });
        (port, received)
    }

    fn kind(item: &watcher::Result<watcher::Event<SlimPod>>) -> String {
        match item {
            Ok(watcher::Event::Init) => "init".into(),
            Ok(watcher::Event::InitApply(_)) => "init-apply".into(),
            Ok(watcher::Event::InitDone) => "init-done".into(),
            Ok(watcher::Event::Apply(_)) => "apply".into(),
            Ok(watcher::Event::Delete(_)) => "delete".into(),
            Err(watcher::Error::WatchStartFailed(kube::Error::Api(status))) => {
                format!("refused {}", status.code)
            }
            Err(watcher::Error::WatchError(status)) => format!("error event {}", status.code),
            Err(watcher::Error::WatchFailed(kube::Error::Service(error))) => {
                format!("failed: {error}")
            }
            Err(error) => format!("other: {error}"),
        }
    }

    /// The ends and refusals a real API server gives only now and then (the tests
    /// on a real one cover the rest), from a server that answers with the bytes a
    /// real one sent.
    #[tokio::test]
    async fn the_watch_lists_resumes_and_lists_again_as_the_api_server_answers() {
        let frames = real_frames();
        assert_eq!(frames.len(), 15, "ten pods, the end of the list, four more");
        let version = match crate::cluster::protobuf::pod_event(frames[11][4..].to_vec().into()) {
            Ok(crate::cluster::protobuf::PodEvent::Modified(pod)) => {
                pod.0.metadata.resource_version.expect("a version")
            }
            other => panic!("{other:?}"),
        };
        let refusal = |code: u16, message: &str| {
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": message, "reason": "Invalid", "code": code})
        };
        let (port, mut heads) = scripted(vec![
            // A list the API server ends early, then one that completes and a change.
            Answer::Watch(frames[..4].concat()),
            Answer::Watch(frames[..12].concat()),
            // Resumed: ends at once; refused as too old; listed again, told its
            // place is gone; refused streaming.
            Answer::Watch(Vec::new()),
            Answer::Refuse(410, refusal(410, "too old resource version")),
            Answer::Watch([frames[..11].concat(), GONE_EVENT[1..].to_vec()].concat()),
            Answer::Refuse(
                422,
                refusal(422, "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"),
            ),
        ])
        .await;
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let pods: kube::Api<SlimPod> = kube::Api::all(client);
        let mut watch = Box::pin(protobuf_pod_watch(&pods, &watcher::Config::default()));
        let mut seen = Vec::new();
        let mut last = None;
        while seen.len() < 40 {
            let item = tokio::time::timeout(Duration::from_secs(20), watch.next())
                .await
                .expect("an event within 20 s")
                .expect("the watch goes on");
            seen.push(kind(&item));
            if seen.last().is_some_and(|k| k == "refused 422") {
                last = Some(item);
                break;
            }
        }
        let mut want: Vec<String> = vec!["init".into()];
        want.extend(["init-apply"; 4].map(String::from));
        want.push(
            "failed: the API server ended the pod watch after 4 events, before its initial events were done; listing again"
                .into(),
        );
        want.push("init".into());
        want.extend(["init-apply"; 10].map(String::from));
        want.extend(["init-done", "apply"].map(String::from));
        want.push("failed: the API server ended the pod watch at once, without an event".into());
        want.push("refused 410".into());
        want.push("init".into());
        want.extend(["init-apply"; 10].map(String::from));
        want.extend(["init-done", "error event 410", "refused 422"].map(String::from));
        assert_eq!(seen, want);
        let last = last.expect("refused");
        assert!(refuses_streaming(&last.expect_err("an error")));

        let heads: Vec<String> = std::iter::from_fn(|| heads.try_recv().ok()).collect();
        assert_eq!(heads.len(), 6);
        for head in &heads {
            assert!(head.starts_with("GET /api/v1/pods?"), "{head}");
            assert!(
                head.to_lowercase()
                    .contains("accept: application/vnd.kubernetes.protobuf"),
                "{head}"
            );
        }
        let listing = |head: &str| head.contains("sendInitialEvents=true");
        let listings: Vec<bool> = heads.iter().map(|h| listing(h)).collect();
        assert_eq!(listings, [true, true, false, false, true, true]);
        for resumed in &heads[2..4] {
            let query = resumed.split_whitespace().nth(1).unwrap_or_default();
            assert!(
                query
                    .split(['?', '&'])
                    .any(|p| p == format!("resourceVersion={version}")),
                "{resumed}"
            );
        }
    }
}
