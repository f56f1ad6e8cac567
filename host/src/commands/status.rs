//! `podlight status`: what every node's agent runs, from the reports the agents
//! publish; with `--wait --policy-sha256 SHA`, a rollout's progress until every node
//! runs that policy (exit 0) or one refuses it or time runs out (exit 1, naming the
//! nodes and why).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use podlight::cluster::{ClusterError, ReportLeases, expected_agents};
use podlight::report::{DeviceReport, Expected, Published, Rollout, human_age, rollout, short_sha};
use podlight::state::wall_clock_ms;

use super::args::ConnectArgs;

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The namespace podlight runs in (its agents report there).
    #[arg(long, short = 'n', default_value = "podlight")]
    namespace: String,
    /// Whether every node runs the policy with this sha256 (of the `.wasm` file, or of
    /// the `.wasm.gz` file as delivered): exit 0 if so, 1 if not.
    #[arg(long)]
    policy_sha256: Option<String>,
    /// Wait until every node runs the `--policy-sha256` policy; give up when one
    /// refuses it or `--timeout` passes.
    #[arg(long, requires = "policy_sha256")]
    wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// `table` for people, `json` for scripts.
    #[arg(long, short = 'o', default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// Between two looks while waiting: one list request each.
const POLL: Duration = Duration::from_secs(1);

pub fn status(args: StatusArgs) -> Result<()> {
    super::runtime()?.block_on(async {
        let connection = args.connect.connect().await?;
        let client = connection.client.clone();
        let leases = ReportLeases::new(connection.client, &connection.url, &args.namespace);
        let list = || async {
            let listed = tokio::time::timeout(Duration::from_secs(30), leases.list()).await;
            match listed {
                Ok(Ok(published)) => Ok(published),
                Ok(Err(error)) => Err(anyhow::Error::new(leases.error(error))),
                Err(_) => bail!(
                    "the API server at {} did not answer within 30 s",
                    connection.url
                ),
            }
        };
        let Some(sha256) = &args.policy_sha256 else {
            let published = list().await?;
            print(&args, &published)?;
            if published.is_empty() {
                eprintln!("{}", nobody_reports(&args.namespace));
            }
            return Ok(());
        };
        // The nodes that should report, from the workloads: without the permission to
        // read them, the reports alone are compared (and that is said once).
        let mut can_read_workloads = true;
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        let mut said = String::new();
        loop {
            let published = list().await?;
            let read = if can_read_workloads {
                read_expected(client.clone(), &args.namespace, &connection.url).await
            } else {
                Ok(None)
            };
            let wanted: Option<Expected> = match read {
                Ok(wanted) => wanted,
                Err(error) => {
                    eprintln!(
                        "note: nodes whose agent never reported cannot be named: {error}; comparing \
                         the reports alone (reading the workloads needs list on daemonsets, \
                         deployments and pods in {})",
                        args.namespace
                    );
                    can_read_workloads = false;
                    None
                }
            };
            let now = wall_clock_ms();
            let progress = rollout(&published, wanted.as_ref(), sha256, now);
            let waiting = match progress {
                Rollout::Complete { nodes } => {
                    print(&args, &published)?;
                    eprintln!(
                        "policy {} runs on all {nodes} node{}",
                        short_sha(sha256),
                        if nodes == 1 { "" } else { "s" }
                    );
                    return Ok(());
                }
                Rollout::Refused(nodes) => {
                    print(&args, &published)?;
                    bail!(
                        "policy {} was refused on {}",
                        short_sha(sha256),
                        listing(&nodes)
                    );
                }
                Rollout::InProgress(nodes) => nodes,
            };
            let reason = if waiting.is_empty() {
                nobody_reports(&args.namespace)
            } else {
                listing(&waiting)
            };
            if !args.wait || Instant::now() >= deadline {
                print(&args, &published)?;
                if args.wait {
                    bail!(
                        "policy {} is not on every node after {} s: {reason}",
                        short_sha(sha256),
                        args.timeout
                    );
                }
                bail!(
                    "policy {} is not on every node: {reason}",
                    short_sha(sha256)
                );
            }
            if reason != said {
                eprintln!("waiting: {reason}");
                said = reason;
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

/// The agents the namespace's workloads should run; none when the API server did not
/// answer in time (the reports alone are compared then).
async fn read_expected(
    client: kube::Client,
    namespace: &str,
    url: &str,
) -> Result<Option<Expected>, ClusterError> {
    match tokio::time::timeout(Duration::from_secs(30), expected_agents(client, namespace)).await {
        Ok(Ok(expected)) => Ok(Some(expected)),
        Ok(Err(error)) => Err(ClusterError::of_request(url.to_string(), error)),
        Err(_) => Ok(None),
    }
}

fn print(args: &StatusArgs, published: &[Published]) -> Result<()> {
    if args.output == "json" {
        let reports: Vec<serde_json::Value> = published
            .iter()
            .map(|p| {
                serde_json::json!({
                    "report": p.report,
                    "renewedMs": p.renewed_ms,
                    "fresh": p.fresh(wall_clock_ms()),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&reports)?)?;
    } else {
        let text = table(published, wall_clock_ms());
        outln!("{}", text.trim_end())?;
    }
    Ok(())
}

/// `node-a (not a component); node-b (runs 0123456789ab (priority))`
fn listing(nodes: &[(String, String)]) -> String {
    nodes
        .iter()
        .map(|(node, why)| format!("{node} ({why})"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn nobody_reports(namespace: &str) -> String {
    format!(
        "no node reports in namespace {namespace}: is podlight running there (`kubectl -n \
         {namespace} get daemonset`), with RBAC from this version (it publishes Leases)?"
    )
}

/// The table `podlight status` prints: a row per node, then each node's last error.
fn table(published: &[Published], now_ms: u64) -> String {
    let header = [
        "NODE",
        "POLICY",
        "SHA256",
        "SINCE",
        "LAST RELOAD",
        "LIGHTS",
        "LEDS",
        "REPORTED",
    ];
    let mut rows: Vec<[String; 8]> = vec![header.map(str::to_string)];
    let mut errors = Vec::new();
    let mut stacks = Vec::new();
    for entry in published {
        let report = &entry.report;
        let age = |ms: u64| human_age(now_ms.saturating_sub(ms));
        if !report.layers.is_empty() {
            let base = format!("{} ({})", report.policy.name, led_list(&report.base_leds));
            let above = report.layers.iter().map(|layer| {
                if let Some(r) = layer.last_reload.as_ref().filter(|r| !r.ok) {
                    errors.push(format!(
                        "{}: layer {}: the last reload failed {} ago: {}",
                        report.node,
                        layer.layer,
                        age(r.at_ms),
                        r.error.as_deref().unwrap_or("(no message)")
                    ));
                }
                if let Some(error) = &layer.evaluation_error {
                    errors.push(format!(
                        "{}: layer {}: its last evaluation failed, its last good frame is shown: {error}",
                        report.node, layer.layer
                    ));
                }
                let sha = short_sha(&layer.policy.sha256);
                let name = if sha.is_empty() {
                    layer.layer.clone()
                } else {
                    format!("{} {sha}", layer.layer)
                };
                format!("{name} ({})", led_list(&layer.leds))
            });
            stacks.push(format!(
                "{} layers: {}",
                report.node,
                std::iter::once(base)
                    .chain(above)
                    .collect::<Vec<_>>()
                    .join(" → ")
            ));
        }
        let reload = match &report.last_reload {
            None => "-".to_string(),
            Some(r) if r.ok => format!("ok {} ago", age(r.at_ms)),
            Some(r) => {
                errors.push(format!(
                    "{}: the last reload failed {} ago: {}",
                    report.node,
                    age(r.at_ms),
                    r.error.as_deref().unwrap_or("(no message)")
                ));
                format!("FAILED {} ago", age(r.at_ms))
            }
        };
        let reported = if entry.fresh(now_ms) {
            format!("{} ago", age(entry.renewed_ms))
        } else {
            format!("SILENT {}", age(entry.renewed_ms))
        };
        rows.push([
            report.node.clone(),
            report.policy.name.clone(),
            short_sha(&report.policy.sha256).to_string(),
            age(report.policy.since_ms),
            reload,
            lights(&report.device),
            report.device.leds.to_string(),
            reported,
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for line in stacks.into_iter().chain(errors) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// How many lights, and of which families: `1 blinkstick`, `2 blink1,wled`, `0`.
fn lights(device: &DeviceReport) -> String {
    if device.families.is_empty() {
        return device.connected.to_string();
    }
    format!("{} {}", device.connected, device.families.join(","))
}

/// `LEDs 0-5, 7`, or `no LED`.
fn led_list(leds: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &led in leds {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == led => *end = led,
            _ => runs.push((led, led)),
        }
    }
    if runs.is_empty() {
        return "no LED".to_string();
    }
    let text: Vec<String> = runs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    format!(
        "LED{} {}",
        if leds.len() == 1 { "" } else { "s" },
        text.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    /// A report read back, 1 s after its renewal; `failed`: the error of a reload
    /// that failed 2 s ago.
    fn published(node: &str, sha: &str, failed: Option<&str>) -> Published {
        let report = serde_json::json!({
            "node": node,
            "policy": {"name": "priority", "sha256": sha, "origin": "builtin", "sinceMs": NOW - 5_000},
            "lastReload": failed.map(|error| serde_json::json!({"atMs": NOW - 2_000, "ok": false, "error": error})),
            "device": {"connected": 1, "leds": 8},
        });
        Published {
            report: serde_json::from_value(report).expect("a report"),
            renewed_ms: NOW - 1_000,
            valid_for_ms: 60_000,
        }
    }

    #[test]
    fn the_table_has_a_row_per_node_and_lists_errors() {
        let a = "a".repeat(64);
        let all = [
            published("node-a", &a, None),
            published("node-b", &"b".repeat(64), Some("not a component")),
        ];
        let text = table(&all, NOW);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NODE"), "{text}");
        assert!(
            lines[1].starts_with("node-a  priority  aaaaaaaaaaaa  5s"),
            "{text}"
        );
        assert!(lines[2].contains("FAILED 2s ago"), "{text}");
        assert_eq!(
            lines[3],
            "node-b: the last reload failed 2s ago: not a component"
        );
    }

    #[test]
    fn a_stack_of_layers_names_the_leds_each_sets() {
        let mut layered = published("node-a", &"a".repeat(64), None);
        layered.report.base_leds = vec![0, 1, 2, 4];
        layered.report.layers = vec![
            podlight::report::LayerReport {
                layer: "alerts".into(),
                leds: vec![3],
                evaluation_error: Some("trapped".into()),
                ..Default::default()
            },
            podlight::report::LayerReport {
                layer: "incident".into(),
                ..Default::default()
            },
        ];
        let text = table(&[layered], NOW);
        assert!(
            text.contains(
                "node-a layers: priority (LEDs 0-2, 4) → alerts (LED 3) → incident (no LED)"
            ),
            "{text}"
        );
        assert!(
            text.contains("layer alerts: its last evaluation failed"),
            "{text}"
        );
    }
}
