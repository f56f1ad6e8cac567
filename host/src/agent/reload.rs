//! Hot reload: the policy directory (a ConfigMap mount) is watched, and so is the
//! policies ConfigMap through the API; any change — the kubelet's `..data` symlink
//! swap, an editor's save, a `cp`, a half-written file, an API update — is debounced,
//! re-read from the [`source`](super::source) and compared by fingerprint. A changed
//! plugin is compiled off the hot path and trial-evaluated on the current snapshot
//! before it replaces the running one; a bad one never does. A settings-only change is
//! applied without recompiling. The same pipeline serves a shadow policy
//! ([`PolicyRole::Shadow`]): its status, log lines and Events say so, and its
//! commands go to the shadow's evaluator, never to the sticks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::evaluator::PolicyCommand;
use super::source::{Fingerprint, Found, PluginContent, PluginFile, PolicySource};
use super::status::PolicyRole;
use super::{AgentStatus, EventSink};
use crate::cluster::PolicyFiles;
use crate::policy::signature::SignatureError;
use crate::policy::{BUILTIN_NAME, Policy, PolicyEngine, PolicyError, PolicyInstance};
use crate::registry::{PolicyReference, PullError, ReferenceError};
use crate::rollout::ReloadOutcome;
use crate::state::{Snapshot, wall_clock_ms};

/// Quiet time after the last file event before reading.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The first policy: the directory's plugin, or the built-in one if there is none or
/// it is broken (the failure is reported like a failed reload).
pub(crate) struct Loaded {
    pub instance: PolicyInstance,
    pub fingerprint: Fingerprint,
    /// The plugin could not be pulled because its registry was down: try again.
    pub retry: bool,
}

pub async fn load_initial(
    engine: &Arc<PolicyEngine>,
    source: &PolicySource,
    state: &Arc<AgentStatus>,
    events: &EventSink,
    role: PolicyRole,
) -> Loaded {
    let found = source.read().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the policy directory; using the built-in policy");
        Found {
            plugin: None,
            settings: None,
        }
    });
    let fingerprint = found.fingerprint();
    let snapshot = state.snapshot.borrow().clone();
    let leds = state.device.leds_to_evaluate();
    let mut failure = None;
    let mut retry = false;
    if found.plugin.is_some() {
        match prepare(Arc::clone(engine), source, &found, snapshot, leds).await {
            Ok((instance, origin)) => {
                publish_active(state, role, &instance, origin, &found, None);
                return Loaded {
                    instance,
                    fingerprint,
                    retry,
                };
            }
            Err(error) => {
                report_failure(state, role, events, &error, fingerprint.file_sha256()).await;
                retry = error.is_transient();
                failure = Some(error.to_string());
            }
        }
    }
    // A shadow without a plugin file is the built-in policy with the shadow's own
    // settings: how new settings for it are tried before they go live.
    let builtin_settings = if source.name == "priority" || role == PolicyRole::Shadow {
        found.settings.clone()
    } else {
        None
    };
    let fallback = Found {
        plugin: None,
        settings: builtin_settings,
    };
    let instance = match engine
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
        state,
        role,
        &instance,
        Origin {
            text: BUILTIN_NAME.to_string(),
            pulled_layer: None,
        },
        &fallback,
        None,
    );
    if failure.is_some() {
        // The built-in policy runs because the directory's plugin failed: that stays
        // visible until a reload succeeds.
        state.update_policy_of(role, |p| p.last_error = failure);
    }
    Loaded {
        instance,
        fingerprint,
        retry,
    }
}

/// Why a new policy was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read the policy directory: {source}")]
    Read {
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the policy loader panicked: {source}")]
    Panicked {
        #[source]
        source: tokio::task::JoinError,
    },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "plugin {name} is an OCI reference ({reference}), but this agent pulls from no registry; run it with registry access (the default) or ship the plugin itself"
    )]
    NoRegistry { name: String, reference: String },
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Unverified(#[from] SignatureError),
}

impl ReloadError {
    /// The `result` label of `podlight_policy_reloads_total` for this failure.
    pub fn metric_result(&self) -> &'static str {
        match self {
            ReloadError::Unverified(_) => "unverified",
            _ => "failed",
        }
    }

    /// Worth trying again with nothing changed: a registry that was down.
    fn is_transient(&self) -> bool {
        matches!(self, ReloadError::Pull(error) if error.is_transient())
    }
}

/// The plugin's bytes — read, or pulled for a reference — checked against the trusted
/// keys before anything compiles them; with where they came from and, for a pull, the
/// layer's digest.
async fn fetch(
    source: &PolicySource,
    file: &PluginFile,
) -> Result<(Vec<u8>, String, Option<String>), ReloadError> {
    let (bytes, origin, layer) = match &file.content {
        PluginContent::Bytes(bytes) => (bytes.clone(), file.origin.clone(), None),
        PluginContent::Reference(text) => {
            let reference = PolicyReference::parse(text)?;
            let registry =
                source
                    .trust
                    .registry
                    .as_ref()
                    .ok_or_else(|| ReloadError::NoRegistry {
                        name: file.name.clone(),
                        reference: reference.to_string(),
                    })?;
            let pulled = registry.pull(&reference).await?;
            tracing::info!(%reference, manifest = %pulled.manifest_digest, layer = %pulled.layer_digest, bytes = pulled.bytes.len(), from_cache = pulled.from_cache, "policy pulled");
            let origin = format!(
                "{} ({}) from {}",
                reference.pinned(&pulled.manifest_digest),
                if pulled.from_cache {
                    "cached"
                } else {
                    "pulled"
                },
                file.origin
            );
            let layer = pulled
                .layer_digest
                .trim_start_matches("sha256:")
                .to_string();
            (pulled.bytes, origin, Some(layer))
        }
    };
    if !source.trust.keys.is_empty() {
        let key = source
            .trust
            .keys
            .verify(&file.name, &bytes, file.signature.as_deref())?;
        tracing::info!(plugin = %file.name, %key, "policy signature verified");
    }
    Ok((bytes, origin, layer))
}

/// Compiles (or takes from the cache) and trial-evaluates on the current snapshot,
/// off the async runtime's workers.
async fn prepare(
    engine: Arc<PolicyEngine>,
    source: &PolicySource,
    found: &Found,
    snapshot: Arc<Snapshot>,
    leds: u32,
) -> Result<(PolicyInstance, Origin), ReloadError> {
    let plugin = match &found.plugin {
        Some(file) => {
            let (bytes, origin, layer) = fetch(source, file).await?;
            Some((file.name.clone(), bytes, origin, layer))
        }
        None => None,
    };
    let settings = found.settings.clone();
    tokio::task::spawn_blocking(move || {
        let (policy, origin) = match plugin {
            Some((name, bytes, origin, layer)) => (
                engine.load_bytes(&name, &bytes)?,
                Origin {
                    text: origin,
                    pulled_layer: layer,
                },
            ),
            None => (
                engine.builtin()?,
                Origin {
                    text: BUILTIN_NAME.to_string(),
                    pulled_layer: None,
                },
            ),
        };
        let policy: Arc<Policy> = Arc::new(policy);
        let mut instance = policy.instantiate(settings)?;
        instance.evaluate_at(&snapshot, leds, wall_clock_ms())?;
        Ok::<_, PolicyError>((instance, origin))
    })
    .await
    .map_err(|source| ReloadError::Panicked { source })?
    .map_err(ReloadError::from)
}

/// Where a policy came from, for people, and — for a pulled one — its layer's sha256,
/// reported as the plugin file's.
pub(crate) struct Origin {
    text: String,
    pulled_layer: Option<String>,
}

/// Makes `instance` the policy the agent reports; `reload` when it came from a reload
/// (not the start).
fn publish_active(
    state: &AgentStatus,
    role: PolicyRole,
    instance: &PolicyInstance,
    origin: Origin,
    found: &Found,
    reload: Option<ReloadOutcome>,
) {
    let info = instance.policy().info().clone();
    let Origin {
        text: origin,
        pulled_layer,
    } = origin;
    match role {
        PolicyRole::Active => {
            tracing::info!(policy = %info.name, sha256 = %info.sha256, %origin, cache_hit = info.cache_hit, "policy active");
        }
        PolicyRole::Shadow => {
            tracing::info!(policy = %info.name, sha256 = %info.sha256, %origin, cache_hit = info.cache_hit, "shadow policy loaded (evaluated beside the active one, never shown)");
        }
    }
    let file_sha256 = pulled_layer
        .or_else(|| found.fingerprint().file_sha256())
        .filter(|file| *file != info.sha256);
    state.update_policy_of(role, |p| {
        p.name = info.name;
        p.sha256 = info.sha256;
        p.file_sha256 = file_sha256;
        p.origin = origin;
        p.settings = found.settings.clone();
        p.last_error = None;
        p.since_ms = wall_clock_ms();
        if reload.is_some() {
            p.last_reload = reload;
        }
    });
}

fn succeeded(file_sha256: Option<String>) -> ReloadOutcome {
    ReloadOutcome {
        at_ms: wall_clock_ms(),
        ok: true,
        file_sha256,
        error: None,
    }
}

async fn report_failure(
    state: &AgentStatus,
    role: PolicyRole,
    events: &EventSink,
    error: &ReloadError,
    file_sha256: Option<String>,
) {
    let reason = match role {
        PolicyRole::Active => {
            tracing::error!(%error, "policy reload failed; keeping the last good policy");
            state.metrics.reload(error.metric_result());
            "PolicyReloadFailed"
        }
        PolicyRole::Shadow => {
            tracing::error!(%error, "shadow policy reload failed; keeping the last good shadow");
            "ShadowPolicyReloadFailed"
        }
    };
    state.update_policy_of(role, |p| {
        p.last_error = Some(error.to_string());
        p.last_reload = Some(ReloadOutcome {
            at_ms: wall_clock_ms(),
            ok: false,
            file_sha256,
            error: Some(error.to_string()),
        });
    });
    events
        .warn(reason, format!("kept the last good policy: {error}"))
        .await;
}

/// Watches the policy directory while alive.
pub(crate) struct ReloadWatcher {
    _watcher: Option<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReloadWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReloadWatcher {
    /// Starts watching the reloader's policy directory and ConfigMap; none without
    /// either.
    pub fn start(reloader: Reloader) -> Option<ReloadWatcher> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = match &reloader.source.dir {
            Some(dir) => watch_directory(dir, tx),
            None => None,
        };
        if watcher.is_none() && reloader.source.api.is_none() {
            return None;
        }
        let task = tokio::spawn(reloader.run(rx));
        Some(ReloadWatcher {
            _watcher: watcher,
            task,
        })
    }
}

/// Sends a unit on `tx` for every change in `dir`; none (logged) if it cannot.
fn watch_directory(
    dir: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| changes_content(&e.kind)) {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the policy directory; policy changes need a restart");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the policy directory; using what was loaded at start");
        return None;
    }
    Some(watcher)
}

/// Reloads the policy when its files change, sending swaps to the evaluator.
pub(crate) struct Reloader {
    pub engine: Arc<PolicyEngine>,
    pub source: PolicySource,
    pub state: Arc<AgentStatus>,
    pub events: EventSink,
    pub commands: mpsc::Sender<PolicyCommand>,
    /// What is loaded now.
    pub current: Fingerprint,
    /// The active policy, or the shadow evaluated beside it.
    pub role: PolicyRole,
    /// Failed pulls in a row from a registry that was down; the next try waits
    /// [`pull_retry_pause`] of them.
    pub pull_failures: u32,
}

/// The wait before pull number `failures + 1`: 1 s, doubling to a minute.
fn pull_retry_pause(failures: u32) -> Duration {
    Duration::from_secs(1)
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(Duration::from_secs(60))
}

impl Reloader {
    /// The reload metric counts the active policy's reloads only.
    fn count_success(&self) {
        if self.role == PolicyRole::Active {
            self.state.metrics.reload("ok");
        }
    }

    async fn run(mut self, mut file_events: mpsc::UnboundedReceiver<()>) {
        let mut api = self.source.api.as_ref().map(|a| a.files.clone());
        let mut files_open = true;
        let mut retry_at = (self.pull_failures > 0)
            .then(|| tokio::time::Instant::now() + pull_retry_pause(self.pull_failures));
        loop {
            if !files_open && api.is_none() && retry_at.is_none() {
                return;
            }
            tokio::select! {
                () = sleep_until_opt(retry_at) => {
                    tracing::info!(attempt = self.pull_failures + 1, "pulling the policy again");
                }
                event = file_events.recv(), if files_open => {
                    if event.is_none() {
                        files_open = false;
                        continue;
                    }
                    settle(&mut file_events).await;
                }
                // The API's object changes whole: no need to wait for more.
                changed = api_changed(&mut api) => {
                    if !changed {
                        api = None;
                        continue;
                    }
                }
            }
            retry_at = self
                .reload(&mut file_events)
                .await
                .map(|pause| tokio::time::Instant::now() + pause);
        }
    }

    /// Reads the source and takes what changed; when a pull failed because the registry
    /// was down, how long to wait before trying again.
    async fn reload(&mut self, file_events: &mut mpsc::UnboundedReceiver<()>) -> Option<Duration> {
        loop {
            let found = match self.source.read() {
                Ok(found) => found,
                Err(source) => {
                    let error = ReloadError::Read { source };
                    report_failure(&self.state, self.role, &self.events, &error, None).await;
                    return None;
                }
            };
            let fingerprint = found.fingerprint();
            if fingerprint == self.current && self.pull_failures == 0 {
                return None;
            }
            if fingerprint != self.current && fingerprint.same_plugin(&self.current) {
                tracing::info!("policy settings changed; applying without recompiling");
                let _ = self
                    .commands
                    .send(PolicyCommand::Settings(found.settings.clone()))
                    .await;
                self.count_success();
                self.state.update_policy_of(self.role, |p| {
                    p.settings = found.settings.clone();
                    p.last_error = None;
                    p.last_reload = Some(succeeded(fingerprint.file_sha256()));
                });
                self.current = fingerprint;
                return None;
            }
            let snapshot = self.state.snapshot.borrow().clone();
            let leds = self.state.device.leds_to_evaluate();
            match prepare(
                Arc::clone(&self.engine),
                &self.source,
                &found,
                snapshot,
                leds,
            )
            .await
            {
                Ok((instance, origin)) => {
                    self.pull_failures = 0;
                    let outcome = succeeded(
                        origin
                            .pulled_layer
                            .clone()
                            .or_else(|| fingerprint.file_sha256()),
                    );
                    publish_active(
                        &self.state,
                        self.role,
                        &instance,
                        origin,
                        &found,
                        Some(outcome),
                    );
                    self.count_success();
                    let _ = self.commands.send(PolicyCommand::Swap(instance)).await;
                    self.current = fingerprint;
                    return None;
                }
                Err(error) => {
                    // A file still being written fails to load: if more changes come
                    // within the debounce window, try again with those.
                    if wait_for_more(file_events).await {
                        continue;
                    }
                    // A registry that is down: said once, then tried again in the
                    // background until it answers or the policy changes.
                    if error.is_transient() {
                        if self.pull_failures == 0 || fingerprint != self.current {
                            report_failure(&self.state, self.role, &self.events, &error, None)
                                .await;
                        }
                        self.pull_failures = if fingerprint == self.current {
                            self.pull_failures.saturating_add(1)
                        } else {
                            1
                        };
                        self.current = fingerprint;
                        return Some(pull_retry_pause(self.pull_failures));
                    }
                    self.pull_failures = 0;
                    report_failure(
                        &self.state,
                        self.role,
                        &self.events,
                        &error,
                        fingerprint.file_sha256(),
                    )
                    .await;
                    self.current = fingerprint;
                    return None;
                }
            }
        }
    }
}

/// Whether a file event can change what the directory holds. Opening, reading and
/// closing a file (the reloader's own reads among them) and metadata changes cannot:
/// counting them made every read of a failing plugin trigger another reload.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    match kind {
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Any
        | EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other => true,
    }
}

/// Resolves when the API's ConfigMap changes (false once its watch is gone); never
/// without one.
async fn api_changed(api: &mut Option<watch::Receiver<PolicyFiles>>) -> bool {
    match api {
        Some(files) => files.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Drains events until the directory has been quiet for [`DEBOUNCE`].
async fn settle(events: &mut mpsc::UnboundedReceiver<()>) {
    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, events.recv()).await {}
}

/// True if more file events arrive within the debounce window (then settled).
async fn wait_for_more(events: &mut mpsc::UnboundedReceiver<()>) -> bool {
    match tokio::time::timeout(DEBOUNCE, events.recv()).await {
        Ok(Some(())) => {
            settle(events).await;
            true
        }
        _ => false,
    }
}
