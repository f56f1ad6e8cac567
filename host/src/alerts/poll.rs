//! Reading Alertmanager: `GET /api/v2/alerts` filtered to the node (or to alerts that
//! name any node, in cluster scope) every interval, spread by a tenth so many agents
//! do not poll in step. Alertmanager's API has no watch and no conditional GET; the
//! filter keeps each answer to the node's own alerts. Every read is bounded, has an
//! overall deadline and its text is sanitised (the registry transport). When
//! Alertmanager is down or slow the last alerts read stay, each until its own
//! `endsAt` (when Alertmanager itself would resolve it), and the status says they are
//! stale; nothing here waits on or blocks the pod path.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, Url};
use serde::Serialize;
use tokio::sync::watch;

use super::parse::{NodeLabel, ParsedAlerts, parse_alerts};
use crate::lock::lock;
use crate::policy::untrusted::sanitize;
use crate::registry::auth::Credentials;
use crate::registry::transport::{Exchange, Transport, TransportError, use_ring_crypto};
use crate::state::{Alert, wall_clock_ms};

/// Largest answer read: about 2,000 alerts with their labels.
pub const MAX_ALERTS_BYTES: usize = 4 << 20;
/// Largest token or password file read.
const MAX_SECRET_BYTES: u64 = 64 << 10;

/// How to reach Alertmanager.
#[derive(Debug, Clone)]
pub struct AlertmanagerOptions {
    /// Its base URL (`http://alertmanager.monitoring:9093`, with any path prefix).
    pub url: Url,
    pub node_label: NodeLabel,
    /// Time between polls (each spread by up to a tenth).
    pub interval: Duration,
    /// Overall deadline of one poll.
    pub deadline: Duration,
    /// PEM CA certificates trusted besides the built-in roots.
    pub extra_ca_pem: Vec<Vec<u8>>,
    pub auth: AlertmanagerAuth,
}

/// Credentials for Alertmanager (or the proxy in front of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertmanagerAuth {
    None,
    /// A bearer token read from this file before every poll (a projected
    /// ServiceAccount token rotates).
    BearerTokenFile(PathBuf),
    /// `user:password` in this file, sent as HTTP Basic.
    BasicAuthFile(PathBuf),
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("Alertmanager did not answer within {} s ({received} bytes received)", deadline.as_secs())]
    TooSlow { deadline: Duration, received: usize },
    #[error(
        "Alertmanager refused the request ({status}): {message}; give podlight credentials it accepts (--alertmanager-token-file or --alertmanager-basic-auth-file)"
    )]
    Refused { status: u16, message: String },
    #[error("Alertmanager: {0}")]
    Transport(#[source] TransportError),
    #[error("Alertmanager's answer is not API v2 alerts JSON: {0}")]
    Json(String),
    #[error("cannot read the Alertmanager credentials in {path}: {source}")]
    Credentials {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<TransportError> for AlertsError {
    fn from(error: TransportError) -> Self {
        match error {
            TransportError::TooSlow {
                deadline, received, ..
            } => AlertsError::TooSlow { deadline, received },
            TransportError::Status {
                status, message, ..
            } if status.as_u16() == 401 || status.as_u16() == 403 => AlertsError::Refused {
                status: status.as_u16(),
                message,
            },
            other => AlertsError::Transport(other),
        }
    }
}

/// How reading alerts goes, for the status page, metrics and logs.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AlertsReport {
    pub url: String,
    pub node_label: String,
    pub interval_ms: u64,
    /// Alerts in the snapshot now.
    pub alerts: usize,
    /// Alerts the last answer held past the bound.
    pub dropped: usize,
    pub last_success_ms: Option<u64>,
    pub last_attempt_ms: Option<u64>,
    /// Why the last poll failed; none once one succeeds.
    pub last_error: Option<String>,
    /// The last poll failed (or none succeeded yet): the alerts shown are the last
    /// read, each kept until its own end.
    pub stale: bool,
    pub polls: u64,
    pub failures: u64,
    /// Bytes of answers read, in all.
    pub bytes: u64,
}

/// The report behind a lock, shared with the status page and metrics.
#[derive(Debug, Default)]
pub struct AlertsStatus {
    report: Mutex<AlertsReport>,
}

impl AlertsStatus {
    pub fn report(&self) -> AlertsReport {
        lock(&self.report).clone()
    }
}

/// A running poller: the alerts it read and how it goes. Stops when dropped.
pub struct AlertFeed {
    pub alerts: watch::Receiver<Arc<Vec<Alert>>>,
    pub status: Arc<AlertsStatus>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AlertFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads alerts with one HTTP client.
struct Poller {
    options: AlertmanagerOptions,
    transport: Transport,
    url: Url,
    node: Option<String>,
}

impl AlertFeed {
    /// Starts polling for the alerts about `node` (none: about any node, for the
    /// cluster light). Must be called inside a tokio runtime.
    pub fn start(options: AlertmanagerOptions, node: Option<String>) -> Result<AlertFeed, String> {
        use_ring_crypto();
        let transport = Transport::new(
            crate::registry::client::trusted_roots(&options.extra_ca_pem),
            Vec::new(),
            Credentials::default(),
        )
        .map_err(|e| e.to_string())?;
        let mut url = options.url.clone();
        url.set_path(&format!(
            "{}/api/v2/alerts",
            options.url.path().trim_end_matches('/')
        ));
        url.query_pairs_mut()
            .append_pair("active", "true")
            .append_pair("silenced", "true")
            .append_pair("inhibited", "true")
            .append_pair("unprocessed", "true")
            .append_pair("filter", &options.node_label.filter(node.as_deref()));
        let status = Arc::new(AlertsStatus {
            report: Mutex::new(AlertsReport {
                url: sanitize(options.url.as_str(), 300),
                node_label: options.node_label.0.clone(),
                interval_ms: options.interval.as_millis() as u64,
                stale: true,
                ..AlertsReport::default()
            }),
        });
        let (sender, alerts) = watch::channel(Arc::new(Vec::new()));
        let poller = Poller {
            options,
            transport,
            url,
            node,
        };
        let task = tokio::spawn(poller.run(sender, Arc::clone(&status)));
        Ok(AlertFeed {
            alerts,
            status,
            task,
        })
    }
}

impl Poller {
    async fn run(self, sender: watch::Sender<Arc<Vec<Alert>>>, status: Arc<AlertsStatus>) {
        let mut failing = false;
        loop {
            let attempt_ms = wall_clock_ms();
            let result = self.poll(attempt_ms).await;
            let mut report = lock(&status.report).clone();
            report.polls += 1;
            report.last_attempt_ms = Some(attempt_ms);
            let alerts = match result {
                Ok((parsed, bytes)) => {
                    if failing {
                        tracing::info!(url = %report.url, "Alertmanager answers again; alerts are current");
                    }
                    failing = false;
                    report.bytes += bytes as u64;
                    report.last_success_ms = Some(wall_clock_ms());
                    report.last_error = None;
                    report.stale = false;
                    report.dropped = parsed.dropped;
                    parsed.alerts
                }
                Err(error) => {
                    let error = error.to_string();
                    if !failing {
                        tracing::warn!(url = %report.url, %error, "cannot read alerts from Alertmanager; showing the last alerts read until each ends, retrying every interval");
                    }
                    failing = true;
                    report.failures += 1;
                    report.last_error = Some(error);
                    report.stale = true;
                    // What was read stays, each alert until its own end.
                    let now = wall_clock_ms();
                    sender
                        .borrow()
                        .iter()
                        .filter(|a| a.ends_at_ms == 0 || a.ends_at_ms > now)
                        .cloned()
                        .collect()
                }
            };
            report.alerts = alerts.len();
            *lock(&status.report) = report;
            sender.send_if_modified(|current| {
                let changed = **current != alerts;
                if changed {
                    *current = Arc::new(alerts);
                }
                changed
            });
            if sender.is_closed() {
                return;
            }
            tokio::time::sleep(crate::timing::spread(self.options.interval)).await;
        }
    }

    /// One poll: the node's alerts and the bytes read.
    async fn poll(&self, now_ms: u64) -> Result<(ParsedAlerts, usize), AlertsError> {
        let mut auth = self.authorization()?;
        let host = self.url.host_str().unwrap_or_default().to_string();
        let body = self
            .transport
            .send(
                &host,
                "",
                &mut auth,
                Exchange {
                    method: Method::GET,
                    url: self.url.clone(),
                    what: "alerts response",
                    accept: Some("application/json"),
                    content_type: None,
                    body: None,
                    limit: MAX_ALERTS_BYTES,
                    hint: "",
                    expected: 0,
                },
                self.options.deadline,
            )
            .await?;
        let parsed = parse_alerts(
            &body.bytes,
            &self.options.node_label,
            self.node.as_deref(),
            now_ms,
        )
        .map_err(|e| AlertsError::Json(sanitize(&e, 300)))?;
        Ok((parsed, body.bytes.len()))
    }

    /// The `Authorization` header, read anew each poll (tokens rotate).
    fn authorization(&self) -> Result<Option<String>, AlertsError> {
        use base64::Engine as _;
        let read = |path: &PathBuf| {
            use std::io::Read as _;
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_SECRET_BYTES).read_to_string(&mut text))
                .map_err(|source| AlertsError::Credentials {
                    path: path.display().to_string(),
                    source,
                })?;
            Ok::<_, AlertsError>(text.trim().to_string())
        };
        let header = match &self.options.auth {
            AlertmanagerAuth::None => return Ok(None),
            AlertmanagerAuth::BearerTokenFile(path) => format!("Bearer {}", read(path)?),
            AlertmanagerAuth::BasicAuthFile(path) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(read(path)?)
            ),
        };
        // A header value cannot carry control characters: refuse rather than send one.
        if !header.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(AlertsError::Credentials {
                path: match &self.options.auth {
                    AlertmanagerAuth::BearerTokenFile(p) | AlertmanagerAuth::BasicAuthFile(p) => {
                        p.display().to_string()
                    }
                    AlertmanagerAuth::None => String::new(),
                },
                source: std::io::Error::other("it holds characters a header cannot carry"),
            });
        }
        Ok(Some(header))
    }
}
