//! A real OCI registry for tests: CNCF distribution's `registry` (built by
//! scripts/build-control-plane) on a free loopback port, optionally with htpasswd
//! authentication, its storage and log in a temporary directory. It can be stopped and
//! started again on the same port and storage (a registry that goes down mid-swap).
//! Dropping it stops the process and removes the directory.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::control_plane::binary;
use crate::http_client::free_port;

pub struct Registry {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Registry {
    /// Starts a registry; with `user`, only that user (and `password`) may pull or push.
    pub fn start(user: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let auth = match user {
            Some((name, password)) => {
                let hash = bcrypt::hash(password, 4).expect("bcrypt");
                std::fs::write(dir.path().join("htpasswd"), format!("{name}:{hash}\n"))
                    .expect("htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: podlight-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                )
            }
            None => String::new(),
        };
        std::fs::write(
            dir.path().join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: podlight-test-secret\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .expect("config");
        let mut registry = Registry {
            dir,
            port,
            child: None,
        };
        registry.start_again();
        registry
    }

    /// `127.0.0.1:PORT`, as references and `--insecure-registry` name it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:PORT/PATH`.
    pub fn reference(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.host())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Requests served so far whose line in the access log contains `what`, e.g.
    /// `"GET /v2/"` or `/blobs/`.
    pub fn requests(&self, what: &str) -> usize {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("response completed") && l.contains(what))
            .count()
    }

    /// Starts the registry (again, after [`Registry::stop`]) and waits until it answers.
    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log");
        let mut command = Command::new(binary("registry"));
        command
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the registry dies with the test process.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(command.spawn().expect("the registry starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen: {}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the registry; its storage stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `podlight plugin push FILE oci://HERE/PATH` with the `podlight` binary given;
    /// the pinned reference it prints.
    pub fn push(&self, podlight: &Path, file: &Path, path: &str) -> String {
        let out = Command::new(podlight)
            .args(["plugin", "push"])
            .arg(file)
            .arg(self.reference(path))
            .args(["--insecure-registry", &self.host()])
            .output()
            .expect("podlight runs");
        assert!(
            out.status.success(),
            "push {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let pinned = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(pinned.contains("@sha256:"), "{pinned}");
        pinned
    }

    /// Where blobs are stored, to tamper with one.
    pub fn storage(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Docker config JSON with `user:password` for `registry`.
pub fn docker_config(registry: &str, user: &str, password: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    serde_json::json!({"auths": {registry: {"auth": auth}}}).to_string()
}
