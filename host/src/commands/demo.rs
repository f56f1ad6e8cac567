//! `podlight demo`: the agent's own path with a scripted node and a virtual device.

use super::agent::{AgentArgs, AgentInputs, on_runtime, serve};
use super::args::DeviceKind;
use anyhow::Result;
use clap::Args;
use podlight::agent::DemoScenario;
use std::time::Duration;

#[derive(Args)]
pub struct DemoArgs {
    /// Seconds per scenario step.
    #[arg(long, default_value_t = 2.5)]
    step: f64,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    duration: Option<f64>,
    #[command(flatten)]
    agent: AgentArgs,
}

pub fn demo(mut args: DemoArgs) -> Result<()> {
    args.agent.device.device = DeviceKind::Virtual;
    on_runtime(async {
        let scenario = DemoScenario::start(Duration::from_secs_f64(args.step.max(0.1)));
        let stop_after = args.duration.map(Duration::from_secs_f64);
        serve(
            &args.agent,
            AgentInputs::alone(scenario.snapshots.clone()),
            stop_after,
        )
        .await
    })
}
