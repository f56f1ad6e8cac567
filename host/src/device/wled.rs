//! WLED controllers over the network (`--device wled://HOST[:PORT]`), from WLED's
//! own documentation (kno.wled.ge: "UDP Realtime", "JSON API").
//!
//! - **Finding one**: `GET /json/info` on its HTTP port answers its LED count
//!   (`leds.count`), name, version, MAC address and realtime UDP port (`udpport`,
//!   21324 unless changed).
//! - **Frames** go by WLED's UDP realtime protocol **DNRGB** (byte 0 = 4): byte 1 is
//!   how many seconds WLED waits after the last datagram before it returns to its
//!   own effect, bytes 2–3 the index of the first LED (big-endian), then R, G, B per
//!   LED, up to 489 LEDs per datagram. Chosen over DDP because the return-to-normal
//!   timeout travels in every datagram — podlight decides how long a frame outlives
//!   the agent, not a setting on the controller — and over DRGB/WARLS because the
//!   start index lets a strip longer than one datagram take a frame in several.
//! - **Holding a frame**: the frame is sent again every [`KEEPALIVE`] while nothing
//!   changes; if podlight stops, the strip returns to its own effect
//!   [`TIMEOUT_SECONDS`] later instead of freezing on a stale frame.
//!
//! Everything a controller says is untrusted: answers are bounded in size and time,
//! counts checked, text sanitised.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use super::DeviceError;
use super::family::Family;
use super::transport::{Bus, DeviceInfo, Transport};
use crate::frame::Rgb;
use crate::policy::untrusted::sanitize;

pub const DEFAULT_HTTP_PORT: u16 = 80;
pub const DEFAULT_UDP_PORT: u16 = 21324;
/// DNRGB's protocol byte.
pub const PROTOCOL_DNRGB: u8 = 4;
/// LEDs one DNRGB datagram carries at most.
pub const LEDS_PER_DATAGRAM: usize = 489;
/// Seconds WLED keeps the last frame after the last datagram.
pub const TIMEOUT_SECONDS: u8 = 2;
/// How often an unchanged frame is sent again: well inside the timeout, so one lost
/// datagram does not drop the frame.
pub const KEEPALIVE: Duration = Duration::from_millis(750);
/// Frames closer than this are not sent: WLED renders at most ~50 frames per second.
pub const MIN_FRAME_INTERVAL: Duration = Duration::from_millis(20);
/// The most LEDs podlight drives on one controller (WLED's own limit on an ESP32 is
/// lower); a controller claiming more is not believed.
pub const MAX_LEDS: usize = 8192;
/// Deadline for one JSON API call, connect to last byte.
pub const HTTP_DEADLINE: Duration = Duration::from_millis(1500);
/// The largest `/json/info` answer read (a real one is 1–2 KB).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How often a connected controller is asked again whether it is there: UDP says
/// nothing when a controller is gone without a trace (powered off, Wi-Fi lost).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Longest controller text kept (name, version).
pub const MAX_TEXT: usize = 64;

/// How a WLED strip is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    pub led_count: usize,
}

impl Layout {
    /// DNRGB datagrams for a frame, each up to [`LEDS_PER_DATAGRAM`] LEDs.
    pub fn frame_datagrams(&self, leds: &[Rgb]) -> Vec<Vec<u8>> {
        (0..self.led_count)
            .step_by(LEDS_PER_DATAGRAM)
            .map(|start| {
                let end = (start + LEDS_PER_DATAGRAM).min(self.led_count);
                let index = u16::try_from(start).unwrap_or(u16::MAX).to_be_bytes();
                let mut datagram = Vec::with_capacity(4 + 3 * (end - start));
                datagram.extend_from_slice(&[PROTOCOL_DNRGB, TIMEOUT_SECONDS, index[0], index[1]]);
                for i in start..end {
                    let c = leds.get(i).copied().unwrap_or(Rgb::OFF);
                    datagram.extend_from_slice(&[c.r, c.g, c.b]);
                }
                datagram
            })
            .collect()
    }
}

/// Where a controller is: `wled://HOST[:PORT]` (the HTTP port; 80 by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl Address {
    pub fn parse(text: &str) -> Result<Address, String> {
        let rest = text
            .strip_prefix("wled://")
            .ok_or_else(|| format!("{text:?} is not a WLED address: use wled://HOST[:PORT]"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: an IPv6 address needs its closing ]"))?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "{text:?}: no host name or address: use wled://HOST[:PORT]"
            ));
        }
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| format!("{text:?}: the port must be a number from 1 to 65535"))?,
            None => DEFAULT_HTTP_PORT,
        };
        Ok(Address {
            host: host.to_string(),
            port,
        })
    }

    fn socket_address(&self, port: u16) -> Result<SocketAddr, WledError> {
        (self.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|source| WledError::Resolve {
                host: self.host.clone(),
                source: source.into(),
            })?
            .next()
            .ok_or_else(|| WledError::Resolve {
                host: self.host.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound).into(),
            })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "wled://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "wled://{}:{}", self.host, self.port)
        }
    }
}

/// What a controller says about itself in `/json/info`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub led_count: usize,
    pub name: String,
    pub version: String,
    /// Its MAC address: the identity that survives a new IP address.
    pub mac: String,
    pub udp_port: u16,
}

/// Why a controller cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WledError {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: SharedIo,
    },
    #[error("{address} did not answer: {source}")]
    Unreachable {
        address: String,
        #[source]
        source: SharedIo,
    },
    #[error("{address} did not answer within {seconds:.1} s")]
    TooSlow { address: String, seconds: f64 },
    #[error("{address} answered HTTP {status} to /json/info; is it a WLED controller?")]
    Status { address: String, status: u16 },
    #[error("{address} answered something that is not WLED's /json/info: {reason}")]
    NotWled { address: String, reason: String },
}

/// Compared by message, as device errors are (they are cloned to every waiting caller).
impl PartialEq for WledError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for WledError {}

/// An I/O error shared between clones of a [`WledError`].
#[derive(Debug, Clone)]
pub struct SharedIo(pub std::sync::Arc<std::io::Error>);

impl From<std::io::Error> for SharedIo {
    fn from(e: std::io::Error) -> Self {
        SharedIo(std::sync::Arc::new(e))
    }
}

impl std::fmt::Display for SharedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedIo {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Parses and checks a `/json/info` body.
pub fn parse_info(body: &[u8], address: &Address) -> Result<Info, WledError> {
    let not_wled = |reason: String| WledError::NotWled {
        address: address.to_string(),
        reason,
    };
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| not_wled(sanitize(&format!("not JSON ({e})"), 200)))?;
    let count = json
        .pointer("/leds/count")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| not_wled("no LED count (leds.count)".into()))?;
    let led_count = usize::try_from(count)
        .ok()
        .filter(|n| (1..=MAX_LEDS).contains(n))
        .ok_or_else(|| {
            not_wled(format!(
                "it claims {count} LEDs (1 to {MAX_LEDS} are driven)"
            ))
        })?;
    let text = |key: &str| {
        json.get(key)
            .and_then(serde_json::Value::as_str)
            .map(|s| sanitize(s, MAX_TEXT))
            .unwrap_or_default()
    };
    let udp_port = match json.get("udpport").and_then(serde_json::Value::as_u64) {
        None => DEFAULT_UDP_PORT,
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| not_wled(format!("its realtime port {p} is not a port")))?,
    };
    Ok(Info {
        led_count,
        name: text("name"),
        version: text("ver"),
        mac: text("mac"),
        udp_port,
    })
}

/// `GET path` on the controller, the whole answer within [`HTTP_DEADLINE`] and
/// [`MAX_ANSWER_BYTES`]; the body of a 200.
fn http_get(address: &Address, path: &str, deadline: Duration) -> Result<Vec<u8>, WledError> {
    let started = Instant::now();
    let target = address.socket_address(address.port)?;
    let unreachable = |source: std::io::Error| {
        if matches!(
            source.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            WledError::TooSlow {
                address: address.to_string(),
                seconds: deadline.as_secs_f64(),
            }
        } else {
            WledError::Unreachable {
                address: address.to_string(),
                source: source.into(),
            }
        }
    };
    let mut stream = TcpStream::connect_timeout(&target, deadline).map_err(unreachable)?;
    let left = |started: Instant| {
        deadline
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| WledError::TooSlow {
                address: address.to_string(),
                seconds: deadline.as_secs_f64(),
            })
    };
    stream
        .set_write_timeout(Some(left(started)?))
        .map_err(unreachable)?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        address.host
    );
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        stream
            .set_read_timeout(Some(left(started)?))
            .map_err(unreachable)?;
        let n = stream.read(&mut buf).map_err(unreachable)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.len() > MAX_ANSWER_BYTES {
            return Err(WledError::NotWled {
                address: address.to_string(),
                reason: format!("its answer is larger than {MAX_ANSWER_BYTES} bytes"),
            });
        }
    }
    body_of(answer, address)
}

/// The body of a whole HTTP answer, if it is a 200: chunked bodies joined.
pub fn body_of(mut answer: Vec<u8>, address: &Address) -> Result<Vec<u8>, WledError> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| WledError::NotWled {
            address: address.to_string(),
            reason: "not an HTTP answer".into(),
        })?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| WledError::NotWled {
            address: address.to_string(),
            reason: "not an HTTP answer".into(),
        })?;
    if status != 200 {
        return Err(WledError::Status {
            address: address.to_string(),
            status,
        });
    }
    let body = answer.split_off(split + 4);
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .replace(' ', "")
            .starts_with("transfer-encoding:chunked")
    });
    if chunked {
        return dechunk(&body).ok_or_else(|| WledError::NotWled {
            address: address.to_string(),
            reason: "a broken chunked answer".into(),
        });
    }
    Ok(body)
}

/// The body of a chunked HTTP answer.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// Asks a controller what it is.
pub fn probe(address: &Address, deadline: Duration) -> Result<Info, WledError> {
    let body = http_get(address, "/json/info", deadline)?;
    parse_info(&body, address)
}

/// One controller at a fixed address, behind the same [`Bus`] as USB lights.
#[derive(Debug, Clone)]
pub struct WledBus {
    address: Address,
    deadline: Duration,
}

impl WledBus {
    pub fn new(address: Address) -> WledBus {
        WledBus {
            address,
            deadline: HTTP_DEADLINE,
        }
    }

    /// A shorter or longer deadline per JSON API call.
    pub fn with_deadline(mut self, deadline: Duration) -> WledBus {
        self.deadline = deadline;
        self
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    fn info(&self, info: &Info) -> DeviceInfo {
        DeviceInfo {
            family: Family::Wled,
            serial: if info.mac.is_empty() {
                self.address.to_string()
            } else {
                info.mac.clone()
            },
            release: 0,
            manufacturer: format!("WLED {}", info.version),
            product: info.name.clone(),
            path: self.address.to_string(),
            led_count: Some(info.led_count),
        }
    }
}

impl Bus for WledBus {
    fn list(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        let info = probe(&self.address, self.deadline).map_err(DeviceError::from)?;
        Ok(vec![self.info(&info)])
    }

    fn max_backoff(&self) -> Duration {
        Duration::from_secs(2)
    }

    fn open(&self, serial: &str) -> Result<Box<dyn Transport>, DeviceError> {
        let info = probe(&self.address, self.deadline)?;
        if self.info(&info).serial != serial {
            return Err(DeviceError::NotFound {
                serial: Some(serial.to_string()),
            });
        }
        let target = self.address.socket_address(info.udp_port)?;
        let local: SocketAddr = if target.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let io = |source: std::io::Error| {
            DeviceError::from(WledError::Unreachable {
                address: self.address.to_string(),
                source: source.into(),
            })
        };
        let socket = UdpSocket::bind(local).map_err(io)?;
        socket.connect(target).map_err(io)?;
        Ok(Box::new(WledTransport {
            bus: self.clone(),
            socket,
            serial: serial.to_string(),
            last_probe: Instant::now(),
        }))
    }
}

struct WledTransport {
    bus: WledBus,
    socket: UdpSocket,
    serial: String,
    last_probe: Instant,
}

impl WledTransport {
    fn gone(&self) -> DeviceError {
        DeviceError::Gone {
            serial: self.serial.clone(),
        }
    }
}

impl Transport for WledTransport {
    fn set_feature(&mut self, _report: &[u8]) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported {
            what: "feature reports",
            family: Family::Wled,
        })
    }

    fn get_feature(&mut self, _id: u8, _size: usize) -> Result<Vec<u8>, DeviceError> {
        Err(DeviceError::Unsupported {
            what: "reading back",
            family: Family::Wled,
        })
    }

    fn write(&mut self, datagram: &[u8]) -> Result<(), DeviceError> {
        // A refused datagram (ICMP port or host unreachable) shows up here or on the
        // next send: either way the controller is gone for now.
        match self.socket.send(datagram) {
            Ok(_) => Ok(()),
            Err(_) => Err(self.gone()),
        }
    }

    fn is_connected(&mut self) -> bool {
        if !matches!(self.socket.take_error(), Ok(None)) {
            return false;
        }
        if self.last_probe.elapsed() < PROBE_INTERVAL {
            return true;
        }
        self.last_probe = Instant::now();
        match probe(&self.bus.address, self.bus.deadline) {
            Ok(info) => self.bus.info(&info).serial == self.serial,
            Err(e) => {
                tracing::debug!(error = %e, "WLED controller did not answer its probe");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_and_without_port() {
        assert_eq!(
            Address::parse("wled://10.0.0.5"),
            Ok(Address {
                host: "10.0.0.5".into(),
                port: 80
            })
        );
        assert_eq!(
            Address::parse("wled://strip.local:8080/").map(|a| a.to_string()),
            Ok("wled://strip.local:8080".into())
        );
        assert_eq!(
            Address::parse("wled://[::1]:81").map(|a| a.to_string()),
            Ok("wled://[::1]:81".into())
        );
        for bad in [
            "http://x",
            "wled://",
            "wled://x:99999",
            "wled://a/b",
            "wled://[::1",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn frames_are_dnrgb_datagrams_split_at_489_leds() {
        let layout = Layout { led_count: 500 };
        let leds: Vec<Rgb> = (0..500).map(|i| Rgb::new((i % 256) as u8, 1, 2)).collect();
        let datagrams = layout.frame_datagrams(&leds);
        assert_eq!(datagrams.len(), 2);
        assert_eq!(&datagrams[0][..7], &[4, TIMEOUT_SECONDS, 0, 0, 0, 1, 2]);
        assert_eq!(datagrams[0].len(), 4 + 3 * 489);
        assert_eq!(
            &datagrams[1][..4],
            &[4, TIMEOUT_SECONDS, 0x01, 0xE9],
            "starts at 489"
        );
        assert_eq!(datagrams[1].len(), 4 + 3 * 11);
        let short = Layout { led_count: 3 }.frame_datagrams(&[Rgb::new(9, 9, 9)]);
        assert_eq!(
            short,
            vec![vec![4, TIMEOUT_SECONDS, 0, 0, 9, 9, 9, 0, 0, 0, 0, 0, 0]]
        );
    }

    #[test]
    fn info_is_checked_and_its_text_sanitised() {
        let address = Address::parse("wled://x").expect("address");
        let info = parse_info(
            br#"{"ver":"0.15.0","leds":{"count":60},"name":"Rack\u001b[2J","udpport":21324,"mac":"a8032a1b2c3d"}"#,
            &address,
        )
        .expect("info");
        assert_eq!(info.led_count, 60);
        assert!(!info.name.contains('\u{1b}'), "{}", info.name);
        assert_eq!(info.mac, "a8032a1b2c3d");
        for (body, says) in [
            (&br#"{"leds":{"count":0}}"#[..], "claims 0 LEDs"),
            (br#"{"leds":{"count":99999999}}"#, "claims 99999999"),
            (br#"{"leds":{}}"#, "no LED count"),
            (br#"<html>"#, "not JSON"),
            (br#"{"leds":{"count":5},"udpport":70000}"#, "not a port"),
        ] {
            let error = parse_info(body, &address).expect_err("refused").to_string();
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn chunked_answers_are_joined() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            Some(b"Wikipedia".to_vec())
        );
        assert_eq!(dechunk(b"ff\r\nshort"), None);
    }
}
