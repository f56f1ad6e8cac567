//! A policy that misbehaves on purpose, for the engine's tests. The settings text names
//! the behaviour of `evaluate`:
//! - `loop`: never returns (the deadline must fire);
//! - `alloc`: allocates 1 GiB (the memory limit must fire);
//! - `trap`: hits `unreachable`;
//! - `read-file`: tries to read `/etc/hostname` through WASI and returns what happened;
//! - `huge-frame`: returns 10 000 LEDs;
//! - `print`: writes to stdout and stderr, then returns one white LED;
//! - `top-led`: an overlay layer: LED 0 lit (#010203), every other LED see-through;
//! - `hostile-text`: prints terminal escapes and a 100 KB line, then reports an
//!   error of 10 MiB that starts with escapes (clear screen, cursor home);
//! - `busy MS`: works for MS milliseconds, then returns one LED and asks to be
//!   evaluated again at once (`again-after-ms` 0);
//! - `pods`: one LED per pod from `pods()`, checked against `pod-at(i)`: r = restarts,
//!   g = state index, b = containers;
//! - `hostile-reasons`: two LEDs with 5 000 reasons whose rule text holds escapes
//!   and 1 KB, naming 100 pods and nodes, alerts and LEDs that do not exist;
//! - `silences`: one LED per pod, r = 1 when the pod has a silence, g = silenced
//!   failed count, b = the silence's reason length; with a reason naming every
//!   LED and the failed unsilenced pods;
//! - `loop-while-failed`: never returns while the node has a failed pod (a node too
//!   busy for the policy, for a while), else as below;
//! - anything else: one LED per state count (r = failed, g = running, b = deleting).
#![cfg(target_family = "wasm")]

use std::cell::RefCell;

use exports::podlight::policy::evaluator::{Frame, Guest, LedReason};
use podlight::policy::snapshot;
use podlight::policy::types::{PodState, Rgb};

wit_bindgen::generate!({
    world: "policy",
    path: "../../wit",
});

thread_local! {
    static MODE: RefCell<String> = const { RefCell::new(String::new()) };
    /// `after N MODE`: good for N evaluations, then MODE.
    static GOOD_FOR: RefCell<Option<u64>> = const { RefCell::new(None) };
    static EVALUATIONS: RefCell<u64> = const { RefCell::new(0) };
}

struct Testkit;

fn frame(leds: Vec<Rgb>) -> Result<Frame, String> {
    Ok(Frame {
        leds,
        again_after_ms: None,
        reasons: Vec::new(),
        see_through: Vec::new(),
    })
}

fn clamp(n: u32) -> u8 {
    n.min(255) as u8
}

impl Guest for Testkit {
    fn configure(settings: Option<String>) -> Result<(), String> {
        let settings = settings.unwrap_or_default().trim().to_string();
        let (good_for, mode) = match settings.strip_prefix("after ") {
            Some(rest) => {
                let (n, mode) = rest.split_once(' ').ok_or("after N MODE")?;
                (
                    Some(n.parse().map_err(|_| "after N MODE")?),
                    mode.to_string(),
                )
            }
            None => (None, settings),
        };
        MODE.with(|m| *m.borrow_mut() = mode);
        GOOD_FOR.with(|g| *g.borrow_mut() = good_for);
        EVALUATIONS.with(|e| *e.borrow_mut() = 0);
        Ok(())
    }

    fn evaluate() -> Result<Frame, String> {
        let done = EVALUATIONS.with(|e| {
            let mut e = e.borrow_mut();
            *e += 1;
            *e - 1
        });
        let still_good = GOOD_FOR.with(|g| g.borrow().is_some_and(|n| done < n));
        let mode = if still_good {
            String::new()
        } else {
            MODE.with(|m| m.borrow().clone())
        };
        match mode.as_str() {
            "loop-while-failed" if snapshot::counts().failed > 0 => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                // black_box: the optimiser may otherwise drop the allocation altogether.
                let big = std::hint::black_box(vec![1u8; 1 << 30]);
                frame(vec![Rgb {
                    r: big[big.len() - 1],
                    g: 0,
                    b: 0,
                }])
            }
            "trap" => core::arch::wasm32::unreachable(),
            "error" => Err(format!("failing on purpose after {done} evaluations")),
            "read-file" => match std::fs::read_to_string("/etc/hostname") {
                Ok(text) => Err(format!("read succeeded: {text}")),
                Err(e) => Err(format!("read denied: {e}")),
            },
            "huge-frame" => frame(vec![Rgb { r: 1, g: 2, b: 3 }; 10_000]),
            "print" => {
                println!("hello from stdout");
                eprintln!("hello from stderr");
                frame(vec![Rgb {
                    r: 255,
                    g: 255,
                    b: 255,
                }])
            }
            "hostile-text" => {
                println!("\x1b[2J\x1b[Hcleared\rforged: level=ERROR");
                println!("{}", "y".repeat(100_000));
                let mut message = String::from("\x1b[2J\x1b[H\u{202e}evil\n");
                message.push_str(&"x".repeat(10 << 20));
                Err(message)
            }
            busy if busy.starts_with("busy ") => {
                let ms: u64 = busy[5..].trim().parse().map_err(|_| "busy MS")?;
                let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
                let mut n: u64 = 0;
                while std::time::Instant::now() < until {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
                Ok(Frame {
                    leds: vec![Rgb {
                        r: clamp(n as u32 & 0xff),
                        g: 1,
                        b: 0,
                    }],
                    again_after_ms: Some(0),
                    reasons: Vec::new(),
                    see_through: Vec::new(),
                })
            }
            "hostile-reasons" => {
                let reason = LedReason {
                    leds: vec![0, 1, 7, 4_000_000],
                    rule: format!("\x1b[2J\x1b[Hcleared\n{}", "r".repeat(1_000)),
                    pods: (0..100).chain([u32::MAX]).collect(),
                    nodes: vec![0, 99],
                    alerts: vec![5],
                };
                Ok(Frame {
                    leds: vec![Rgb { r: 9, g: 9, b: 9 }; 2],
                    again_after_ms: None,
                    reasons: vec![reason; 5_000],
                    see_through: vec![1, 2, 3, 99],
                })
            }
            "top-led" => {
                // An overlay: LED 0 lit, every other LED left to the layers below.
                let count = snapshot::led_count();
                Ok(Frame {
                    leds: vec![Rgb { r: 1, g: 2, b: 3 }; count as usize],
                    again_after_ms: None,
                    reasons: vec![LedReason {
                        leds: vec![0],
                        rule: "incident on LED 0".into(),
                        pods: Vec::new(),
                        nodes: Vec::new(),
                        alerts: Vec::new(),
                    }],
                    see_through: (1..count).collect(),
                })
            }
            "silences" => {
                let silenced = snapshot::silenced_counts();
                let leds = snapshot::pods()
                    .iter()
                    .map(|pod| Rgb {
                        r: u8::from(pod.silence.is_some()),
                        g: clamp(silenced.failed),
                        b: clamp(pod.silence.as_ref().map_or(0, |s| s.reason.len() as u32)),
                    })
                    .collect::<Vec<_>>();
                let count = leds.len() as u32;
                Ok(Frame {
                    leds,
                    again_after_ms: None,
                    reasons: vec![LedReason {
                        leds: (0..count).collect(),
                        rule: "failed pods not silenced".into(),
                        pods: snapshot::pods_in(PodState::Failed, false),
                        nodes: Vec::new(),
                        alerts: Vec::new(),
                    }],
                    see_through: Vec::new(),
                })
            }
            "pods" => {
                let pods = snapshot::pods();
                let mut leds = Vec::with_capacity(pods.len());
                for (i, pod) in pods.iter().enumerate() {
                    let one =
                        snapshot::pod_at(i as u32).ok_or("pod-at(i) is none inside pod-count")?;
                    if one.uid != pod.uid || one.containers.len() != pod.containers.len() {
                        return Err(format!("pod-at({i}) differs from pods()[{i}]"));
                    }
                    leds.push(Rgb {
                        r: clamp(pod.restarts),
                        g: pod.state as u8,
                        b: clamp(pod.containers.len() as u32),
                    });
                }
                if snapshot::pod_at(pods.len() as u32).is_some() {
                    return Err("pod-at(pod-count) is not none".into());
                }
                frame(leds)
            }
            _ => {
                let c = snapshot::counts();
                frame(vec![Rgb {
                    r: clamp(c.failed),
                    g: clamp(c.running),
                    b: clamp(c.deleting),
                }])
            }
        }
    }
}

export!(Testkit);
