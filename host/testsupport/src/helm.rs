//! The real Helm (built by scripts/build-control-plane) and the chart in deploy/helm.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::control_plane::binary;
use crate::repo_root;

/// deploy/helm/podlight as cloned.
pub fn chart() -> PathBuf {
    repo_root().join("deploy/helm/podlight")
}

/// Runs `helm ARGS` against `kubeconfig`, with Helm's cache, configuration and data
/// under `home` so a test never reads or writes the user's.
pub fn helm(kubeconfig: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(binary("helm"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("helm runs")
}

/// Labels Helm's conventions add to what deploy/base renders; dropped before the two
/// installs are compared.
const HELM_ONLY_LABELS: [&str; 3] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
];

/// An object as the API server would store it, stripped of what differs between any
/// two creations (uid, timestamps, managed fields, kubectl's bookkeeping) and of the
/// labels only Helm adds, with JSON settings in ConfigMaps parsed and numbers compared
/// as numbers (`1.0` and `1` are the same setting).
pub fn normalised(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for volatile in [
            "uid",
            "creationTimestamp",
            "managedFields",
            "resourceVersion",
            "generation",
        ] {
            metadata.remove(volatile);
        }
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.retain(|key, _| {
                key != "kubectl.kubernetes.io/last-applied-configuration"
                    && key != "deprecated.daemonset.template.generation"
            });
            if annotations.is_empty() {
                metadata.remove("annotations");
            }
        }
    }
    if let Some(object) = object.as_object_mut() {
        object.remove("status");
    }
    drop_helm_labels(&mut object);
    if object["kind"] == "ConfigMap"
        && let Some(data) = object.get_mut("data").and_then(Value::as_object_mut)
    {
        for (key, value) in data.iter_mut() {
            if key.ends_with(".json")
                && let Some(parsed) = value.as_str().and_then(|s| serde_json::from_str(s).ok())
            {
                *value = parsed;
            }
        }
    }
    numbers_as_floats(&mut object);
    object
}

fn drop_helm_labels(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if (key == "labels" || key == "matchLabels")
                    && let Some(labels) = child.as_object_mut()
                {
                    labels.retain(|label, _| !HELM_ONLY_LABELS.contains(&label.as_str()));
                }
                drop_helm_labels(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_helm_labels),
        _ => {}
    }
}

fn numbers_as_floats(value: &mut Value) {
    match value {
        Value::Number(number) => {
            if let Some(float) = number.as_f64().and_then(serde_json::Number::from_f64) {
                *number = float;
            }
        }
        Value::Object(map) => map.values_mut().for_each(numbers_as_floats),
        Value::Array(items) => items.iter_mut().for_each(numbers_as_floats),
        _ => {}
    }
}

/// `kind namespace/name` of an object, for comparing sets of them.
pub fn identity(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}
