//! The policies ConfigMap, watched through the API: a change reaches the agent as
//! soon as the API server has it, instead of when the kubelet next syncs the pod's
//! ConfigMap volume (up to 1.5 × its `syncFrequency`, 90 s by default). One object,
//! by name (field selector `metadata.name`), so the agent needs get/list/watch on
//! that ConfigMap alone.

use super::backoff::WatchBackoff;
use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the API says the ConfigMap holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyFiles {
    /// The watch has not listed yet (or lost the server before it did).
    Unknown,
    /// The ConfigMap does not exist.
    Absent,
    /// Its keys and contents (`data` as UTF-8, `binaryData` as bytes).
    Present(Arc<BTreeMap<String, Vec<u8>>>),
}

/// The running watch of the policies ConfigMap. Dropping it stops the watch.
pub struct PolicyConfigMapWatch {
    files: watch::Receiver<PolicyFiles>,
    task: JoinHandle<()>,
}

impl Drop for PolicyConfigMapWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PolicyConfigMapWatch {
    /// Watches ConfigMap `namespace/name` on the current tokio runtime.
    pub fn start(client: kube::Client, namespace: &str, name: &str) -> PolicyConfigMapWatch {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let (sender, files) = watch::channel(PolicyFiles::Unknown);
        let what = format!("{namespace}/{name}");
        let task = tokio::spawn(async move {
            let mut events = watcher(api, config)
                .backoff(WatchBackoff::default())
                .boxed();
            // The object as the last complete list or event left it.
            let mut listing: Option<Option<ConfigMap>> = None;
            let mut current: Option<ConfigMap> = None;
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Init) => listing = Some(None),
                    Ok(watcher::Event::InitApply(object)) => listing = Some(Some(object)),
                    Ok(watcher::Event::InitDone) => {
                        current = listing.take().flatten();
                    }
                    Ok(watcher::Event::Apply(object)) => current = Some(object),
                    Ok(watcher::Event::Delete(_)) => current = None,
                    Err(error) => {
                        tracing::warn!(configmap = %what, %error, "watching the policies ConfigMap failed; retrying with backoff (the mounted files still apply)");
                        continue;
                    }
                }
                if listing.is_some() {
                    continue;
                }
                let next = match &current {
                    Some(object) => PolicyFiles::Present(Arc::new(files_of(object))),
                    None => PolicyFiles::Absent,
                };
                sender.send_if_modified(|files| {
                    let changed = *files != next;
                    if changed {
                        *files = next;
                    }
                    changed
                });
            }
        });
        PolicyConfigMapWatch { files, task }
    }

    /// The latest state, and changes as they come.
    pub fn files(&self) -> watch::Receiver<PolicyFiles> {
        self.files.clone()
    }
}

/// A ConfigMap's keys as files, as the kubelet would write them.
pub fn files_of(object: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value) in object.data.iter().flatten() {
        files.insert(key.clone(), value.clone().into_bytes());
    }
    for (key, value) in object.binary_data.iter().flatten() {
        files.insert(key.clone(), value.0.clone());
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn data_and_binary_data_are_both_files() {
        let object = ConfigMap {
            data: Some([("p.json".to_string(), "{}".to_string())].into()),
            binary_data: Some([("p.wasm".to_string(), ByteString(vec![0, 97, 115, 109]))].into()),
            ..ConfigMap::default()
        };
        let files = files_of(&object);
        assert_eq!(files.get("p.json").map(Vec::as_slice), Some(&b"{}"[..]));
        assert_eq!(files.get("p.wasm").map(Vec::as_slice), Some(&b"\0asm"[..]));
    }
}
