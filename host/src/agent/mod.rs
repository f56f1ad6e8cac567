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
    /// Policies stacked above the source's, bottom up: names in the same source.
    pub layers: Vec<String>,
    pub quiet: Option<Arc<QuietHours>>,
}

/// Handles to a running agent's tasks.
pub(crate) struct Agent {
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _reload: Vec<slot::ReloadWatcher>,
    _shadow_reload: Option<slot::ReloadWatcher>,
    writer: Arc<FrameWriter>,
}

impl Agent {
    /// Loads the policy (falling back to the built-in one), starts evaluating and
    /// watching the policy directory. Must be called inside a tokio runtime.
    pub async fn start(parts: AgentParts) -> Agent {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let slot = |source: PolicySource,
                    role: PolicyRole,
                    commands: mpsc::Sender<evaluator::LayerCommand>| {
            slot::PolicySlot::start(
                Arc::clone(&parts.engine),
                source,
                Arc::clone(&parts.status),
                parts.events.clone(),
                role,
                commands,
            )
        };
        // The base layer (the source's policy) and any above it, loaded side by side;
        // each keeps its own reload watcher, and all send to the one evaluator.
        let (commands, command_rx) = mpsc::channel(16 * (1 + parts.layers.len()));
        parts.status.set_base_layer_name(&parts.source.name);
        parts.status.set_layers(&parts.layers);
        let names: Vec<String> = std::iter::once(parts.source.name.clone())
            .chain(parts.layers.iter().cloned())
            .collect();
        let loads = names.iter().enumerate().map(|(position, name)| {
            let source = PolicySource {
                name: name.clone(),
                ..parts.source.clone()
            };
            let role = match position {
                0 => PolicyRole::Active,
                n => PolicyRole::Layer(n),
            };
            slot(source, role, commands.clone())
        });
        let loaded = futures::future::join_all(loads).await;
        drop(commands);
        let mut reload = Vec::with_capacity(loaded.len());
        let mut layers = Vec::with_capacity(loaded.len());
        for (name, (instance, watcher)) in names.into_iter().zip(loaded) {
            reload.push(watcher);
            layers.push(evaluator::Layer::new(name, instance));
        }
        let mut tasks = Vec::new();
        let mut shadow_reload = None;
        let shadow_inputs = match parts.shadow.clone() {
            Some(name) => {
                let source = PolicySource {
                    name,
                    ..parts.source.clone()
                };
                let (shadow_commands, shadow_command_rx) = mpsc::channel(16);
                let (shadow, watcher) = slot(source, PolicyRole::Shadow, shadow_commands).await;
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
            layers,
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
            _reload: reload,
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
