//! A policy slot: one policy pipeline — source → fetch → prepare → publish → its
//! evaluator — for the active policy or the shadow (and, built the same way, any
//! other). The policy directory (a ConfigMap mount) and the policies ConfigMap
//! through the API are watched ([`changes`]); any change — the kubelet's `..data`
//! symlink swap, an editor's save, a `cp`, a half-written file, an API update — is
//! debounced, re-read from the [`source`](super::source) and compared by fingerprint.
//! A changed plugin is fetched ([`fetch`]), compiled off the hot path and
//! trial-evaluated on the current snapshot ([`prepare`]) before it replaces the
//! running one; a bad one never does, and either outcome is reported ([`publish`]).
//! A settings-only change is applied without recompiling. A shadow slot's status, log
//! lines and Events say so, and its commands go to the shadow's evaluator, never to
//! the sticks.

mod changes;
mod error;
mod fetch;
mod prepare;
mod publish;

pub use error::ReloadError;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use self::changes::Changes;
use self::fetch::Tried;
use self::prepare::{Failed, Prepared, prepare};
use self::publish::{Origin, publish_active, report_failure, succeeded};
use super::evaluator::{LayerCommand, PolicyCommand};
use super::source::{Fingerprint, Found, PolicySource};
use super::status::PolicyRole;
use super::{AgentStatus, EventSink};
use crate::policy::{BUILTIN_NAME, PolicyEngine, PolicyInstance};
use crate::timing::sleep_until_opt;

/// Runs a policy slot's watch loop while alive.
pub(crate) struct ReloadWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReloadWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One policy pipeline — source → fetch → prepare → publish → its evaluator — for the
/// active policy or the shadow (and, built the same way, any other). The first policy
/// and every later change go through the same steps; a change that arrives while a
/// policy is being fetched or compiled wins: the older load is abandoned (a pull in
/// flight is cancelled) and the newer content loaded instead.
pub(crate) struct PolicySlot {
    engine: Arc<PolicyEngine>,
    source: PolicySource,
    status: Arc<AgentStatus>,
    events: EventSink,
    commands: mpsc::Sender<LayerCommand>,
    role: PolicyRole,
    changes: Changes,
    /// What was read last: what runs now, or what was refused.
    current: Option<Fingerprint>,
    /// `current`'s plugin is the one running (not one refused while another runs):
    /// only then may a settings-only change go to the running policy.
    current_runs: bool,
    /// Transient failures in a row (a registry that was down, a trial evaluation past
    /// its deadline); the next try waits [`retry_pause`] of them.
    transient_failures: u32,
}

/// The wait before try number `failures + 1`: 1 s, doubling to a minute.
fn retry_pause(failures: u32) -> Duration {
    crate::timing::doubling(Duration::from_secs(1), Duration::from_secs(60), failures)
}

impl PolicySlot {
    /// Starts watching `source`, loads its policy (the built-in one when it has none or
    /// it fails) and keeps it current from then on, sending swaps and settings on
    /// `commands`. Returns the first policy and the watch loop.
    pub async fn start(
        engine: Arc<PolicyEngine>,
        source: PolicySource,
        status: Arc<AgentStatus>,
        events: EventSink,
        role: PolicyRole,
        commands: mpsc::Sender<LayerCommand>,
    ) -> (PolicyInstance, ReloadWatcher) {
        let changes = Changes::start(&source);
        let mut slot = PolicySlot {
            engine,
            source,
            status,
            events,
            commands,
            role,
            changes,
            current: None,
            current_runs: false,
            transient_failures: 0,
        };
        let first = slot.load_first().await;
        let task = tokio::spawn(slot.run());
        (first, ReloadWatcher { task })
    }

    /// The first policy: the source's plugin, or the built-in one if there is none or
    /// it is broken (the failure is reported like a failed reload).
    async fn load_first(&mut self) -> PolicyInstance {
        let (found, failure) = loop {
            let found = self.source.read().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the policy directory; using the built-in policy");
                Found {
                    plugin: None,
                    settings: None,
                }
            });
            if found.plugin.is_none() {
                break (found, None);
            }
            let Some(prepared) = self.prepare_unless_changed(&found).await else {
                continue;
            };
            match prepared {
                Ok(Prepared { instance, origin }) => {
                    publish_active(&self.status, self.role, &instance, origin, &found, None);
                    self.current = Some(found.fingerprint());
                    self.current_runs = true;
                    return instance;
                }
                Err(Failed { error, tried }) => {
                    report_failure(&self.status, self.role, &self.events, &error, tried).await;
                    if error.is_transient() {
                        self.transient_failures = 1;
                    }
                    break (found, Some(error.to_string()));
                }
            }
        };
        // Without a plugin the built-in policy runs with these settings; with one, the
        // plugin was refused and the built-in policy runs instead.
        self.current_runs = found.plugin.is_none();
        self.current = Some(found.fingerprint());
        // A shadow or a layer without a plugin file is the built-in policy with its own
        // settings: how new settings are tried before they go live, and how the
        // built-in policy serves as an alerts layer.
        let builtin_settings = if self.source.name == "priority"
            || matches!(self.role, PolicyRole::Shadow | PolicyRole::Layer(_))
        {
            found.settings.clone()
        } else {
            None
        };
        let fallback = Found {
            plugin: None,
            settings: builtin_settings,
        };
        let instance = match self
            .engine
            .builtin()
            .map(Arc::new)
            .and_then(|p| p.instantiate(fallback.settings.clone()))
        {
            Ok(instance) => instance,
            // The built-in plugin is compiled into this binary and tested; if it cannot
            // start, nothing can.
            Err(error) => panic!("the built-in policy does not start: {error}"),
        };
        publish_active(
            &self.status,
            self.role,
            &instance,
            Origin {
                text: BUILTIN_NAME.to_string(),
                pulled_layer: None,
                precompiled: None,
            },
            &fallback,
            None,
        );
        if failure.is_some() {
            // The built-in policy runs because the source's plugin failed: that stays
            // visible until a reload succeeds.
            self.status
                .update_policy_of(self.role, |p| p.last_error = failure);
        }
        instance
    }

    /// Prepares what `found` holds on the current snapshot; none when the source
    /// changed meanwhile — a newer change wins over a load still in flight (a pull is
    /// cancelled; a compile's result is dropped).
    async fn prepare_unless_changed(&mut self, found: &Found) -> Option<Result<Prepared, Failed>> {
        let snapshot = self.status.snapshot.borrow().clone();
        let leds = self.status.device.leds_to_evaluate();
        tokio::select! {
            prepared = prepare(Arc::clone(&self.engine), &self.source, found, snapshot, leds) => Some(prepared),
            () = self.changes.next() => {
                tracing::info!("the policy changed while loading; loading the newer one");
                None
            }
        }
    }

    /// The reload metric counts the reloads of policies that drive the sticks.
    fn count_success(&self) {
        if self.role.drives_the_sticks() {
            self.status.metrics.reload("ok");
        }
    }

    /// Sends a command to this slot's evaluator.
    async fn send(&self, command: PolicyCommand) {
        let position = match self.role {
            PolicyRole::Layer(n) => n,
            PolicyRole::Active | PolicyRole::Shadow => 0,
        };
        let _ = self.commands.send((position, command)).await;
    }

    async fn run(mut self) {
        let mut retry_at = (self.transient_failures > 0)
            .then(|| tokio::time::Instant::now() + retry_pause(self.transient_failures));
        // A change between the first read and now is caught by this first pass.
        let mut pending = true;
        loop {
            if !pending {
                if self.changes.closed() && retry_at.is_none() {
                    return;
                }
                tokio::select! {
                    () = sleep_until_opt(retry_at) => {
                        tracing::info!(attempt = self.transient_failures + 1, "trying the policy again");
                    }
                    () = self.changes.next() => {}
                }
            }
            pending = false;
            retry_at = self
                .reload()
                .await
                .map(|pause| tokio::time::Instant::now() + pause);
        }
    }

    /// Reads the source and takes what changed; when a pull failed because the registry
    /// was down, how long to wait before trying again.
    async fn reload(&mut self) -> Option<Duration> {
        loop {
            let found = match self.source.read() {
                Ok(found) => found,
                Err(source) => {
                    let error = ReloadError::Read { source };
                    report_failure(
                        &self.status,
                        self.role,
                        &self.events,
                        &error,
                        Tried::default(),
                    )
                    .await;
                    return None;
                }
            };
            let fingerprint = found.fingerprint();
            let current = self.current.as_ref();
            if current == Some(&fingerprint) && self.transient_failures == 0 {
                return None;
            }
            if self.current_runs
                && current.is_some_and(|c| *c != fingerprint && fingerprint.same_plugin(c))
            {
                tracing::info!("policy settings changed; applying without recompiling");
                self.send(PolicyCommand::Settings(found.settings.clone()))
                    .await;
                self.count_success();
                self.status.update_policy_of(self.role, |p| {
                    p.settings = found.settings.clone();
                    p.last_error = None;
                    p.last_reload = Some(succeeded(fingerprint.file_sha256()));
                });
                self.current = Some(fingerprint);
                return None;
            }
            let Some(prepared) = self.prepare_unless_changed(&found).await else {
                continue;
            };
            match prepared {
                Ok(Prepared { instance, origin }) => {
                    self.transient_failures = 0;
                    let outcome = succeeded(
                        origin
                            .pulled_layer
                            .clone()
                            .or_else(|| fingerprint.file_sha256()),
                    );
                    publish_active(
                        &self.status,
                        self.role,
                        &instance,
                        origin,
                        &found,
                        Some(outcome),
                    );
                    self.count_success();
                    self.send(PolicyCommand::Swap(instance)).await;
                    self.current = Some(fingerprint);
                    self.current_runs = true;
                    return None;
                }
                Err(Failed { error, tried }) => {
                    if self.changes.more_soon().await {
                        continue;
                    }
                    let same = self.current.as_ref() == Some(&fingerprint);
                    // A registry that is down, a node too busy for the trial: said
                    // once, then tried again in the background until it works or the
                    // policy changes.
                    if error.is_transient() {
                        if self.transient_failures == 0 || !same {
                            report_failure(&self.status, self.role, &self.events, &error, tried)
                                .await;
                        }
                        self.transient_failures = if same {
                            self.transient_failures.saturating_add(1)
                        } else {
                            1
                        };
                        self.current = Some(fingerprint);
                        self.current_runs = false;
                        return Some(retry_pause(self.transient_failures));
                    }
                    self.transient_failures = 0;
                    report_failure(&self.status, self.role, &self.events, &error, tried).await;
                    self.current = Some(fingerprint);
                    self.current_runs = false;
                    return None;
                }
            }
        }
    }
}
