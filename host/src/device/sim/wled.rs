//! A WLED controller on loopback, faithful to what podlight relies on (see
//! [`crate::device::wled`]): `GET /json/info` over HTTP, and the UDP realtime
//! protocols WARLS (1), DRGB (2) and DNRGB (4) on its realtime port, each datagram
//! holding the strip for the seconds its byte 1 says, after which it shows its own
//! effect again. LEDs past the strip's end are ignored, as WLED does. Behaviours a
//! real network shows can be switched on: a slow or silent controller, garbage
//! answers, a count that lies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::frame::Rgb;
use crate::lock::lock;

/// What the controller shows when no realtime stream holds it: its own effect.
pub const OWN_EFFECT: Rgb = Rgb::new(255, 160, 0);

/// How the emulated controller answers its JSON API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Answers after this long.
    Slow(Duration),
    /// Takes the connection and never answers.
    Silent,
    /// Answers 200 with something that is not JSON.
    Garbage,
    /// Answers an endless body.
    Endless,
    /// Claims this many LEDs (the strip keeps its real count).
    ClaimsLeds(u64),
}

#[derive(Debug)]
struct State {
    leds: Vec<Rgb>,
    /// Until when the realtime stream holds the strip; None: its own effect.
    live_until: Option<Instant>,
    datagrams: u64,
    behaviour: Behaviour,
    name: String,
}

/// A running emulated controller; stops when dropped.
pub struct WledEmulator {
    http: SocketAddr,
    udp: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Its two server threads while powered on.
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl WledEmulator {
    /// A controller with `led_count` LEDs on loopback ports of its own.
    pub fn start(led_count: usize) -> std::io::Result<WledEmulator> {
        let state = Arc::new(Mutex::new(State {
            leds: vec![Rgb::OFF; led_count],
            live_until: None,
            datagrams: 0,
            behaviour: Behaviour::Honest,
            name: "podlight-emulated".into(),
        }));
        let loopback: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
        let (http, udp, running) = serve(&state, loopback, loopback)?;
        Ok(WledEmulator {
            http,
            udp,
            state,
            running: Some(running),
        })
    }

    /// `wled://127.0.0.1:PORT`, what `--device` takes.
    pub fn address(&self) -> String {
        format!("wled://{}", self.http)
    }

    /// What the strip shows now: the realtime frame while the stream holds it, its
    /// own effect after.
    pub fn leds(&self) -> Vec<Rgb> {
        let state = lock(&self.state);
        if state.live_until.is_some_and(|until| Instant::now() < until) {
            state.leds.clone()
        } else {
            vec![OWN_EFFECT; state.leds.len()]
        }
    }

    /// Whether a realtime stream holds the strip now.
    pub fn live(&self) -> bool {
        lock(&self.state)
            .live_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// Realtime datagrams taken so far.
    pub fn datagrams(&self) -> u64 {
        lock(&self.state).datagrams
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        lock(&self.state).behaviour = behaviour;
    }

    /// Powers the controller off: both ports close (the network then refuses
    /// them, as a host does for a closed port).
    pub fn power_off(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.store(true, Ordering::Relaxed);
            for thread in running.threads {
                let _ = thread.join();
            }
        }
        lock(&self.state).live_until = None;
    }

    /// Powers it on again on the same ports, LEDs off, its own effect showing.
    pub fn power_on(&mut self) -> std::io::Result<()> {
        self.power_off();
        {
            let mut state = lock(&self.state);
            state.leds.iter_mut().for_each(|c| *c = Rgb::OFF);
        }
        let (_, _, running) = serve(&self.state, self.http, self.udp)?;
        self.running = Some(running);
        Ok(())
    }
}

impl Drop for WledEmulator {
    fn drop(&mut self) {
        self.power_off();
    }
}

/// Binds both ports and starts their threads.
fn serve(
    state: &Arc<Mutex<State>>,
    http: SocketAddr,
    udp: SocketAddr,
) -> std::io::Result<(SocketAddr, SocketAddr, Running)> {
    let listener = TcpListener::bind(http)?;
    listener.set_nonblocking(true)?;
    let socket = UdpSocket::bind(udp)?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let http = listener.local_addr()?;
    let udp = socket.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let threads = vec![
        {
            let (state, stop) = (Arc::clone(state), Arc::clone(&stop));
            std::thread::spawn(move || serve_http(&listener, &state, &stop, udp.port()))
        },
        {
            let (state, stop) = (Arc::clone(state), Arc::clone(&stop));
            std::thread::spawn(move || serve_realtime(&socket, &state, &stop))
        },
    ];
    Ok((http, udp, Running { stop, threads }))
}

fn serve_http(
    listener: &TcpListener,
    state: &Arc<Mutex<State>>,
    stop: &Arc<AtomicBool>,
    udp_port: u16,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            // One thread per connection, as a slow or silent answer must not hold up
            // the next caller; each ends within its own 10-second bound.
            Ok((stream, _)) => {
                let (state, stop) = (Arc::clone(state), Arc::clone(stop));
                std::thread::spawn(move || answer(stream, &state, &stop, udp_port));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn answer(mut stream: TcpStream, state: &Mutex<State>, stop: &AtomicBool, udp_port: u16) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let (behaviour, count, name) = {
        let state = lock(state);
        (
            state.behaviour.clone(),
            state.leds.len() as u64,
            state.name.clone(),
        )
    };
    let wants_info = request.starts_with(b"GET /json/info ");
    let info = |count: u64| {
        serde_json::json!({
            "ver": "0.15.0",
            "vid": 2412100,
            "leds": {"count": count, "rgbw": false, "fps": 42},
            "name": name,
            "udpport": udp_port,
            "live": false,
            "mac": "a8032a1b2c3d",
            "arch": "esp32",
        })
        .to_string()
    };
    let body = match (&behaviour, wants_info) {
        (_, false) => {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        (Behaviour::Silent, _) => {
            // Hold the connection until the caller gives up or the controller stops.
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        (Behaviour::Endless, _) => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n");
            let chunk = [b'x'; 4096];
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until && stream.write_all(&chunk).is_ok() {}
            return;
        }
        (Behaviour::Garbage, _) => "\u{1b}[2J<html>not json".to_string(),
        (Behaviour::ClaimsLeds(claimed), _) => info(*claimed),
        (Behaviour::Slow(delay), _) => {
            std::thread::sleep(*delay);
            info(count)
        }
        (Behaviour::Honest, _) => info(count),
    };
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

fn serve_realtime(socket: &UdpSocket, state: &Mutex<State>, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        apply(&buf[..n], &mut lock(state), Instant::now());
    }
}

/// One realtime datagram, as WLED reads it.
fn apply(datagram: &[u8], state: &mut State, now: Instant) {
    let Some(timeout) = apply_to_leds(datagram, &mut state.leds) else {
        return;
    };
    state.datagrams += 1;
    state.live_until = Some(if timeout == 255 {
        now + Duration::from_secs(365 * 24 * 3600)
    } else {
        now + Duration::from_secs(u64::from(timeout))
    });
}

/// Sets the LEDs one realtime datagram (WARLS, DRGB or DNRGB) carries, as WLED does:
/// LEDs past the strip's end are ignored. Its timeout byte, or None for a datagram
/// WLED would not take.
pub fn apply_to_leds(datagram: &[u8], leds: &mut [Rgb]) -> Option<u8> {
    let [protocol, timeout, rest @ ..] = datagram else {
        return None;
    };
    let mut set = |index: usize, rgb: &[u8]| {
        if let (Some(led), [r, g, b]) = (leds.get_mut(index), rgb) {
            *led = Rgb::new(*r, *g, *b);
        }
    };
    match protocol {
        1 => rest
            .chunks_exact(4)
            .for_each(|c| set(usize::from(c[0]), &c[1..])),
        2 => rest
            .chunks_exact(3)
            .enumerate()
            .for_each(|(i, c)| set(i, c)),
        4 => {
            let [hi, lo, colours @ ..] = rest else {
                return None;
            };
            let start = usize::from(u16::from_be_bytes([*hi, *lo]));
            colours
                .chunks_exact(3)
                .enumerate()
                .for_each(|(i, c)| set(start + i, c));
        }
        _ => return None,
    }
    Some(*timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(leds: usize) -> State {
        State {
            leds: vec![Rgb::OFF; leds],
            live_until: None,
            datagrams: 0,
            behaviour: Behaviour::Honest,
            name: String::new(),
        }
    }

    #[test]
    fn realtime_protocols_set_leds_and_hold_them_for_their_timeout() {
        let mut s = state(4);
        let now = Instant::now();
        apply(&[4, 2, 0, 2, 9, 9, 9, 8, 8, 8, 7, 7, 7], &mut s, now);
        assert_eq!(s.leds[2], Rgb::new(9, 9, 9));
        assert_eq!(
            s.leds[3],
            Rgb::new(8, 8, 8),
            "the LED past the end is ignored"
        );
        assert_eq!(s.live_until, Some(now + Duration::from_secs(2)));
        apply(&[2, 1, 1, 2, 3], &mut s, now);
        assert_eq!(s.leds[0], Rgb::new(1, 2, 3));
        apply(&[1, 1, 1, 5, 5, 5], &mut s, now);
        assert_eq!(s.leds[1], Rgb::new(5, 5, 5));
        apply(&[0, 1, 1], &mut s, now);
        apply(&[4], &mut s, now);
        assert_eq!(
            s.datagrams, 3,
            "notifier and short datagrams are not frames"
        );
    }
}
