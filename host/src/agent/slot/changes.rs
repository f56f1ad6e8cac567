//! What can change a policy source — the directory's file events and the API's
//! ConfigMap — debounced, and watched from before the source's first read.

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::agent::source::PolicySource;
use crate::cluster::PolicyFiles;

/// Quiet time after the last file event before reading.
pub(super) const DEBOUNCE: Duration = Duration::from_millis(250);

/// What can change a policy source: the directory's file events and the API's
/// ConfigMap. Started before the source is first read, so no change is missed while
/// the first policy loads.
pub(super) struct Changes {
    files: Option<mpsc::UnboundedReceiver<()>>,
    api: Option<watch::Receiver<PolicyFiles>>,
    _watcher: Option<notify::RecommendedWatcher>,
    /// A file event was taken and its settling not finished: [`Changes::next`] may be
    /// dropped while it waits for the quiet (a load finished first), and the change
    /// must not be lost with it.
    files_pending: bool,
}

impl Changes {
    pub(super) fn start(source: &PolicySource) -> Changes {
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
    pub(super) fn closed(&self) -> bool {
        self.files.is_none() && self.api.is_none()
    }

    /// Resolves at the next change — file events once they settle, an API update at
    /// once (the object changes whole); never when nothing can change. Cancel-safe:
    /// a change it has seen is reported by the next call if this one is dropped.
    pub(super) async fn next(&mut self) {
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
    pub(super) async fn more_soon(&mut self) -> bool {
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
    use crate::agent::source::PolicySource;

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
