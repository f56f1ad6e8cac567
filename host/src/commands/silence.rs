//! `podlight silence` and `podlight unsilence`: acknowledge a known failure on a pod
//! (or put a node in maintenance) with the `podlight.dev/silence` annotation, set with
//! the user's own RBAC (`patch` on the pod or node; the agents stay read-only), and
//! list the silences in force.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use podlight::explain::time;
use podlight::policy::untrusted::sanitize;
use podlight::state::{
    MAX_SILENCE_REASON, SILENCE_ANNOTATION, Silence, silence_from_annotations, wall_clock_ms,
};

use super::args::ConnectArgs;

#[derive(Args)]
pub struct SilenceArgs {
    /// Pods (`NAME` in --namespace, or `NAMESPACE/NAME`) or nodes (`node/NAME`).
    targets: Vec<String>,
    /// How long: e.g. 30m, 2h, 1h30m, 3d.
    #[arg(
        long = "for",
        value_name = "DURATION",
        required_unless_present = "list"
    )]
    duration: Option<String>,
    /// Why, for whoever looks at the light next (`podlight explain` shows it).
    #[arg(long, default_value = "")]
    reason: String,
    /// The pods' namespace.
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    /// List every silence (pods in all namespaces and nodes) instead.
    #[arg(long, conflicts_with_all = ["targets", "duration"])]
    list: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args)]
pub struct UnsilenceArgs {
    /// Pods (`NAME` in --namespace, or `NAMESPACE/NAME`) or nodes (`node/NAME`).
    #[arg(required = true)]
    targets: Vec<String>,
    /// The pods' namespace.
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Each request's deadline.
const DEADLINE: Duration = Duration::from_secs(30);

/// A pod or a node named on the command line.
enum Target {
    Pod { namespace: String, name: String },
    Node(String),
}

impl Target {
    fn parse(text: &str, namespace: &str) -> Result<Target> {
        let target = match text.split_once('/') {
            Some(("node" | "nodes" | "no", name)) => Target::Node(name.to_string()),
            Some((ns, name)) => Target::Pod {
                namespace: ns.to_string(),
                name: name.to_string(),
            },
            None => Target::Pod {
                namespace: namespace.to_string(),
                name: text.to_string(),
            },
        };
        match &target {
            Target::Pod { name, .. } | Target::Node(name) if name.is_empty() => {
                bail!("{text:?} names no object: write POD, NAMESPACE/POD or node/NAME")
            }
            _ => Ok(target),
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Pod { namespace, name } => format!("pod {namespace}/{name}"),
            Target::Node(name) => format!("node/{name}"),
        }
    }

    /// Merge-patches the annotation (none: removes it).
    async fn annotate(&self, client: &kube::Client, value: Option<&str>) -> Result<()> {
        let patch = serde_json::json!({"metadata": {"annotations": {SILENCE_ANNOTATION: value}}});
        let params = PatchParams::default();
        let patched = match self {
            Target::Pod { namespace, name } => {
                let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
                deadline(pods.patch(name, &params, &Patch::Merge(&patch)))
                    .await
                    .map(drop)
            }
            Target::Node(name) => {
                let nodes: Api<Node> = Api::all(client.clone());
                deadline(nodes.patch(name, &params, &Patch::Merge(&patch)))
                    .await
                    .map(drop)
            }
        };
        patched.map_err(|e| self.refusal(e))
    }

    fn refusal(&self, error: anyhow::Error) -> anyhow::Error {
        let (verb, place) = match self {
            Target::Pod { namespace, .. } => ("patch pods", format!(" -n {namespace}")),
            Target::Node(_) => ("patch nodes", String::new()),
        };
        match error.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) if status.code == 403 => anyhow::anyhow!(
                "you may not {verb}{place} (the API server said: {}); ask for a Role granting it — \
                 `kubectl auth can-i {verb}{place}` checks",
                sanitize(&status.message, 300)
            ),
            Some(kube::Error::Api(status)) if status.code == 404 => {
                anyhow::anyhow!("there is no {}", self.describe())
            }
            _ => error.context(format!("cannot annotate {}", self.describe())),
        }
    }
}

async fn deadline<T>(
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T> {
    match tokio::time::timeout(DEADLINE, request).await {
        Ok(result) => Ok(result?),
        Err(_) => bail!(
            "the API server did not answer within {} s",
            DEADLINE.as_secs()
        ),
    }
}

/// `2h`, `30m`, `1h30m`, `90s`, `3d`.
fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || anyhow::anyhow!("--for {text:?} is not a duration like 30m, 2h, 1h30m or 3d");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Who the API server says we are (`kubectl auth whoami`); empty when it will not say.
async fn who_am_i(client: &kube::Client) -> String {
    let reviews: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = SelfSubjectReview {
        metadata: ObjectMeta::default(),
        status: None,
    };
    match deadline(reviews.create(&PostParams::default(), &review)).await {
        Ok(answer) => answer
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_default(),
        Err(error) => {
            tracing::debug!(%error, "the API server did not say who we are");
            String::new()
        }
    }
}

pub fn silence(args: SilenceArgs) -> Result<()> {
    super::runtime()?.block_on(async {
        let connection = args.connect.connect().await?;
        let client = connection.client;
        if args.list {
            return list(&client).await;
        }
        if args.targets.is_empty() {
            bail!("name what to silence: POD, NAMESPACE/POD or node/NAME");
        }
        let duration = parse_duration(args.duration.as_deref().unwrap_or_default())?;
        let targets = args
            .targets
            .iter()
            .map(|t| Target::parse(t, &args.namespace))
            .collect::<Result<Vec<_>>>()?;
        let by = who_am_i(&client).await;
        let until_ms =
            wall_clock_ms().saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        let silence = Silence {
            until_ms,
            reason: sanitize(&args.reason, MAX_SILENCE_REASON),
            by,
        };
        let value = silence.to_annotation();
        for target in &targets {
            target.annotate(&client, Some(&value)).await?;
            outln!("{} silenced until {}", target.describe(), time(until_ms))?;
        }
        Ok(())
    })
}

pub fn unsilence(args: UnsilenceArgs) -> Result<()> {
    super::runtime()?.block_on(async {
        let connection = args.connect.connect().await?;
        let targets = args
            .targets
            .iter()
            .map(|t| Target::parse(t, &args.namespace))
            .collect::<Result<Vec<_>>>()?;
        for target in &targets {
            target.annotate(&connection.client, None).await?;
            outln!("{} no longer silenced", target.describe())?;
        }
        Ok(())
    })
}

/// Every silenced pod and node, with its state: in force, ended, or malformed.
async fn list(client: &kube::Client) -> Result<()> {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let params = ListParams::default();
    let pods = deadline(pods.list_metadata(&params))
        .await
        .context("cannot list pods (this needs `list pods` in every namespace)")?;
    let nodes = deadline(nodes.list_metadata(&params))
        .await
        .context("cannot list nodes")?;
    let now = wall_clock_ms();
    let mut rows = Vec::new();
    let mut row = |object: String, annotations: Option<&BTreeMap<String, String>>| {
        let Some(found) = annotations.and_then(silence_from_annotations) else {
            return;
        };
        let text = match found {
            Ok(s) => format!(
                "{} until {} by {}: {}",
                if s.in_force(now) { "in force" } else { "ended" },
                time(s.until_ms),
                if s.by.is_empty() { "?" } else { &s.by },
                s.reason
            ),
            Err(problem) => format!("malformed, ignored: {problem}"),
        };
        rows.push(format!("{object}  {text}"));
    };
    for node in &nodes.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        row(format!("node/{name}"), node.metadata.annotations.as_ref());
    }
    for pod in &pods.items {
        let meta = &pod.metadata;
        row(
            format!(
                "pod {}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            ),
            meta.annotations.as_ref(),
        );
    }
    if rows.is_empty() {
        outln!("no silences")?;
    }
    for line in rows {
        outln!("{}", sanitize(&line, 600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_targets() {
        assert_eq!(parse_duration("2h").ok(), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("3d").ok(),
            Some(Duration::from_secs(259_200))
        );
        for bad in ["", "2", "h", "2x", "0m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(matches!(Target::parse("node/n1", "default"), Ok(Target::Node(n)) if n == "n1"));
        assert!(matches!(Target::parse("prod/api", "default"),
            Ok(Target::Pod { namespace, name }) if namespace == "prod" && name == "api"));
        assert!(Target::parse("node/", "default").is_err());
    }
}
