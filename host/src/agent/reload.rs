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
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use super::evaluator::PolicyCommand;
use super::source::{Fingerprint, Found, PluginContent, PluginFile, PolicySource};
use super::status::PolicyRole;
use super::{AgentStatus, EventSink};
use crate::cluster::PolicyFiles;
use crate::policy::signature::SignatureError;
use crate::policy::{BUILTIN_NAME, Policy, PolicyEngine, PolicyError, PolicyInstance};
use crate::registry::{PolicyReference, PullError, ReferenceError};
use crate::report::ReloadOutcome;
use crate::state::{Snapshot, wall_clock_ms};
use crate::timing::sleep_until_opt;

/// Quiet time after the last file event before reading.
const DEBOUNCE: Duration = Duration::from_millis(250);

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

/// A plugin's bytes as the agent got them — read, or pulled for a reference — and
/// checked against the trusted keys before anything compiles them.
struct Fetched {
    name: String,
    bytes: Vec<u8>,
    /// Where they came from, for people.
    origin: String,
    /// For a pull: the layer's sha256, reported as the plugin file's.
    pulled_layer: Option<String>,
}

impl Fetched {
    /// What was tried, by the hashes `podlight status --wait` may be given: the file's
    /// (or pulled layer's) and the component's inside a `.wasm.gz`.
    fn tried(&self, max_plugin_size: usize) -> Tried {
        let file_sha256 = self
            .pulled_layer
            .clone()
            .unwrap_or_else(|| hex::encode(Sha256::digest(&self.bytes)));
        let sha256 = crate::policy::inspect::unpacked(&self.name, &self.bytes, max_plugin_size)
            .ok()
            .map(|component| hex::encode(Sha256::digest(&component)))
            .filter(|component| *component != file_sha256);
        Tried {
            file_sha256: Some(file_sha256),
            sha256,
        }
    }
}

/// The hashes of a plugin that was tried.
#[derive(Debug, Clone, Default)]
struct Tried {
    file_sha256: Option<String>,
    /// The component's, when it differs from the file's (a `.wasm.gz`).
    sha256: Option<String>,
}

async fn fetch(source: &PolicySource, file: &PluginFile) -> Result<Fetched, ReloadError> {
    let fetched = match &file.content {
        PluginContent::Bytes(bytes) => Fetched {
            name: file.name.clone(),
            bytes: bytes.clone(),
            origin: file.origin.clone(),
            pulled_layer: None,
        },
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
            Fetched {
                name: file.name.clone(),
                origin: format!(
                    "{} ({}) from {}",
                    reference.pinned(&pulled.manifest_digest),
                    if pulled.from_cache {
                        "cached"
                    } else {
                        "pulled"
                    },
                    file.origin
                ),
                pulled_layer: Some(
                    pulled
                        .layer_digest
                        .trim_start_matches("sha256:")
                        .to_string(),
                ),
                bytes: pulled.bytes,
            }
        }
    };
    Ok(fetched)
}

/// A policy ready to run: compiled, started and trial-evaluated.
struct Prepared {
    instance: PolicyInstance,
    origin: Origin,
}

/// A policy that could not be made ready: why, and what was tried.
struct Failed {
    error: ReloadError,
    tried: Tried,
}

impl From<ReloadError> for Failed {
    fn from(error: ReloadError) -> Failed {
        Failed {
            error,
            tried: Tried::default(),
        }
    }
}

/// Fetches, checks the signature, compiles (or takes from the cache) and
/// trial-evaluates on the current snapshot, off the async runtime's workers.
async fn prepare(
    engine: Arc<PolicyEngine>,
    source: &PolicySource,
    found: &Found,
    snapshot: Arc<Snapshot>,
    leds: u32,
) -> Result<Prepared, Failed> {
    let fetched = match &found.plugin {
        Some(file) => Some(fetch(source, file).await?),
        None => None,
    };
    let tried = fetched
        .as_ref()
        .map(|f| f.tried(engine.options().max_plugin_size))
        .unwrap_or_default();
    let failed = |error: ReloadError| Failed {
        error,
        tried: tried.clone(),
    };
    if let (Some(fetched), Some(file)) = (&fetched, &found.plugin)
        && !source.trust.keys.is_empty()
    {
        let key = source
            .trust
            .keys
            .verify(&fetched.name, &fetched.bytes, file.signature.as_deref())
            .map_err(|e| failed(e.into()))?;
        tracing::info!(plugin = %fetched.name, %key, "policy signature verified");
    }
    let settings = found.settings.clone();
    tokio::task::spawn_blocking(move || {
        let (policy, origin) = match fetched {
            Some(fetched) => (
                engine.load_bytes(&fetched.name, &fetched.bytes)?,
                Origin {
                    text: fetched.origin,
                    pulled_layer: fetched.pulled_layer,
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
        Ok::<_, PolicyError>(Prepared { instance, origin })
    })
    .await
    .map_err(|source| failed(ReloadError::Panicked { source }))?
    .map_err(|e| failed(e.into()))
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
    status: &AgentStatus,
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
    status.update_policy_of(role, |p| {
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
        sha256: None,
        error: None,
    }
}

async fn report_failure(
    status: &AgentStatus,
    role: PolicyRole,
    events: &EventSink,
    error: &ReloadError,
    tried: Tried,
) {
    let reason = match role {
        PolicyRole::Active => {
            tracing::error!(%error, "policy reload failed; keeping the last good policy");
            status.metrics.reload(error.metric_result());
            "PolicyReloadFailed"
        }
        PolicyRole::Shadow => {
            tracing::error!(%error, "shadow policy reload failed; keeping the last good shadow");
            "ShadowPolicyReloadFailed"
        }
    };
    status.update_policy_of(role, |p| {
        p.last_error = Some(error.to_string());
        p.last_reload = Some(ReloadOutcome {
            at_ms: wall_clock_ms(),
            ok: false,
            file_sha256: tried.file_sha256,
            sha256: tried.sha256,
            error: Some(error.to_string()),
        });
    });
    events
        .warn(reason, format!("kept the last good policy: {error}"))
        .await;
}

/// What can change a policy source: the directory's file events and the API's
/// ConfigMap. Started before the source is first read, so no change is missed while
/// the first policy loads.
struct Changes {
    files: Option<mpsc::UnboundedReceiver<()>>,
    api: Option<watch::Receiver<PolicyFiles>>,
    _watcher: Option<notify::RecommendedWatcher>,
    /// A file event was taken and its settling not finished: [`Changes::next`] may be
    /// dropped while it waits for the quiet (a load finished first), and the change
    /// must not be lost with it.
    files_pending: bool,
}

impl Changes {
    fn start(source: &PolicySource) -> Changes {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = source
            .dir
            .as_deref()
            .and_then(|dir| watch_directory(dir, tx));
        Changes {
            files: watcher.is_some().then_some(rx),
            api: source.api.as_ref().map(|a| a.files.clone()),
            _watcher: watcher,
            files_pending: false,
        }
    }

    /// Nothing can change any more.
    fn closed(&self) -> bool {
        self.files.is_none() && self.api.is_none()
    }

    /// Resolves at the next change — file events once they settle, an API update at
    /// once (the object changes whole); never when nothing can change. Cancel-safe:
    /// a change it has seen is reported by the next call if this one is dropped.
    async fn next(&mut self) {
        loop {
            if self.files_pending {
                settle(self.files.as_mut()).await;
                self.files_pending = false;
                return;
            }
            tokio::select! {
                event = recv_opt(&mut self.files) => match event {
                    Some(()) => self.files_pending = true,
                    None => self.files = None,
                },
                changed = changed_opt(&mut self.api) => {
                    if changed {
                        return;
                    }
                    self.api = None;
                }
            }
        }
    }

    /// True if more file events arrive within the debounce window (then settled): a
    /// file still being written failed to load, try again with the rest.
    async fn more_soon(&mut self) -> bool {
        if self.files_pending {
            settle(self.files.as_mut()).await;
            self.files_pending = false;
            return true;
        }
        let Some(files) = self.files.as_mut() else {
            return false;
        };
        match tokio::time::timeout(DEBOUNCE, files.recv()).await {
            Ok(Some(())) => {
                self.files_pending = true;
                settle(self.files.as_mut()).await;
                self.files_pending = false;
                true
            }
            _ => false,
        }
    }
}

/// Runs a policy slot's watch loop while alive.
pub(crate) struct ReloadWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReloadWatcher {
    fn drop(&mut self) {
        self.task.abort();
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
    commands: mpsc::Sender<PolicyCommand>,
    role: PolicyRole,
    changes: Changes,
    /// What is loaded now.
    current: Option<Fingerprint>,
    /// Failed pulls in a row from a registry that was down; the next try waits
    /// [`retry_pause`] of them.
    pull_failures: u32,
}

/// The wait before pull number `failures + 1`: 1 s, doubling to a minute.
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
        commands: mpsc::Sender<PolicyCommand>,
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
            pull_failures: 0,
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
                    return instance;
                }
                Err(Failed { error, tried }) => {
                    report_failure(&self.status, self.role, &self.events, &error, tried).await;
                    if error.is_transient() {
                        self.pull_failures = 1;
                    }
                    break (found, Some(error.to_string()));
                }
            }
        };
        self.current = Some(found.fingerprint());
        // A shadow without a plugin file is the built-in policy with the shadow's own
        // settings: how new settings for it are tried before they go live.
        let builtin_settings = if self.source.name == "priority" || self.role == PolicyRole::Shadow
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

    /// The reload metric counts the active policy's reloads only.
    fn count_success(&self) {
        if self.role == PolicyRole::Active {
            self.status.metrics.reload("ok");
        }
    }

    async fn run(mut self) {
        let mut retry_at = (self.pull_failures > 0)
            .then(|| tokio::time::Instant::now() + retry_pause(self.pull_failures));
        // A change between the first read and now is caught by this first pass.
        let mut pending = true;
        loop {
            if !pending {
                if self.changes.closed() && retry_at.is_none() {
                    return;
                }
                tokio::select! {
                    () = sleep_until_opt(retry_at) => {
                        tracing::info!(attempt = self.pull_failures + 1, "pulling the policy again");
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
            if current == Some(&fingerprint) && self.pull_failures == 0 {
                return None;
            }
            if current.is_some_and(|c| *c != fingerprint && fingerprint.same_plugin(c)) {
                tracing::info!("policy settings changed; applying without recompiling");
                let _ = self
                    .commands
                    .send(PolicyCommand::Settings(found.settings.clone()))
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
                    self.pull_failures = 0;
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
                    let _ = self.commands.send(PolicyCommand::Swap(instance)).await;
                    self.current = Some(fingerprint);
                    return None;
                }
                Err(Failed { error, tried }) => {
                    if self.changes.more_soon().await {
                        continue;
                    }
                    let same = self.current.as_ref() == Some(&fingerprint);
                    // A registry that is down: said once, then tried again in the
                    // background until it answers or the policy changes.
                    if error.is_transient() {
                        if self.pull_failures == 0 || !same {
                            report_failure(&self.status, self.role, &self.events, &error, tried)
                                .await;
                        }
                        self.pull_failures = if same {
                            self.pull_failures.saturating_add(1)
                        } else {
                            1
                        };
                        self.current = Some(fingerprint);
                        return Some(retry_pause(self.pull_failures));
                    }
                    self.pull_failures = 0;
                    report_failure(&self.status, self.role, &self.events, &error, tried).await;
                    self.current = Some(fingerprint);
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

/// The next file event; none once the watcher is gone; never without one.
async fn recv_opt(files: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match files {
        Some(files) => files.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the API's ConfigMap changes (false once its watch is gone); never
/// without one.
async fn changed_opt(api: &mut Option<watch::Receiver<PolicyFiles>>) -> bool {
    match api {
        Some(files) => files.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Drains events until the directory has been quiet for [`DEBOUNCE`].
async fn settle(events: Option<&mut mpsc::UnboundedReceiver<()>>) {
    let Some(events) = events else { return };
    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, events.recv()).await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_seen_by_a_dropped_wait_is_reported_by_the_next() {
        let dir = tempfile::tempdir().expect("dir");
        let source = PolicySource {
            dir: Some(dir.path().to_path_buf()),
            name: "priority".into(),
            api: None,
            trust: Default::default(),
        };
        let mut changes = Changes::start(&source);
        std::fs::write(dir.path().join("priority.json"), "{}").expect("write");
        // Dropped while the change settles (a load in flight finished first)…
        let first = tokio::time::timeout(DEBOUNCE / 2, changes.next()).await;
        assert!(first.is_err(), "still settling");
        // …the change is not lost.
        let second = tokio::time::timeout(Duration::from_secs(5), changes.next()).await;
        assert!(second.is_ok(), "the change is reported");
    }
}
