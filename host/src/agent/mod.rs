//! The agent: wires cluster watch (or the demo scenario) → snapshot → policy →
//! frame writer → device, with hot-swapped policies and the HTTP status surface.

mod assembly;
mod demo;
mod evaluator;
mod events;
pub mod metrics;
mod reporter;
mod slot;
mod source;
mod status;

pub use assembly::{AgentConfig, RunningAgent};
pub use demo::{DemoScenario, demo_snapshots};
pub use events::EventSink;
pub use reporter::{Publishing, StatusReporter};
pub use slot::ReloadError;
pub use source::{ApiPolicies, PolicySource, PolicyTrust};
pub use status::{AgentStatus, PolicyRole, PolicyStatus, ShadowStatus};

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::device::FrameWriter;
use crate::policy::PolicyEngine;
use crate::quiet::QuietHours;

/// What [`Agent::start`] wires; put together by [`AgentConfig`].
pub(crate) struct AgentParts {
    pub engine: Arc<PolicyEngine>,
    pub source: PolicySource,
    pub writer: Arc<FrameWriter>,
    pub status: Arc<AgentStatus>,
    pub events: EventSink,
    /// Where this node's report is published; none outside a cluster.
    pub reporter: Option<StatusReporter>,
    /// A candidate policy's name in the same source, evaluated beside the active one.
    pub shadow: Option<String>,
    pub quiet: Option<Arc<QuietHours>>,
}

/// Handles to a running agent's tasks.
pub(crate) struct Agent {
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _reload: Option<slot::ReloadWatcher>,
    _shadow_reload: Option<slot::ReloadWatcher>,
    writer: Arc<FrameWriter>,
}

impl Agent {
    /// Loads the policy (falling back to the built-in one), starts evaluating and
    /// watching the policy directory. Must be called inside a tokio runtime.
    pub async fn start(parts: AgentParts) -> Agent {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let slot = |source: PolicySource, role: PolicyRole| {
            let (commands, command_rx) = mpsc::channel(16);
            let started = slot::PolicySlot::start(
                Arc::clone(&parts.engine),
                source,
                Arc::clone(&parts.status),
                parts.events.clone(),
                role,
                commands,
            );
            async move {
                let (instance, watcher) = started.await;
                (instance, watcher, command_rx)
            }
        };
        let (initial, reload, command_rx) = slot(parts.source.clone(), PolicyRole::Active).await;
        let mut tasks = Vec::new();
        let mut shadow_reload = None;
        let shadow_inputs = match parts.shadow.clone() {
            Some(name) => {
                let source = PolicySource {
                    name,
                    ..parts.source.clone()
                };
                let (shadow, watcher, shadow_command_rx) = slot(source, PolicyRole::Shadow).await;
                shadow_reload = Some(watcher);
                let (inputs, inputs_rx) = watch::channel(None);
                tasks.push(tokio::spawn(evaluator::run_shadow(
                    inputs_rx,
                    shadow_command_rx,
                    shadow,
                    Arc::clone(&parts.status),
                    shutdown_rx.clone(),
                )));
                Some(inputs)
            }
            None => None,
        };
        let evaluator = tokio::spawn(evaluator::run(
            parts.status.snapshot.clone(),
            command_rx,
            initial,
            evaluator::Outputs {
                writer: Arc::clone(&parts.writer),
                status: Arc::clone(&parts.status),
                shadow: shadow_inputs,
                quiet: parts.quiet,
            },
            shutdown_rx.clone(),
        ));
        tasks.push(evaluator);
        if parts.events.publishes() {
            tasks.push(tokio::spawn(events::warn_about_silences(
                parts.status.snapshot.clone(),
                parts.events.clone(),
                shutdown_rx,
            )));
        }
        if let Some(reporter) = parts.reporter {
            tasks.push(tokio::spawn(reporter::run(
                reporter,
                Arc::clone(&parts.status),
                shutdown.subscribe(),
            )));
        }
        Agent {
            shutdown,
            tasks,
            _reload: Some(reload),
            _shadow_reload: shadow_reload,
            writer: parts.writer,
        }
    }

    /// Stops evaluating, then finishes the write in progress and turns the LEDs off
    /// (unless `leave_leds`).
    pub async fn stop(self, leave_leds: bool) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        drop(self._reload);
        drop(self._shadow_reload);
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || match Arc::try_unwrap(writer) {
            Ok(writer) => writer.shutdown(!leave_leds),
            Err(shared) => {
                if !leave_leds {
                    shared.turn_off(std::time::Duration::from_secs(1));
                }
            }
        })
        .await;
    }
}
