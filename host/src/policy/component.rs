//! A compiled, linked plugin ([`Policy`]): starts sandboxes running it, and says what
//! a failed call means.

use std::sync::Arc;

use wasmtime::{Engine, Store, Trap};

use super::PolicyError;
use super::bindings::{current, v0_2, v0_3};
use super::epoch::EpochTicker;
use super::inspect::{self, PluginInfo};
use super::instance::{LivePolicy, PolicyInstance};
use super::output::PluginOutput;
use super::sandbox::{OverMemoryLimit, PluginState};
use super::untrusted::{MAX_PLUGIN_TEXT, sanitize};

/// The call a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallPhase {
    Instantiate,
    Configure,
    Evaluate,
}

impl CallPhase {
    fn name(self) -> &'static str {
        match self {
            CallPhase::Instantiate => "instantiate",
            CallPhase::Configure => "configure",
            CallPhase::Evaluate => "evaluate",
        }
    }
}

/// A compiled, linked plugin. Cheap to instantiate; shareable across threads.
pub struct Policy {
    pub(super) engine: Engine,
    pub(super) pre: LinkedPolicy,
    pub(super) info: PluginInfo,
    pub(super) output: Arc<(PluginOutput, PluginOutput)>,
    pub(super) deadline_ticks: u64,
    pub(super) deadline_ms: u64,
    pub(super) memory_limit: usize,
    pub(super) ticker: Arc<EpochTicker>,
}

impl Policy {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Starts a sandbox running this plugin with these settings.
    pub fn instantiate(
        self: &Arc<Self>,
        settings: Option<String>,
    ) -> Result<PolicyInstance, PolicyError> {
        let (instance, settings_problem) = self.instantiate_with_complaint(settings)?;
        if let Some(problem) = settings_problem {
            tracing::warn!(plugin = %self.info.name, "{problem}");
        }
        Ok(instance)
    }

    /// The same, returning the policy's complaint about its settings (it then runs on
    /// its documented defaults) instead of logging it.
    pub fn instantiate_with_complaint(
        self: &Arc<Self>,
        settings: Option<String>,
    ) -> Result<(PolicyInstance, Option<String>), PolicyError> {
        let (store, bindings, settings_problem) = self.start(settings.as_deref())?;
        Ok((
            PolicyInstance::started(Arc::clone(self), settings, store, bindings),
            settings_problem,
        ))
    }

    pub(super) fn start(
        &self,
        settings: Option<&str>,
    ) -> Result<(Store<PluginState>, LivePolicy, Option<String>), PolicyError> {
        let mut store = Store::new(
            &self.engine,
            PluginState::new(&self.output, self.memory_limit),
        );
        store.limiter(|state| &mut state.limits);
        let _ticking = self.ticker.running();
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.call_error(e, CallPhase::Instantiate))?;
        store.set_epoch_deadline(self.deadline_ticks);
        let configured = bindings
            .configure(&mut store, settings)
            .map_err(|e| self.call_error(e, CallPhase::Configure))?;
        let problem = configured
            .err()
            .map(|text| sanitize(&text, MAX_PLUGIN_TEXT));
        Ok((store, bindings, problem))
    }

    /// Turns a failed call into the error that says what happened.
    pub(super) fn call_error(&self, error: wasmtime::Error, during: CallPhase) -> PolicyError {
        let name = self.info.name.clone();
        if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
            return PolicyError::Timeout {
                name,
                deadline_ms: self.deadline_ms,
            };
        }
        if error.downcast_ref::<OverMemoryLimit>().is_some() {
            return PolicyError::MemoryLimit {
                name,
                limit_mib: self.memory_limit >> 20,
            };
        }
        let text = format!("{error:#}");
        // Traps carry the plugin's own function names (its name section): untrusted.
        let text = sanitize(&text, MAX_PLUGIN_TEXT);
        if during == CallPhase::Instantiate {
            return PolicyError::Instantiate { name, reason: text };
        }
        PolicyError::Trap {
            name,
            reason: format!("during {}: {text}", during.name()),
        }
    }
}

/// A compiled plugin linked against the contract version it was built for.
pub(super) enum LinkedPolicy {
    Current(current::PolicyPre<PluginState>),
    V0_3(v0_3::PolicyPre<PluginState>),
    V0_2(v0_2::PolicyPre<PluginState>),
}

impl LinkedPolicy {
    pub(super) fn new(
        pre: wasmtime::component::InstancePre<PluginState>,
        contract_version: &str,
    ) -> wasmtime::Result<Self> {
        Ok(
            if inspect::compatible(contract_version, inspect::CONTRACT_0_2) {
                LinkedPolicy::V0_2(v0_2::PolicyPre::new(pre)?)
            } else if inspect::compatible(contract_version, inspect::CONTRACT_0_3) {
                LinkedPolicy::V0_3(v0_3::PolicyPre::new(pre)?)
            } else {
                LinkedPolicy::Current(current::PolicyPre::new(pre)?)
            },
        )
    }

    fn instantiate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<LivePolicy> {
        Ok(match self {
            LinkedPolicy::Current(pre) => LivePolicy::Current(pre.instantiate(store)?),
            LinkedPolicy::V0_3(pre) => LivePolicy::V0_3(pre.instantiate(store)?),
            LinkedPolicy::V0_2(pre) => LivePolicy::V0_2(pre.instantiate(store)?),
        })
    }
}
