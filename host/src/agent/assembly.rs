//! The one place a running agent is put together: sticks (any bus: hidapi, an
//! emulator) → device manager → frame writer; the agent's status over the node's
//! snapshots; the HTTP status surface; then the first policy, the evaluator, the
//! reload watcher and the reporter. `podlight run`, `podlight demo`, the tests and the
//! benchmarks all describe their agent as an [`AgentConfig`] and start it here.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Agent, AgentParts, AgentStatus, EventSink, PolicySource, StatusReporter};
use crate::alerts::AlertFeed;
use crate::cluster::ClusterStatus;
use crate::device::writer::FrameObserver;
use crate::device::{Bus, DeviceManager, DeviceOptions, FrameWriter, WriterOptions};
use crate::policy::PolicyEngine;
use crate::quiet::QuietHours;
use crate::state::Snapshot;

/// What a running agent is made of.
pub struct AgentConfig {
    /// The sticks' bus: hidapi for real sticks, an emulator for the demo and tests.
    pub bus: Arc<dyn Bus>,
    pub device: DeviceOptions,
    pub writer: WriterOptions,
    /// Sees every frame written (the virtual display).
    pub observer: Option<FrameObserver>,
    /// The node's snapshots: the cluster watch's, the demo's, a test's.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The watch's status, for readiness and metrics; none without a cluster.
    pub cluster: Option<Arc<ClusterStatus>>,
    pub engine: Arc<PolicyEngine>,
    pub source: PolicySource,
    /// Where reload failures are recorded as Kubernetes Events.
    pub events: EventSink,
    /// Where this node's report is published.
    pub reporter: Option<StatusReporter>,
    /// `/healthz`, `/readyz`, `/metrics` and the status page; none: no HTTP.
    pub listen: Option<SocketAddr>,
    /// A candidate policy from the same source, evaluated on every change beside the
    /// active one and never shown (`--shadow-policy`).
    pub shadow: Option<String>,
    /// A brightness schedule applied after the policy and the cap.
    pub quiet: Option<Arc<QuietHours>>,
    /// Alerts read from Alertmanager, joined to the snapshots.
    pub alerts: Option<AlertFeed>,
    /// Policies stacked above `source`'s, bottom up: names in the same source.
    pub layers: Vec<String>,
}

impl AgentConfig {
    /// An agent on `bus` showing `snapshots` through the policy from `source`: default
    /// device and writer options, no cluster, Events, report or HTTP.
    pub fn new(
        bus: Arc<dyn Bus>,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        engine: Arc<PolicyEngine>,
        source: PolicySource,
    ) -> AgentConfig {
        AgentConfig {
            bus,
            device: DeviceOptions::default(),
            writer: WriterOptions::default(),
            observer: None,
            snapshots,
            cluster: None,
            engine,
            source,
            events: EventSink::none(),
            reporter: None,
            listen: None,
            shadow: None,
            quiet: None,
            alerts: None,
            layers: Vec::new(),
        }
    }

    /// Starts the agent and waits for its first policy (compiled if need be).
    pub async fn start(self) -> std::io::Result<RunningAgent> {
        let never = std::future::pending::<()>();
        tokio::pin!(never);
        self.start_unless(never, false)
            .await?
            .ok_or_else(|| std::io::Error::other("the agent stopped before it started"))
    }

    /// Starts the agent: the writer and HTTP at once (so `/healthz` answers and
    /// `/readyz` says why not ready while the first policy compiles), then the first
    /// policy. When `stop` resolves first, gives up — the LEDs off unless
    /// `leave_leds` — and returns none.
    pub async fn start_unless(
        self,
        stop: Pin<&mut impl Future<Output = ()>>,
        leave_leds: bool,
    ) -> std::io::Result<Option<RunningAgent>> {
        let manager = DeviceManager::new(self.bus, self.device);
        let writer = Arc::new(FrameWriter::spawn(manager, self.writer, self.observer));
        // Alerts join the pod snapshots before anything sees them.
        let (snapshots, alerts) = match self.alerts {
            Some(feed) => {
                let (joined, task) =
                    crate::alerts::with_alerts(self.snapshots, feed.alerts.clone());
                (joined, Some(Alerts { feed, task }))
            }
            None => (self.snapshots, None),
        };
        let status = AgentStatus::new(
            snapshots,
            writer.status(),
            self.cluster,
            alerts.as_ref().map(|a| Arc::clone(&a.feed.status)),
        );
        let http = match self.listen {
            Some(listen) => Some(Http::serve(listen, Arc::clone(&status)).await?),
            None => None,
        };
        let starting = Agent::start(AgentParts {
            engine: self.engine,
            source: self.source,
            writer: Arc::clone(&writer),
            status: Arc::clone(&status),
            events: self.events,
            reporter: self.reporter,
            shadow: self.shadow,
            quiet: self.quiet,
            layers: self.layers,
        });
        let agent = tokio::select! {
            agent = starting => agent,
            () = stop => {
                if let Some(http) = http {
                    http.stop().await;
                }
                if !leave_leds {
                    let _ = tokio::task::spawn_blocking(move || {
                        writer.turn_off(Duration::from_secs(1))
                    })
                    .await;
                }
                return Ok(None);
            }
        };
        Ok(Some(RunningAgent {
            agent,
            status,
            http,
            _alerts: alerts,
        }))
    }
}

/// The alert poller and the task that joins its alerts to the snapshots.
struct Alerts {
    feed: AlertFeed,
    task: JoinHandle<()>,
}

impl Drop for Alerts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running agent.
pub struct RunningAgent {
    agent: Agent,
    status: Arc<AgentStatus>,
    http: Option<Http>,
    _alerts: Option<Alerts>,
}

impl RunningAgent {
    pub fn status(&self) -> &Arc<AgentStatus> {
        &self.status
    }

    /// Where HTTP is served (the port the system picked for port 0).
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.address)
    }

    /// Stops serving and evaluating, finishes the write in progress and turns the LEDs
    /// off (unless `leave_leds`).
    pub async fn stop(self, leave_leds: bool) {
        if let Some(http) = self.http {
            http.stop().await;
        }
        self.agent.stop(leave_leds).await;
    }
}

/// The HTTP server and how to stop it.
struct Http {
    address: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Http {
    async fn serve(listen: SocketAddr, status: Arc<AgentStatus>) -> std::io::Result<Http> {
        let (stop, stop_rx) = watch::channel(false);
        let (address, task) = crate::http::serve(listen, status, stop_rx).await?;
        tracing::info!(%address, "serving /healthz, /readyz, /metrics and the status page");
        Ok(Http {
            address,
            stop,
            task,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_millis(500), self.task).await;
    }
}
