//! Argument groups several commands share — how to reach the cluster, which sticks,
//! which policy engine, which registries, how to show a frame — as flags that only
//! parse and validate; what they build is `build.rs`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use podlight::device::protocol::Model;
use podlight::device::wled::Address;
use podlight::policy::{Backend, ChildCompiler, CompileBudget, Compiler, EngineOptions};

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

/// Where the lights are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    /// Lights on USB HID: BlinkStick, blink(1), Luxafor Flag.
    Usb,
    /// An emulated stick drawn in the terminal.
    Virtual,
    /// A WLED controller over the network.
    Wled(Address),
}

impl DeviceKind {
    pub fn parse(text: &str) -> Result<DeviceKind, String> {
        match text {
            "usb" => Ok(DeviceKind::Usb),
            "virtual" => Ok(DeviceKind::Virtual),
            _ if text.starts_with("wled://") => Address::parse(text).map(DeviceKind::Wled),
            _ => Err(format!(
                "unknown device {text:?}: use usb, virtual or wled://HOST[:PORT]"
            )),
        }
    }
}

/// Which sticks and how to drive them; shared by every command that shows LEDs.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// `usb` for lights on USB (BlinkStick, blink(1), Luxafor Flag), `virtual` to
    /// draw the LEDs in the terminal, `wled://HOST[:PORT]` for a WLED controller.
    #[arg(long, value_parser = DeviceKind::parse, default_value = "usb", env = "PODLIGHT_DEVICE")]
    pub device: DeviceKind,
    /// Lights by serial (a Luxafor Flag by its /dev/hidrawN, a WLED controller by
    /// its MAC), in strip order (repeat or comma-separate); default: the first found.
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

#[derive(Args)]
pub struct EngineArgs {
    /// Run plugins on the Pulley interpreter instead of native code.
    #[arg(long)]
    pub(super) pulley: bool,
    /// Keep compiled plugins here so an unchanged plugin is not compiled again.
    #[arg(long, env = "PODLIGHT_CACHE_DIR")]
    pub(super) cache_dir: Option<PathBuf>,
    /// Deadline of one evaluation, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub(super) deadline_ms: u64,
    /// Memory a plugin may use, in MiB.
    #[arg(long, default_value_t = 32)]
    pub(super) memory_mib: usize,
    /// Largest plugin accepted, in MiB, before and after decompression (a Python
    /// policy is about 18 MiB).
    #[arg(long, default_value_t = 32)]
    pub(super) max_plugin_mib: usize,
    /// Memory one plugin's compile may use, in MiB (it runs in a child process).
    #[arg(long, default_value_t = CompileBudget::default().memory >> 20, env = "PODLIGHT_COMPILE_MEMORY_MIB")]
    pub(super) compile_memory_mib: usize,
    /// CPU time one plugin's compile may use, in seconds (twice that in wall time).
    #[arg(long, default_value_t = CompileBudget::default().cpu.as_secs(), env = "PODLIGHT_COMPILE_CPU_SECONDS")]
    pub(super) compile_cpu_seconds: u64,
}

impl EngineArgs {
    /// Largest plugin accepted, in bytes.
    pub fn max_plugin_bytes(&self) -> usize {
        self.max_plugin_mib << 20
    }

    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// The engine these flags describe; the compiling child is `program`.
    pub fn options(&self, program: PathBuf) -> EngineOptions {
        EngineOptions {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_limit: self.memory_mib << 20,
            max_plugin_size: self.max_plugin_mib << 20,
            cache_dir: self.cache_dir.clone(),
            backend: if self.pulley {
                Backend::Pulley
            } else {
                Backend::native()
            },
            cross_target: None,
            parallel_compilation: true,
            compiler: Compiler::Child(ChildCompiler {
                program,
                budget: CompileBudget {
                    memory: self.compile_memory_mib << 20,
                    cpu: Duration::from_secs(self.compile_cpu_seconds),
                    wall: Duration::from_secs(self.compile_cpu_seconds.saturating_mul(2)),
                },
            }),
        }
    }
}

/// How to reach OCI registries; shared by the agent and `podlight plugin push|pull`.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Registry credentials as Docker config JSON: a kubernetes.io/dockerconfigjson
    /// Secret's `.dockerconfigjson`, mounted, or ~/.docker/config.json.
    #[arg(long, env = "PODLIGHT_REGISTRY_AUTH")]
    pub(super) registry_auth: Option<PathBuf>,
    /// Registries (host[:port]) spoken to over plain HTTP instead of HTTPS.
    #[arg(
        long = "insecure-registry",
        value_delimiter = ',',
        env = "PODLIGHT_INSECURE_REGISTRIES"
    )]
    pub(super) insecure: Vec<String>,
    /// PEM CA certificates to trust for registries, besides the system's.
    #[arg(
        long = "registry-ca",
        value_delimiter = ',',
        env = "PODLIGHT_REGISTRY_CA"
    )]
    pub(super) ca: Vec<PathBuf>,
}

/// Where the agent reads alerts: Alertmanager's API v2.
#[derive(Args, Debug, Clone)]
pub struct AlertArgs {
    /// Alertmanager's URL (e.g. http://alertmanager-operated.monitoring:9093): its
    /// active alerts about the node become the policy's `alerts()`.
    #[arg(long, env = "PODLIGHT_ALERTMANAGER")]
    pub(super) alertmanager: Option<String>,
    /// The alert label that names the node (`node`, `instance` — `host:port` is read
    /// as `host` — `kubernetes_node`, …).
    #[arg(long, default_value = "node", env = "PODLIGHT_ALERTMANAGER_NODE_LABEL")]
    pub(super) alertmanager_node_label: String,
    /// Seconds between polls (each spread by up to a tenth).
    #[arg(
        long,
        default_value_t = 15,
        env = "PODLIGHT_ALERTMANAGER_INTERVAL_SECONDS"
    )]
    pub(super) alertmanager_interval_seconds: u64,
    /// PEM CA certificates to trust for Alertmanager, besides the built-in roots.
    #[arg(
        long = "alertmanager-ca",
        value_delimiter = ',',
        env = "PODLIGHT_ALERTMANAGER_CA"
    )]
    pub(super) alertmanager_ca: Vec<PathBuf>,
    /// A bearer token file sent to Alertmanager (read before every poll: a projected
    /// ServiceAccount token rotates).
    #[arg(
        long,
        env = "PODLIGHT_ALERTMANAGER_TOKEN_FILE",
        conflicts_with = "alertmanager_basic_auth_file"
    )]
    pub(super) alertmanager_token_file: Option<PathBuf>,
    /// A file holding `user:password` for HTTP Basic authentication to Alertmanager.
    #[arg(long, env = "PODLIGHT_ALERTMANAGER_BASIC_AUTH_FILE")]
    pub(super) alertmanager_basic_auth_file: Option<PathBuf>,
}

/// How a one-shot command shows its frame.
#[derive(Args, Debug, Clone, Copy)]
pub struct ShowArgs {
    /// Keep showing the frame until SIGTERM or Ctrl-C, re-sending it when a stick is
    /// replugged.
    #[arg(long)]
    pub hold: bool,
}
