//! Argument groups several commands share, and what they build: how to reach the
//! cluster, which sticks, which policy engine, how to show a frame.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use podlight::cluster::{
    ClusterError, ConnectOptions, Connection, StateWatch, WatchOptions, connect, node_name,
};
use podlight::device::hid::HidBus;
use podlight::device::protocol::Model;
use podlight::device::sim::emulator::EmulatorBus;
use podlight::device::sim::virtual_display::{FrameDisplay, frame_observer, virtual_stick};
use podlight::device::writer::FrameObserver;
use podlight::device::{
    Bus, DeviceError, DeviceManager, DeviceOptions, FrameWriter, Joining, StickSpec, WriterOptions,
};
use podlight::frame::Rgb;
use podlight::policy::signature::TrustedKeys;
use podlight::policy::{
    BUILTIN_NAME, Backend, ChildCompiler, CompileBudget, Compiler, EngineOptions, Policy,
    PolicyEngine,
};
use podlight::registry::{Credentials, RegistryClient, RegistryOptions};

use super::wait_for_stop;

/// LEDs to evaluate for when no device says how many (`eval`, `replay`).
pub const DEFAULT_LED_COUNT: usize = 8;

/// How to reach the API server.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// A kubeconfig file (default: in a pod, the in-cluster config; else $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
}

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

/// What one agent shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Its own node's pods (a DaemonSet pod on each node).
    Node,
    /// Every node and pod (one agent, a Deployment): one LED per node.
    Cluster,
}

/// Which node and pods to watch, and how to reach the API server.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// `node`: this node's pods. `cluster`: every node and pod, for one agent showing
    /// the whole cluster (the policy sees `scope` cluster and `nodes`).
    #[arg(long, value_enum, default_value = "node", env = "PODLIGHT_SCOPE")]
    pub scope: ScopeArg,
    /// The node to watch (default: $NODE_NAME, or $NODE_HOSTNAME). Not used in
    /// cluster scope.
    #[arg(long)]
    pub node: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Only pods in these namespaces (repeat or comma-separate); default: all.
    #[arg(long = "namespace", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Only pods matching this label selector, e.g. `tier=web`.
    #[arg(long)]
    pub selector: Option<String>,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// Real sticks over USB HID.
    Usb,
    /// An emulated stick drawn in the terminal.
    Virtual,
}

/// Which sticks and how to drive them; shared by every command that shows LEDs.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// `usb` for real sticks, `virtual` to draw the LEDs in the terminal.
    #[arg(long, value_enum, default_value = "usb", env = "PODLIGHT_DEVICE")]
    pub device: DeviceKind,
    /// Sticks by serial, in strip order (repeat or comma-separate); default: the first found.
    #[arg(long = "serial", value_delimiter = ',', env = "PODLIGHT_SERIALS")]
    pub serials: Vec<String>,
    /// Every stick shows the same frame instead of forming one strip.
    #[arg(long)]
    pub mirror: bool,
    /// The model, when the stick cannot tell (original, pro, square, strip, nano, flex).
    #[arg(long, value_parser = Model::parse)]
    pub model: Option<Model>,
    /// LEDs per stick (Pro in WS2812 mode: up to 192; Flex: up to 32); virtual: default 8.
    #[arg(long)]
    pub leds: Option<usize>,
    /// Highest value of any colour channel (0–255).
    #[arg(long)]
    pub brightness_cap: Option<u8>,
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
        Ok((Arc::new(HidBus::new()?), DeviceOptions { sticks, joining }))
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

#[derive(Args)]
pub struct EngineArgs {
    /// Run plugins on the Pulley interpreter instead of native code.
    #[arg(long)]
    pulley: bool,
    /// Keep compiled plugins here so an unchanged plugin is not compiled again.
    #[arg(long, env = "PODLIGHT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Deadline of one evaluation, in milliseconds.
    #[arg(long, default_value_t = 50)]
    deadline_ms: u64,
    /// Memory a plugin may use, in MiB.
    #[arg(long, default_value_t = 32)]
    memory_mib: usize,
    /// Largest plugin accepted, in MiB, before and after decompression (a Python
    /// policy is about 18 MiB).
    #[arg(long, default_value_t = 32)]
    max_plugin_mib: usize,
    /// Memory one plugin's compile may use, in MiB (it runs in a child process).
    #[arg(long, default_value_t = CompileBudget::default().memory >> 20, env = "PODLIGHT_COMPILE_MEMORY_MIB")]
    compile_memory_mib: usize,
    /// CPU time one plugin's compile may use, in seconds (twice that in wall time).
    #[arg(long, default_value_t = CompileBudget::default().cpu.as_secs(), env = "PODLIGHT_COMPILE_CPU_SECONDS")]
    compile_cpu_seconds: u64,
}

impl EngineArgs {
    /// Largest plugin accepted, in bytes.
    pub fn max_plugin_bytes(&self) -> usize {
        self.max_plugin_mib << 20
    }

    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    pub fn engine(&self) -> Result<PolicyEngine> {
        let options = EngineOptions {
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            memory_limit: self.memory_mib << 20,
            max_plugin_size: self.max_plugin_mib << 20,
            cache_dir: self.cache_dir.clone(),
            backend: self.backend(),
            parallel_compilation: true,
            compiler: Compiler::Child(ChildCompiler {
                program: this_program(),
                budget: CompileBudget {
                    memory: self.compile_memory_mib << 20,
                    cpu: Duration::from_secs(self.compile_cpu_seconds),
                    wall: Duration::from_secs(self.compile_cpu_seconds.saturating_mul(2)),
                },
            }),
        };
        Ok(PolicyEngine::new(options)?)
    }

    fn backend(&self) -> Backend {
        if self.pulley {
            Backend::Pulley
        } else {
            Backend::native()
        }
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

/// How to reach OCI registries; shared by the agent and `podlight plugin push|pull`.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Registry credentials as Docker config JSON: a kubernetes.io/dockerconfigjson
    /// Secret's `.dockerconfigjson`, mounted, or ~/.docker/config.json.
    #[arg(long, env = "PODLIGHT_REGISTRY_AUTH")]
    registry_auth: Option<PathBuf>,
    /// Registries (host[:port]) spoken to over plain HTTP instead of HTTPS.
    #[arg(
        long = "insecure-registry",
        value_delimiter = ',',
        env = "PODLIGHT_INSECURE_REGISTRIES"
    )]
    insecure: Vec<String>,
    /// PEM CA certificates to trust for registries, besides the system's.
    #[arg(
        long = "registry-ca",
        value_delimiter = ',',
        env = "PODLIGHT_REGISTRY_CA"
    )]
    ca: Vec<PathBuf>,
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
        let extra_ca_pem = self
            .ca
            .iter()
            .map(|path| {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read the registry CA {}", path.display()))?;
                podlight::registry::client::certificates_in(&pem).map_err(|why| {
                    anyhow::anyhow!("the registry CA {} is not usable: {why}", path.display())
                })?;
                Ok(pem)
            })
            .collect::<Result<Vec<_>>>()?;
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

/// How a one-shot command shows its frame.
#[derive(Args, Debug, Clone, Copy)]
pub struct ShowArgs {
    /// Keep showing the frame until SIGTERM or Ctrl-C, re-sending it when a stick is
    /// replugged.
    #[arg(long)]
    pub hold: bool,
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
