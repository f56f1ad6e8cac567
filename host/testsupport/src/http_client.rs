//! A minimal HTTP/1.1 GET for tests of podlight's own server on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// (status code, body); none if the server does not answer.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    get_from("127.0.0.1", port, path)
}

/// [`get`] from another address (a pod IP on a test bridge).
pub fn get_from(host: &str, port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect((host, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
