//! A real control plane for tests: etcd and kube-apiserver (built by
//! scripts/build-control-plane) on free loopback ports, RBAC on, token auth, an admin
//! kubeconfig, and credentials for other identities. Dropping it stops both
//! processes and removes its directory; the processes also die with the test process.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

const ADMIN_TOKEN: &str = "podlight-test-admin-token";

/// Where scripts/build-control-plane leaves the binaries.
pub fn bin_dir() -> PathBuf {
    let cache = std::env::var_os("PODLIGHT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/podlight")
        });
    cache.join("bin")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One of those binaries, or a panic that says how to build it.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-test and scripts/build-control-plane (scripts/test runs both)",
        path.display()
    );
    path
}

/// Starts a child, its output in `log`, that is killed if the test process dies.
pub(crate) fn spawn(mut command: Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill this child
    // when its parent (the test process) exits.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
}

fn stop(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

pub struct ControlPlane {
    dir: tempfile::TempDir,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    pub etcd_port: u16,
    pub port: u16,
    pub kubeconfig: PathBuf,
}

impl ControlPlane {
    pub async fn start() -> ControlPlane {
        let dir = tempfile::Builder::new()
            .prefix("podlight-cp-")
            .tempdir()
            .expect("temp dir");
        let etcd_port = free_port();
        let peer_port = free_port();
        let mut etcd = Command::new(binary("etcd"));
        etcd.args(["--name", "default", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=default=http://127.0.0.1:{peer_port}"
            ))
            .args(["--unsafe-no-fsync", "--log-level=error"]);
        let etcd = spawn(etcd, &dir.path().join("etcd.log"));

        let key = dir.path().join("sa.key");
        let openssl = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .expect("openssl runs");
        assert!(
            openssl.status.success(),
            "openssl genrsa: {}",
            String::from_utf8_lossy(&openssl.stderr)
        );
        std::fs::write(
            dir.path().join("tokens.csv"),
            format!("{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n"),
        )
        .expect("token file");

        let port = free_port();
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let mut plane = ControlPlane {
            dir,
            etcd: Some(etcd),
            apiserver: None,
            etcd_port,
            port,
            kubeconfig,
        };
        plane.write_kubeconfig(&plane.kubeconfig.clone(), "admin", ADMIN_TOKEN);
        plane.start_apiserver().await;
        plane
    }

    /// A copy of the admin kubeconfig that reaches the API server through `port`
    /// (a [`counting_proxy`](crate::counting_proxy::counting_proxy)).
    pub fn kubeconfig_via(&self, port: u16, name: &str) -> PathBuf {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let path = self.dir().join(name);
        std::fs::write(
            &path,
            text.replace(
                &format!("127.0.0.1:{}", self.port),
                &format!("127.0.0.1:{port}"),
            ),
        )
        .expect("write");
        path
    }

    /// The API server's process id (for its memory and CPU in benchmarks).
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.as_ref().map(Child::id)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// (Re)starts the API server on its port and waits until it is ready.
    pub async fn start_apiserver(&mut self) {
        assert!(self.apiserver.is_none(), "already running");
        let child = self.spawn_apiserver(self.port, "apiserver.log", &[]);
        self.apiserver = Some(child);
        self.wait_ready(self.port, "apiserver.log").await;
    }

    pub fn stop_apiserver(&mut self) {
        stop(&mut self.apiserver);
    }

    /// A second API server on the same etcd, for changing the cluster while the
    /// first is down. Stops when the returned guard drops.
    pub async fn second_apiserver(&self) -> (ApiServerGuard, kube::Client) {
        self.second_apiserver_with(&[]).await
    }

    /// A second API server on the same etcd with these extra flags (e.g.
    /// `--feature-gates=WatchList=false`), and its kubeconfig beside the first's
    /// (`second.kubeconfig` in [`ControlPlane::dir`]).
    pub async fn second_apiserver_with(&self, flags: &[&str]) -> (ApiServerGuard, kube::Client) {
        let port = free_port();
        let child = self.spawn_apiserver(port, "apiserver-2.log", flags);
        let guard = ApiServerGuard(Some(child));
        self.wait_ready(port, "apiserver-2.log").await;
        let path = self.dir.path().join("second.kubeconfig");
        self.write_kubeconfig_on(&path, port, "admin", ADMIN_TOKEN);
        (guard, client_from(&path).await)
    }

    /// The real kube-controller-manager running only `controllers` (e.g.
    /// `daemonset`: it creates a DaemonSet's pods and keeps its status), as the admin,
    /// until the guard is dropped.
    pub fn start_controllers(&self, controllers: &str) -> ApiServerGuard {
        let mut manager = Command::new(binary("kube-controller-manager"));
        manager
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg(format!("--controllers={controllers}"))
            .args([
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--secure-port=0",
                "--v=1",
            ]);
        ApiServerGuard(Some(spawn(
            manager,
            &self.dir.path().join("controller-manager.log"),
        )))
    }

    fn spawn_apiserver(&self, port: u16, log: &str, flags: &[&str]) -> Child {
        let d = self.dir.path();
        let mut apiserver = Command::new(binary("kube-apiserver"));
        apiserver
            .arg(format!(
                "--etcd-servers=http://127.0.0.1:{}",
                self.etcd_port
            ))
            .arg(format!(
                "--cert-dir={}",
                d.join(format!("certs-{port}")).display()
            ))
            .arg(format!("--secure-port={port}"))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .args([
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
            ])
            .arg(format!(
                "--token-auth-file={}",
                d.join("tokens.csv").display()
            ))
            .args([
                "--service-account-issuer=https://kubernetes.default.svc",
                "--api-audiences=https://kubernetes.default.svc",
            ])
            .arg(format!(
                "--service-account-key-file={}",
                d.join("sa.key").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                d.join("sa.key").display()
            ))
            .args([
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
            ])
            .args(flags);
        spawn(apiserver, &d.join(log))
    }

    async fn wait_ready(&self, port: u16, log: &str) {
        let path = self.dir.path().join(format!("probe-{port}.kubeconfig"));
        self.write_kubeconfig_on(&path, port, "admin", ADMIN_TOKEN);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(client) = try_client(&path).await {
                let request = http::Request::get("/readyz")
                    .body(Vec::new())
                    .expect("request");
                if client
                    .request_text(request)
                    .await
                    .is_ok_and(|body| body.trim() == "ok")
                {
                    return;
                }
            }
            if Instant::now() > deadline {
                let text = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                panic!(
                    "kube-apiserver on port {port} not ready in 60 s; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn write_kubeconfig(&self, path: &Path, user: &str, token: &str) {
        self.write_kubeconfig_on(path, self.port, user, token);
    }

    fn write_kubeconfig_on(&self, path: &Path, port: u16, user: &str, token: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: {user}\ncurrent-context: test\n"
        );
        std::fs::write(path, text).expect("kubeconfig");
    }

    /// A client as the cluster admin.
    pub async fn client(&self) -> kube::Client {
        client_from(&self.kubeconfig).await
    }

    /// Creates a namespace (idempotent).
    pub async fn namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client().await);
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
            .expect("namespace");
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create namespace {name}: {e}"),
        }
    }

    /// A kubeconfig for ServiceAccount `namespace/name` (created if missing), with a
    /// token minted by the API server's TokenRequest.
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        self.namespace(namespace).await;
        let client = self.client().await;
        let accounts: Api<ServiceAccount> = Api::namespaced(client, namespace);
        let sa: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                .expect("service account");
        match accounts.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create service account: {e}"),
        }
        let request: TokenRequest = serde_json::from_value(serde_json::json!({
            "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}
        }))
        .expect("token request");
        let token = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .expect("token request")
            .status
            .expect("token status")
            .token;
        let path = self
            .dir
            .path()
            .join(format!("sa-{namespace}-{name}.kubeconfig"));
        self.write_kubeconfig(
            &path,
            &format!("system:serviceaccount:{namespace}:{name}"),
            &token,
        );
        path
    }

    /// Compacts etcd's history up to now, so any watch resuming from an older
    /// resource version gets 410 Gone and must relist.
    pub fn compact_etcd(&self) {
        let range = self.etcd_post("/v3/kv/range", r#"{"key":"AA=="}"#);
        let revision = range["header"]["revision"]
            .as_str()
            .expect("etcd revision")
            .to_string();
        self.etcd_post(
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        );
    }

    /// A JSON request to etcd's HTTP gateway.
    fn etcd_post(&self, path: &str, body: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.etcd_port)).expect("etcd reachable");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write to etcd");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read from etcd");
        let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "etcd {path}: {head}");
        serde_json::from_str(body.trim())
            .unwrap_or_else(|e| panic!("etcd {path} answered {body:?}: {e}"))
    }

    /// Runs the real kubectl against this control plane as admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(binary("kubectl"))
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .output()
            .expect("kubectl runs")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        stop(&mut self.apiserver);
        stop(&mut self.etcd);
    }
}

/// Stops a second API server when dropped.
/// A control-plane process (a second API server, a controller manager) that stops
/// when dropped.
pub struct ApiServerGuard(Option<Child>);

impl Drop for ApiServerGuard {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

async fn try_client(path: &Path) -> Result<kube::Client, String> {
    let file = Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

pub async fn client_from(path: &Path) -> kube::Client {
    try_client(path)
        .await
        .unwrap_or_else(|e| panic!("client from {}: {e}", path.display()))
}
