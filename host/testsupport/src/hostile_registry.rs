//! A registry that misbehaves on purpose, on a loopback port: what a remote party can
//! do to an agent that pulls from it. The repository's first path segment picks the
//! behaviour (`oci://127.0.0.1:PORT/BEHAVIOUR/policy:v1`):
//!
//! - `slow-manifest`: the manifest, one byte every 2 s;
//! - `slow-layer`: a correct manifest, then the layer one byte every 2 s;
//! - `noisy`: 500 with a 5 MB body of terminal escapes and newlines;
//! - `huge-manifest`: a manifest that is a JSON string never ending (512 MB);
//! - `huge-error`: 500 with a 512 MB body;
//! - `huge-token`: asks for a bearer token, whose service answers 512 MB;
//! - `lying-layer`: a manifest declaring a 1,000-byte layer, then 512 MB of it;
//! - `good`: serves the component it was given, correctly;
//! - `hostile-referrers`: `good`, and a referrers index (precompiled artifacts) whose
//!   entries name digests with path segments and escapes, and a million entries.
//!
//! It answers as a hostile Alertmanager too, at `http://127.0.0.1:PORT/BEHAVIOUR`
//! (`GET /BEHAVIOUR/api/v2/alerts`):
//!
//! - `huge-alerts`: a JSON array of 512 MB;
//! - `slow-alerts`: a correct answer, one byte every 2 s;
//! - `escaped-alerts`: a correct answer whose labels and summary hold terminal
//!   escapes, newlines, bidi controls and 100 KB values, about node `n1`.
//!
//! Large bodies are generated as they are written, never held; every connection ends
//! when its body is written, the client goes away, or the server is dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub struct HostileRegistry {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

/// What the server knows of the component it serves as a layer.
struct Served {
    component: Vec<u8>,
    config: Vec<u8>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

const HUGE: usize = 512 << 20;

impl HostileRegistry {
    /// Serves `component` as the layer of `good` and `slow-layer`.
    pub fn start(component: Vec<u8>) -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Served {
            component,
            config: br#"{"architecture":"wasm","os":"wasip2"}"#.to_vec(),
        });
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let served = Arc::clone(&served);
                        let stopping = Arc::clone(&stopping);
                        std::thread::spawn(move || {
                            let _ = serve(stream, &served, &stopping, port);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        HostileRegistry { port, stop }
    }

    /// `oci://127.0.0.1:PORT/BEHAVIOUR/policy:v1`.
    pub fn reference(&self, behaviour: &str) -> String {
        format!("oci://127.0.0.1:{}/{behaviour}/policy:v1", self.port)
    }

    /// `127.0.0.1:PORT`, as `--insecure-registry` names it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn manifest(served: &Served, layer_size: usize) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json",
                   "digest": digest(&served.config), "size": served.config.len()},
        "layers": [{"mediaType": "application/wasm",
                    "digest": digest(&served.component), "size": layer_size}],
    })
    .to_string()
    .into_bytes()
}

fn serve(
    stream: TcpStream,
    served: &Served,
    stopping: &AtomicBool,
    port: u16,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorized = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        authorized |= header.to_ascii_lowercase().starts_with("authorization:");
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut out = stream;
    let behaviour = path
        .strip_prefix("/v2/")
        .and_then(|p| p.split('/').next())
        .unwrap_or("");
    let is_manifest = path.contains("/manifests/");
    let head = |out: &mut TcpStream, status: &str, length: Option<usize>, extra: &str| {
        let length = length.map_or(String::new(), |n| format!("Content-Length: {n}\r\n"));
        write!(
            out,
            "HTTP/1.1 {status}\r\n{length}Connection: close\r\n{extra}\r\n"
        )
    };
    if let Some(behaviour) = path
        .split("/api/v2/alerts")
        .next()
        .filter(|_| path.contains("/api/v2/alerts"))
    {
        return alertmanager(&mut out, behaviour.trim_start_matches('/'), stopping);
    }
    if path.starts_with("/token") {
        head(
            &mut out,
            "200 OK",
            Some(HUGE),
            "Content-Type: application/json\r\n",
        )?;
        out.write_all(b"{\"token\": \"")?;
        return stream_filler(&mut out, HUGE - 11, b"t", stopping);
    }
    let is_referrers = path.contains("/manifests/sha256-");
    match (behaviour, is_manifest) {
        ("hostile-referrers", true) if is_referrers => {
            let steering = serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.podlight.precompiled.v1",
                "digest": "sha256:../../../v2/elsewhere/blobs/x?\u{1b}[2J",
                "size": 1,
                "annotations": {
                    "dev.podlight.precompiled.target": "x86_64",
                    "dev.podlight.precompiled.wasmtime": "48.0.8",
                },
            });
            let filler = serde_json::json!({
                "mediaType": "x", "digest": "sha256:0", "size": 0,
                "annotations": {"dev.podlight.precompiled.target": "\u{1b}[31mforged"},
            })
            .to_string();
            let mut body = format!("{{\"schemaVersion\": 2, \"manifests\": [{steering}");
            // About 100 bytes each, under the 4 MiB manifest limit.
            for _ in 0..30_000 {
                body.push(',');
                body.push_str(&filler);
            }
            body.push_str("]}");
            head(&mut out, "200 OK", Some(body.len()), "")?;
            out.write_all(body.as_bytes())
        }
        ("hostile-referrers", true) => {
            let body = manifest(served, served.component.len());
            head(&mut out, "200 OK", Some(body.len()), "")?;
            out.write_all(&body)
        }
        ("hostile-referrers", false) => {
            head(&mut out, "200 OK", Some(served.component.len()), "")?;
            out.write_all(&served.component)
        }
        ("slow-manifest", true) => {
            let body = manifest(served, served.component.len());
            head(&mut out, "200 OK", Some(body.len()), "")?;
            trickle(&mut out, &body, stopping)
        }
        ("slow-layer" | "good", true) => {
            let body = manifest(served, served.component.len());
            head(&mut out, "200 OK", Some(body.len()), "")?;
            out.write_all(&body)
        }
        ("slow-layer", false) => {
            head(&mut out, "200 OK", Some(served.component.len()), "")?;
            trickle(&mut out, &served.component, stopping)
        }
        ("good", false) => {
            head(&mut out, "200 OK", Some(served.component.len()), "")?;
            out.write_all(&served.component)
        }
        ("noisy", _) => {
            let body =
                "\x1b[2J\x1b[H\x1b[31mFATAL\r\nforged: level=ERROR msg=\"owned\"\n".repeat(100_000);
            head(&mut out, "500 Internal Server Error", Some(body.len()), "")?;
            out.write_all(body.as_bytes())
        }
        ("huge-manifest", true) => {
            head(&mut out, "200 OK", Some(HUGE), "")?;
            out.write_all(b"{\"schemaVersion\": \"")?;
            stream_filler(&mut out, HUGE - 19, b"m", stopping)
        }
        ("huge-error", _) => {
            head(&mut out, "500 Internal Server Error", Some(HUGE), "")?;
            stream_filler(&mut out, HUGE, b"\x1b[2J", stopping)
        }
        ("huge-token", _) if !authorized => {
            let challenge = format!(
                "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"hostile\"\r\n"
            );
            head(&mut out, "401 Unauthorized", Some(0), &challenge)
        }
        ("lying-layer", true) => {
            let body = manifest(served, 1_000);
            head(&mut out, "200 OK", Some(body.len()), "")?;
            out.write_all(&body)
        }
        ("lying-layer", false) => {
            // No length: the body runs until the connection closes.
            head(&mut out, "200 OK", None, "")?;
            stream_filler(&mut out, HUGE, b"w", stopping)
        }
        _ => head(&mut out, "404 Not Found", Some(0), ""),
    }
}

/// The hostile Alertmanager's answers.
fn alertmanager(
    out: &mut TcpStream,
    behaviour: &str,
    stopping: &AtomicBool,
) -> std::io::Result<()> {
    let escaped = serde_json::json!([{
        "labels": {
            "alertname": "\u{1b}[2J\u{1b}[HDiskFull\nforged: level=ERROR",
            "severity": "critical\u{202e}",
            "node": "n1",
            "huge": "v".repeat(100_000),
        },
        "annotations": {"summary": format!("\u{1b}[31m{}", "s".repeat(100_000))},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2999-01-01T00:00:00Z",
        "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
    }])
    .to_string()
    .into_bytes();
    let head = |out: &mut TcpStream, length: usize| {
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        )
    };
    match behaviour {
        "huge-alerts" => {
            head(out, HUGE)?;
            out.write_all(b"[")?;
            stream_filler(out, HUGE - 1, b"{\"labels\":{}},", stopping)
        }
        "slow-alerts" => {
            head(out, escaped.len())?;
            trickle(out, &escaped, stopping)
        }
        "escaped-alerts" => {
            head(out, escaped.len())?;
            out.write_all(&escaped)
        }
        _ => write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    }
}

/// `body`, one byte every 2 s, until done, the client leaves or the server stops.
fn trickle(out: &mut TcpStream, body: &[u8], stopping: &AtomicBool) -> std::io::Result<()> {
    for byte in body {
        if stopping.load(Ordering::Relaxed) {
            return Ok(());
        }
        out.write_all(std::slice::from_ref(byte))?;
        out.flush()?;
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok(())
}

/// `total` bytes of `pattern` repeated, written in 64 KiB pieces.
fn stream_filler(
    out: &mut TcpStream,
    total: usize,
    pattern: &[u8],
    stopping: &AtomicBool,
) -> std::io::Result<()> {
    let piece: Vec<u8> = pattern.iter().copied().cycle().take(64 << 10).collect();
    let mut written = 0;
    while written < total && !stopping.load(Ordering::Relaxed) {
        let n = piece.len().min(total - written);
        out.write_all(&piece[..n])?;
        written += n;
    }
    Ok(())
}
