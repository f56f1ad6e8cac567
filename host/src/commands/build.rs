//! From validated flags (`args.rs`) to the library's running parts: the API
//! connection and watch, the sticks' bus, the policy engine, the registry client and
//! trusted keys, and showing a frame.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use podlight::alerts::{AlertmanagerAuth, AlertmanagerOptions, NodeLabel};
use podlight::cluster::{
    ClusterError, ConnectOptions, Connection, StateWatch, WatchOptions, connect, node_name,
};
use podlight::device::hid::HidBus;
use podlight::device::sim::emulator::EmulatorBus;
use podlight::device::sim::virtual_display::{FrameDisplay, frame_observer, virtual_stick};
use podlight::device::wled::{self, WledBus};
use podlight::device::writer::FrameObserver;
use podlight::device::{
    Bus, DeviceError, DeviceManager, DeviceOptions, Family, FrameWriter, Joining, StickSpec,
    WriterOptions,
};
use podlight::frame::Rgb;
use podlight::policy::signature::TrustedKeys;
use podlight::policy::{BUILTIN_NAME, Policy, PolicyEngine};
use podlight::registry::{Credentials, RegistryClient, RegistryOptions};

use super::args::{
    AlertArgs, ClusterArgs, ConnectArgs, DeviceArgs, DeviceKind, EngineArgs, RegistryArgs,
    ScopeArg, ShowArgs,
};
use super::wait_for_stop;

impl ConnectArgs {
    /// A connection to the API server (nothing sent yet).
    pub async fn connect(&self) -> Result<Connection> {
        Ok(connect(&ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        })
        .await?)
    }
}

impl ClusterArgs {
    /// The node's name (empty in cluster scope) and a connection to the API server
    /// (nothing sent yet).
    pub async fn connect(&self) -> Result<(String, Connection)> {
        let node = match self.scope {
            ScopeArg::Node => node_name(self.node.as_deref())?,
            ScopeArg::Cluster => String::new(),
        };
        Ok((node, self.connect.connect().await?))
    }

    /// The first request: the node exists (node scope) or nodes can be listed
    /// (cluster scope), said as what to fix when not.
    pub async fn check(
        &self,
        node: &str,
        connection: &Connection,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        match self.scope {
            ScopeArg::Node => connection.check_node(node, timeout).await,
            ScopeArg::Cluster => connection.check_nodes(timeout).await,
        }
    }

    /// Starts watching `node`'s pods and the node, or in cluster scope every node
    /// and pod.
    pub fn watch(&self, node: String, connection: &Connection) -> StateWatch {
        let options = WatchOptions {
            node,
            namespaces: self.namespaces.clone(),
            label_selector: self.selector.clone(),
        };
        match self.scope {
            ScopeArg::Node => StateWatch::start(connection.client.clone(), options),
            ScopeArg::Cluster => StateWatch::start_cluster(connection.client.clone(), options),
        }
    }

    /// A watch of the node's pods that has listed them, or why not: wrong credentials,
    /// missing permissions, a closed port or an unknown node said at once, not after the
    /// watch has retried until the timeout.
    pub async fn synced_watch(&self, timeout: Duration) -> Result<StateWatch> {
        let (node, connection) = self.connect().await?;
        self.check(&node, &connection, timeout).await?;
        let watch = self.watch(node, &connection);
        if !watch.wait_synced(timeout).await {
            let errors = watch.status().watch_errors();
            bail!(ClusterError::Unreachable {
                url: connection.url,
                seconds: timeout.as_secs(),
                reason: format!(
                    "{errors} failed attempts to list pods and the node (see the log above)"
                ),
            });
        }
        Ok(watch)
    }
}

impl DeviceArgs {
    /// The bus and options these flags describe.
    pub fn open(&self) -> Result<(Arc<dyn Bus>, DeviceOptions)> {
        if self.device == DeviceKind::Virtual {
            let (bus, options) = virtual_stick(self.leds.unwrap_or(8));
            let bus: Arc<EmulatorBus> = bus;
            return Ok((bus, options));
        }
        let spec = |serial: Option<String>| StickSpec {
            serial,
            model: self.model,
            led_count: self.leds,
        };
        let sticks = if self.serials.is_empty() {
            vec![spec(None)]
        } else {
            self.serials
                .iter()
                .cloned()
                .map(|s| spec(Some(s)))
                .collect()
        };
        let joining = if self.mirror {
            Joining::Mirror
        } else {
            Joining::Strip
        };
        let bus: Arc<dyn Bus> = match &self.device {
            DeviceKind::Wled(address) => Arc::new(WledBus::new(address.clone())),
            _ => Arc::new(HidBus::new()?),
        };
        Ok((bus, DeviceOptions { sticks, joining }))
    }

    /// The sticks, connected now (for one-shot commands): an error if none is there.
    pub fn connect(&self) -> Result<DeviceManager> {
        let (bus, options) = self.open()?;
        let mut manager = DeviceManager::new(bus, options);
        if !manager.reconnect_due() {
            bail!(DeviceError::NotFound {
                serial: self.serials.first().cloned()
            });
        }
        Ok(manager)
    }

    pub fn observer(&self) -> Option<FrameObserver> {
        (self.device == DeviceKind::Virtual)
            .then(|| frame_observer(FrameDisplay::for_stderr(super::json_logs())))
    }
}

impl EngineArgs {
    pub fn engine(&self) -> Result<PolicyEngine> {
        Ok(PolicyEngine::new(self.options(this_program()))?)
    }

    pub fn load(&self, engine: &PolicyEngine, plugin: &str) -> Result<Policy> {
        let policy = if plugin == BUILTIN_NAME {
            engine.builtin()?
        } else {
            engine.load_file(Path::new(plugin))?
        };
        Ok(policy)
    }
}

impl RegistryArgs {
    /// A client for these registries; pulled plugins up to `max_bytes` are kept under
    /// `cache_dir`.
    pub fn client(&self, max_bytes: usize, cache_dir: Option<&Path>) -> Result<RegistryClient> {
        let credentials = match &self.registry_auth {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the registry credentials {}", path.display())
                })?;
                Credentials::from_docker_config(&text)
                    .with_context(|| format!("registry credentials {}", path.display()))?
            }
            None => Credentials::default(),
        };
        let extra_ca_pem = read_ca_files(&self.ca, "registry")?;
        Ok(RegistryClient::new(RegistryOptions {
            credentials,
            insecure: self.insecure.clone(),
            extra_ca_pem,
            max_bytes,
            cache_dir: cache_dir.map(Path::to_path_buf),
            ..RegistryOptions::default()
        }))
    }
}

/// PEM CA files, each checked to hold a certificate; `what` names whom they are for.
fn read_ca_files(paths: &[PathBuf], what: &str) -> Result<Vec<Vec<u8>>> {
    paths
        .iter()
        .map(|path| {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the {what} CA {}", path.display()))?;
            podlight::registry::client::certificates_in(&pem).map_err(|why| {
                anyhow::anyhow!("the {what} CA {} is not usable: {why}", path.display())
            })?;
            Ok(pem)
        })
        .collect()
}

impl AlertArgs {
    /// How to reach Alertmanager; none when no URL is given. A URL that is not one,
    /// or a CA file that holds no certificate, stops the start.
    pub fn options(&self) -> Result<Option<AlertmanagerOptions>> {
        let Some(url) = &self.alertmanager else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--alertmanager {url:?} is not an http:// or https:// URL; give Alertmanager's base URL, e.g. http://alertmanager-operated.monitoring:9093"
                )
            })?;
        if self.alertmanager_node_label.is_empty() {
            anyhow::bail!(
                "--alertmanager-node-label is empty; name the label that holds the node (node, instance, …)"
            );
        }
        let auth = match (
            &self.alertmanager_token_file,
            &self.alertmanager_basic_auth_file,
        ) {
            (Some(token), _) => AlertmanagerAuth::BearerTokenFile(token.clone()),
            (None, Some(basic)) => AlertmanagerAuth::BasicAuthFile(basic.clone()),
            (None, None) => AlertmanagerAuth::None,
        };
        Ok(Some(AlertmanagerOptions {
            url,
            node_label: NodeLabel(self.alertmanager_node_label.clone()),
            interval: Duration::from_secs(self.alertmanager_interval_seconds.max(1)),
            deadline: ALERTMANAGER_DEADLINE,
            extra_ca_pem: read_ca_files(&self.alertmanager_ca, "Alertmanager")?,
            auth,
        }))
    }
}

/// Overall deadline of one Alertmanager poll.
const ALERTMANAGER_DEADLINE: Duration = Duration::from_secs(10);

/// A policy's settings file (JSON by convention), if one is given.
pub fn read_settings(path: Option<&Path>) -> Result<Option<String>> {
    path.map(|path| {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the settings file {}", path.display()))
    })
    .transpose()
}

/// Public keys policies must be signed with: PEM files, or directories of them (a
/// mounted ConfigMap or Secret).
pub fn trusted_keys(paths: &[PathBuf]) -> Result<TrustedKeys> {
    let mut keys = TrustedKeys::default();
    for path in paths {
        let files = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read the key directory {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                // A mounted ConfigMap's `..data` links and hidden files are not keys.
                .filter(|p| {
                    p.is_file()
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            files.sort();
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the verification key {}", file.display()))?;
            keys.add_pem(&file.display().to_string(), &pem)?;
        }
    }
    if !paths.is_empty() && keys.is_empty() {
        bail!(
            "no verification key found in {}: refusing to start with signature checks on and nothing to check against",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(keys)
}

/// This binary, to run as the compiling child: its path from /proc, else how it was
/// started (where /proc is not mounted, e.g. a bare chroot), else `podlight` on PATH.
pub fn this_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .or_else(|| std::env::args_os().next().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("podlight"))
}

/// Fades the sticks to `leds` through the frame writer and waits until they show
/// them; with `--hold`, keeps them shown until a stop signal.
pub fn show(
    manager: DeviceManager,
    device: &DeviceArgs,
    leds: Vec<Rgb>,
    fade: Duration,
    how: ShowArgs,
) -> Result<()> {
    let options = WriterOptions {
        fade,
        brightness_cap: device.brightness_cap,
        ..WriterOptions::default()
    };
    // A WLED controller keeps a frame only while frames keep coming: say so, and how
    // to keep it, before it goes back to its own effect.
    if !how.hold && manager.status().families().contains(&Family::Wled) {
        eprintln!(
            "a WLED controller shows its own effect again {} s after the last frame; pass --hold to keep showing this one",
            wled::TIMEOUT_SECONDS
        );
    }
    let writer = FrameWriter::spawn(manager, options, device.observer());
    let shown = writer.show(leds, fade + Duration::from_secs(2));
    let errors = writer.status().errors();
    if shown && how.hold {
        eprintln!("showing; stop with Ctrl-C or SIGTERM");
        let held = super::runtime()?.block_on(wait_for_stop(None));
        // As without --hold, the LEDs keep the colour after podlight exits.
        writer.shutdown(false);
        return held;
    }
    writer.shutdown(false);
    if device.device == DeviceKind::Virtual {
        eprintln!();
    }
    if !shown || errors > 0 {
        bail!("the stick did not take the colour ({errors} write errors); is it still plugged in?");
    }
    Ok(())
}
