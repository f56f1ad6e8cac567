//! A real Alertmanager (and Prometheus) for tests (built from the Go module proxy by
//! scripts/build-control-plane) on a free loopback port, clustering off, its storage
//! and log in a temporary directory. Alerts are posted and silences created through
//! its own API v2, as Prometheus and amtool do. It can be stopped and started again
//! on the same port and storage. Dropping it stops the process.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::control_plane::{binary, spawn};
use crate::http_client::{free_port, get, send};

pub struct Alertmanager {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

/// RFC 3339 for `now + offset_s` seconds (negative: in the past).
pub fn rfc3339(offset_s: i64) -> String {
    let now = podlight::state::wall_clock_ms() as i64;
    podlight::explain::time(u64::try_from(now + offset_s * 1000).unwrap_or(0))
}

impl Alertmanager {
    pub fn start() -> Alertmanager {
        let dir = tempfile::tempdir().expect("temp dir");
        // One route to a receiver that sends nothing: the alerts are only read back.
        std::fs::write(
            dir.path().join("alertmanager.yml"),
            "route:\n  receiver: nobody\n  group_wait: 1s\nreceivers:\n  - name: nobody\n",
        )
        .expect("config");
        let mut alertmanager = Alertmanager {
            dir,
            port: free_port(),
            child: None,
        };
        alertmanager.start_again();
        alertmanager
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// Starts it (again, after [`Alertmanager::stop`]) and waits until it is ready.
    pub fn start_again(&mut self) {
        let mut command = Command::new(binary("alertmanager"));
        command
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            // No gossip: nothing listens beyond the one loopback port.
            .arg("--cluster.listen-address=");
        self.child = Some(spawn(command, &self.dir.path().join("alertmanager.log")));
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(self.port, "/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(
                Instant::now() < deadline,
                "alertmanager did not become ready: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id, for its CPU and memory.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Posts alerts as Prometheus does: `POST /api/v2/alerts`.
    pub fn post(&self, alerts: &[Value]) {
        let (status, body) = send(
            self.port,
            "POST",
            "/api/v2/alerts",
            &Value::Array(alerts.to_vec()).to_string(),
        )
        .expect("alertmanager answers");
        assert_eq!(status, 200, "posting alerts: {body}");
    }

    /// An alert about `node` (label `node_label`) that ends `ends_in_s` from now
    /// (Prometheus re-sends firing alerts with an end a few minutes ahead; an end in
    /// the past resolves it).
    pub fn alert(
        name: &str,
        severity: &str,
        node_label: &str,
        node: &str,
        ends_in_s: i64,
    ) -> Value {
        json!({
            "labels": {"alertname": name, "severity": severity, node_label: node},
            "annotations": {"summary": format!("{name} on {node}")},
            "startsAt": rfc3339(-60),
            "endsAt": rfc3339(ends_in_s),
            "generatorURL": "http://prometheus.invalid/graph",
        })
    }

    /// Silences alerts named `name` for an hour; the silence's id.
    pub fn silence(&self, name: &str) -> String {
        let silence = json!({
            "matchers": [{"name": "alertname", "value": name, "isRegex": false, "isEqual": true}],
            "startsAt": rfc3339(-1),
            "endsAt": rfc3339(3600),
            "createdBy": "podlight-test",
            "comment": "known",
        });
        let (status, body) = send(self.port, "POST", "/api/v2/silences", &silence.to_string())
            .expect("alertmanager answers");
        assert_eq!(status, 200, "creating a silence: {body}");
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["silenceID"].as_str().map(str::to_string))
            .expect("a silence id")
    }

    /// Expires a silence.
    pub fn unsilence(&self, id: &str) {
        let (status, body) = send(self.port, "DELETE", &format!("/api/v2/silence/{id}"), "")
            .expect("alertmanager answers");
        assert_eq!(status, 200, "expiring a silence: {body}");
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real Prometheus (built from the Go module proxy by scripts/build-control-plane,
/// without service discovery) on a free loopback port, scraping `targets` every second
/// and evaluating `rules` (a rule file's text) every second. Dropping it stops it.
pub struct Prometheus {
    _dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Prometheus {
    pub fn start(targets: &[String], rules: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        std::fs::write(dir.path().join("rules.yml"), rules).expect("rules");
        let targets = targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: podlight\n    static_configs:\n      - targets: [{targets}]\n",
                dir.path().join("rules.yml").display()
            ),
        )
        .expect("config");
        let mut command = Command::new(binary("prometheus"));
        command
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let child = spawn(command, &dir.path().join("prometheus.log"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(port, "/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready: {}",
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Prometheus {
            _dir: dir,
            port,
            child,
        }
    }

    /// Its alerts (`GET /api/v1/alerts`): (alert name, state) pairs.
    pub fn alerts(&self) -> Vec<(String, String)> {
        send(self.port, "GET", "/api/v1/alerts", "")
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| {
                v["data"]["alerts"].as_array().map(|alerts| {
                    alerts
                        .iter()
                        .map(|a| {
                            (
                                a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                                a["state"].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// Every rule it loaded and its health (`GET /api/v1/rules`).
    pub fn rules(&self) -> Vec<(String, String)> {
        send(self.port, "GET", "/api/v1/rules", "")
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| {
                v["data"]["groups"].as_array().map(|groups| {
                    groups
                        .iter()
                        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                        .map(|r| {
                            (
                                r["name"].as_str().unwrap_or("").to_string(),
                                r["health"].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect()
                })
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
