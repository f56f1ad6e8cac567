//! Prometheus metrics. Counters the agent owns are updated where things happen;
//! those owned by the device and cluster layers are copied in at scrape time.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::AgentStatus;
use crate::state::PodState;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pods: Family<Labels, Gauge>,
    pub evaluations: Counter,
    pub evaluation_errors: Counter,
    pub evaluation_seconds: Histogram,
    evaluations_throttled: Counter,
    pub reloads: Family<Labels, Counter>,
    shadow_frames: Family<Labels, Counter>,
    active_policy: Family<Labels, Gauge>,
    device_connected: Gauge,
    device_writes: Counter,
    device_errors: Counter,
    device_reconnects: Counter,
    watch_restarts: Counter,
    watch_synced: Gauge,
    alerts: Gauge,
    alerts_stale: Gauge,
    alert_polls: Family<Labels, Counter>,
    watch_lists: Family<Labels, Counter>,
    alerts_last_success: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("podlight");
        let pods = Family::<Labels, Gauge>::default();
        let evaluations = Counter::default();
        let evaluation_errors = Counter::default();
        let evaluations_throttled = Counter::default();
        // 1 µs .. ~1 s
        let evaluation_seconds = Histogram::new(exponential_buckets(1e-6, 4.0, 11));
        let reloads = Family::<Labels, Counter>::default();
        // Every result from the start, at 0: a rate or increase over them sees the
        // first failure (a series that appears at 1 has no increase).
        for result in ["ok", "failed", "unverified"] {
            let _ = reloads.get_or_create(&vec![("result".to_string(), result.to_string())]);
        }
        let shadow_frames = Family::<Labels, Counter>::default();
        let active_policy = Family::<Labels, Gauge>::default();
        let (device_connected, device_writes, device_errors, device_reconnects) = (
            Gauge::default(),
            Counter::default(),
            Counter::default(),
            Counter::default(),
        );
        let (watch_restarts, watch_synced) = (Counter::default(), Gauge::default());
        let (alerts, alerts_stale, alerts_last_success) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        let alert_polls = Family::<Labels, Counter>::default();
        let watch_lists = Family::<Labels, Counter>::default();
        registry.register(
            "pods",
            "Pods on the node per classified state",
            pods.clone(),
        );
        registry.register("evaluations", "Policy evaluations", evaluations.clone());
        registry.register(
            "evaluation_errors",
            "Policy evaluations that failed (last good frame kept)",
            evaluation_errors.clone(),
        );
        registry.register(
            "evaluation_seconds",
            "Time to evaluate the policy",
            evaluation_seconds.clone(),
        );
        registry.register(
            "evaluations_throttled",
            "Evaluations delayed so the policy stays within a quarter of a core",
            evaluations_throttled.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy reloads by result (ok, failed, unverified: a signature did not verify)",
            reloads.clone(),
        );
        registry.register(
            "shadow_frames",
            "Shadow policy frames compared with the active policy's, by result (same, differs, failed)",
            shadow_frames.clone(),
        );
        registry.register(
            "active_policy",
            "The active policy (1), by name and sha256",
            active_policy.clone(),
        );
        registry.register(
            "device_connected",
            "BlinkSticks connected",
            device_connected.clone(),
        );
        registry.register(
            "device_writes",
            "HID reports written",
            device_writes.clone(),
        );
        registry.register(
            "device_errors",
            "HID writes that failed",
            device_errors.clone(),
        );
        registry.register(
            "device_reconnects",
            "Times a stick came back after being lost",
            device_reconnects.clone(),
        );
        registry.register(
            "watch_restarts",
            "Cluster watch failures retried with backoff",
            watch_restarts.clone(),
        );
        registry.register(
            "watch_lists",
            "Lists the cluster watch made (at start and after losing its place), by mode: streaming (watch events from the API server's cache) or paged (servers with WatchList off)",
            watch_lists.clone(),
        );
        registry.register(
            "watch_synced",
            "The cluster watch has listed (1) or not (0)",
            watch_synced.clone(),
        );
        registry.register(
            "alerts",
            "Alerts from Alertmanager in the snapshot",
            alerts.clone(),
        );
        registry.register(
            "alerts_stale",
            "The last Alertmanager poll failed (1): the alerts shown are the last read",
            alerts_stale.clone(),
        );
        registry.register(
            "alert_polls",
            "Alertmanager polls by result (ok, failed)",
            alert_polls.clone(),
        );
        registry.register(
            "alerts_last_success_timestamp_seconds",
            "When Alertmanager last answered (Unix seconds)",
            alerts_last_success.clone(),
        );
        Metrics {
            registry,
            pods,
            evaluations,
            evaluation_errors,
            evaluation_seconds,
            evaluations_throttled,
            reloads,
            shadow_frames,
            active_policy,
            device_connected,
            device_writes,
            device_errors,
            device_reconnects,
            watch_restarts,
            watch_synced,
            alerts,
            alerts_stale,
            alert_polls,
            watch_lists,
            alerts_last_success,
        }
    }
}

fn catch_up(counter: &Counter, now: u64) {
    counter.inc_by(now.saturating_sub(counter.get()));
}

impl Metrics {
    /// Counts a reload by result: `ok`, `failed` or `unverified`.
    /// An evaluation was delayed to keep the policy within its share of a core.
    pub fn evaluation_throttled(&self) {
        self.evaluations_throttled.inc();
    }

    pub fn reload(&self, result: &str) {
        self.reloads
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
    }

    pub fn shadow_frame(&self, result: &str) {
        self.shadow_frames
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
    }

    /// The Prometheus text exposition, with gauges brought up to date.
    pub fn render(&self, status: &AgentStatus) -> String {
        let snapshot = status.snapshot.borrow().clone();
        for pod_state in PodState::ALL {
            let labels = vec![("state".to_string(), pod_state.name().to_string())];
            self.pods
                .get_or_create(&labels)
                .set(i64::from(snapshot.counts.of(pod_state)));
        }
        let policy = status.policy();
        self.active_policy.clear();
        self.active_policy
            .get_or_create(&vec![
                ("name".to_string(), policy.name),
                ("sha256".to_string(), policy.sha256),
            ])
            .set(1);
        let device = &status.device;
        self.device_connected
            .set(i64::try_from(device.connected()).unwrap_or(0));
        catch_up(&self.device_writes, device.writes());
        catch_up(&self.device_errors, device.errors());
        catch_up(&self.device_reconnects, device.reconnects());
        if let Some(cluster) = &status.cluster {
            catch_up(&self.watch_restarts, cluster.watch_errors());
            let lists = cluster.lists();
            for (mode, count) in [("streaming", lists.streamed), ("paged", lists.paged)] {
                let counter = self
                    .watch_lists
                    .get_or_create(&vec![("mode".to_string(), mode.to_string())])
                    .clone();
                catch_up(&counter, count);
            }
        }
        self.watch_synced.set(i64::from(status.ready_parts().0));
        if let Some(alerts) = &status.alerts {
            let report = alerts.report();
            self.alerts
                .set(i64::try_from(report.alerts).unwrap_or(i64::MAX));
            self.alerts_stale.set(i64::from(report.stale));
            let polls = |result: &str| {
                self.alert_polls
                    .get_or_create(&vec![("result".to_string(), result.to_string())])
                    .clone()
            };
            catch_up(&polls("ok"), report.polls.saturating_sub(report.failures));
            catch_up(&polls("failed"), report.failures);
            self.alerts_last_success
                .set(i64::try_from(report.last_success_ms.unwrap_or(0) / 1000).unwrap_or(0));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
