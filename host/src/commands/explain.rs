//! `podlight explain`: why each LED of a node's light has its colour, asked of the
//! node's agent — through the API server's pod proxy with the user's own RBAC, or
//! straight at an agent's address (`--agent http://127.0.0.1:9102`).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use podlight::cluster::{find_agent_pod, get_through_proxy};
use podlight::explain::{Explanation, render};
use podlight::policy::untrusted::sanitize;

use super::args::ConnectArgs;

#[derive(Args)]
pub struct ExplainArgs {
    /// Only this LED (0 is the first); default: every LED.
    led: Option<u32>,
    /// The node whose light to explain; default: the only agent, or the cluster light.
    #[arg(long)]
    node: Option<String>,
    /// Ask this agent pod instead of finding it by node.
    #[arg(long, conflicts_with = "node")]
    pod: Option<String>,
    /// Ask an agent at this address directly (its --listen), not through the cluster.
    #[arg(long, conflicts_with_all = ["node", "pod"])]
    agent: Option<String>,
    /// The namespace podlight runs in.
    #[arg(long, short = 'n', default_value = "podlight")]
    namespace: String,
    /// The agents' HTTP port (their --listen).
    #[arg(long, default_value_t = 9102)]
    port: u16,
    /// How long to wait for the answer, in seconds.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    /// `text` for people, `json` for scripts.
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    output: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub fn explain(args: ExplainArgs) -> Result<()> {
    let deadline = Duration::from_secs(args.timeout);
    let text = super::runtime()?.block_on(async {
        match &args.agent {
            Some(agent) => ask_directly(agent, deadline).await,
            None => {
                let connection = args.connect.connect().await?;
                let pod = match &args.pod {
                    Some(pod) => pod.clone(),
                    None => {
                        find_agent_pod(
                            connection.client.clone(),
                            &args.namespace,
                            args.node.as_deref(),
                            deadline,
                        )
                        .await?
                    }
                };
                Ok(get_through_proxy(
                    connection.client,
                    &args.namespace,
                    &pod,
                    args.port,
                    "/api/explain",
                    deadline,
                )
                .await?)
            }
        }
    })?;
    let explanation: Explanation = serde_json::from_str(&text).with_context(|| {
        format!(
            "the agent's answer is not an explanation (an older podlight?): {}",
            sanitize(&text, 200)
        )
    })?;
    if let Some(led) = args.led
        && !explanation.leds.iter().any(|l| l.led == led)
    {
        bail!(
            "LED {led} does not exist: the light has {} LEDs (0 to {})",
            explanation.leds.len(),
            explanation.leds.len().saturating_sub(1)
        );
    }
    if args.output == "json" {
        let mut explanation = explanation;
        if let Some(led) = args.led {
            explanation.leds.retain(|l| l.led == led);
        }
        outln!("{}", serde_json::to_string_pretty(&explanation)?)?;
    } else {
        let blocks = std::io::IsTerminal::is_terminal(&std::io::stdout());
        out!("{}", render(&explanation, args.led, blocks))?;
    }
    Ok(())
}

/// `GET {agent}/api/explain` within `deadline`, the answer bounded.
async fn ask_directly(agent: &str, deadline: Duration) -> Result<String> {
    let url = format!("{}/api/explain", agent.trim_end_matches('/'));
    podlight::registry::transport::use_ring_crypto();
    let client = reqwest::Client::builder()
        .timeout(deadline)
        .build()
        .context("cannot set up an HTTP client")?;
    let response = client.get(&url).send().await.with_context(|| {
        format!(
            "cannot reach the agent at {agent}; is it running, and is --agent its --listen address?"
        )
    })?;
    let status = response.status();
    let mut response = response;
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("the agent at {agent} did not finish its answer"))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > podlight::cluster::MAX_AGENT_ANSWER_BYTES {
            bail!(
                "the agent at {agent} answered more than {} bytes",
                podlight::cluster::MAX_AGENT_ANSWER_BYTES
            );
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if !status.is_success() {
        bail!(
            "the agent at {agent} answered {status}: {}",
            sanitize(&text, 200)
        );
    }
    Ok(text)
}
