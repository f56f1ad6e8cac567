//! A plugin's stdout and stderr: each complete line goes to the host log, tagged with
//! the plugin's name, at most [`LINES_PER_WINDOW`] lines per [`WINDOW`] per plugin.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::untrusted::sanitize_bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

const LINES_PER_WINDOW: u32 = 20;
const WINDOW: Duration = Duration::from_secs(10);
/// Longer lines are cut, so a plugin cannot make the host buffer without bound.
const MAX_LINE: usize = 512;

/// Shared by a plugin's stdout and stderr (and every instance of the plugin).
#[derive(Debug)]
struct Limiter {
    window_start: Instant,
    logged: u32,
    suppressed: u32,
}

/// Where a plugin's output goes. Cheap to clone: clones share the line limit.
#[derive(Debug, Clone)]
pub struct PluginOutput {
    plugin: Arc<str>,
    stream: &'static str,
    limiter: Arc<Mutex<Limiter>>,
    line: Arc<Mutex<Vec<u8>>>,
}

impl PluginOutput {
    /// A pair (stdout, stderr) for one plugin.
    pub fn pair(plugin: &str) -> (PluginOutput, PluginOutput) {
        let limiter = Arc::new(Mutex::new(Limiter {
            window_start: Instant::now(),
            logged: 0,
            suppressed: 0,
        }));
        let make = |stream| PluginOutput {
            plugin: Arc::from(plugin),
            stream,
            limiter: limiter.clone(),
            line: Arc::default(),
        };
        (make("stdout"), make("stderr"))
    }

    fn accept(&self, bytes: &[u8]) {
        let Ok(mut line) = self.line.lock() else {
            return;
        };
        for &byte in bytes {
            if byte == b'\n' {
                self.emit(&line);
                line.clear();
            } else if line.len() < MAX_LINE {
                line.push(byte);
            }
        }
    }

    fn emit(&self, line: &[u8]) {
        let Ok(mut limiter) = self.limiter.lock() else {
            return;
        };
        if limiter.window_start.elapsed() >= WINDOW {
            if limiter.suppressed > 0 {
                tracing::warn!(plugin = %self.plugin, suppressed = limiter.suppressed, "plugin output lines dropped by the rate limit");
            }
            *limiter = Limiter {
                window_start: Instant::now(),
                logged: 0,
                suppressed: 0,
            };
        }
        if limiter.logged >= LINES_PER_WINDOW {
            limiter.suppressed += 1;
            return;
        }
        limiter.logged += 1;
        let text = sanitize_bytes(line, MAX_LINE);
        tracing::info!(plugin = %self.plugin, stream = self.stream, "{text}");
    }
}

impl IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for PluginOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for PluginOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for PluginOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
