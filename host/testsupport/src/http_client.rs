//! A minimal HTTP/1.1 client for tests of servers on loopback (podlight's own,
//! Alertmanager's API).

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// (status code, body); none if the server does not answer.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    get_from("127.0.0.1", port, path)
}

/// [`get`] from another address (a pod IP on a test bridge).
pub fn get_from(host: &str, port: u16, path: &str) -> Option<(u16, String)> {
    exchange(
        host,
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
}

/// Writes `request` and reads the answer to the end: (status code, body).
fn exchange(host: &str, port: u16, request: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect((host, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The LEDs an agent on `port` shows, as `#rrggbb` (its `/api/state`); empty when
/// it does not answer.
pub fn agent_leds(port: u16) -> Vec<String> {
    get(port, "/api/state")
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|state| {
            state["leds"].as_array().map(|l| {
                l.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Waits until every LED of the agent on `port` shows `colour`; how long it took.
/// Panics with `what` and what it shows after `limit`.
pub fn wait_for_leds(port: u16, what: &str, colour: &str, limit: Duration) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let now = agent_leds(port);
        if !now.is_empty() && now.iter().all(|c| c == colour) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{what}: still {now:?} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `METHOD path` with a JSON body (empty: none) to `127.0.0.1:port`: (status code,
/// body); none if the server does not answer. HTTP/1.0, so the answer is never
/// chunked.
pub fn send(port: u16, method: &str, path: &str, json: &str) -> Option<(u16, String)> {
    exchange(
        "127.0.0.1",
        port,
        &format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        ),
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
