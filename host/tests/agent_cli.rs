//! The real binary as an operator runs it: `podlight demo` serving HTTP, the live page
//! in headless Chromium, and SIGTERM.

use podlight_testsupport as support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::http_client::{free_port, get};

struct Demo {
    child: Child,
    port: u16,
    stderr: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// `podlight demo` on a free port, with long steps so the scene holds still.
    fn start(extra: &[&str]) -> Demo {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = dir.path().join("stderr");
        std::fs::create_dir_all(dir.path().join("policies")).expect("policy dir");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_podlight"))
            .args([
                "demo",
                "--step",
                "1000",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--policy-dir",
            ])
            .arg(dir.path().join("policies"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("podlight demo starts");
        let demo = Demo {
            child,
            port,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(port, "/healthz").is_none_or(|(status, _)| status != 200) {
            assert!(
                Instant::now() < deadline,
                "podlight demo did not serve /healthz:\n{}",
                demo.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        demo
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn state(&self) -> serde_json::Value {
        let (status, body) = get(self.port, "/api/state").expect("state");
        assert_eq!(status, 200);
        serde_json::from_str(&body).expect("JSON state")
    }

    /// Waits until the frame is `colour` on every LED.
    fn wait_for_leds(&self, colour: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = self.state();
            let leds = state["leds"].as_array().cloned().unwrap_or_default();
            if !leds.is_empty() && leds.iter().all(|l| l == colour) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "leds never became {colour}: {state}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn terminate(&mut self) -> (Option<i32>, Duration) {
        let started = Instant::now();
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code(), started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "podlight ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn demo_serves_health_readiness_metrics_and_state() {
    let mut demo = Demo::start(&[]);
    demo.wait_for_leds("#323200");
    assert_eq!(get(demo.port, "/readyz"), Some((200, "ok\n".to_string())));
    let (status, metrics) = get(demo.port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    for line in [
        r#"podlight_pods{state="pending"} 3"#,
        "podlight_device_connected 1",
        r#"podlight_active_policy{name="builtin""#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert!(
        metrics.contains("podlight_evaluation_seconds_count"),
        "{metrics}"
    );
    let state = demo.state();
    assert_eq!(state["pods"].as_array().map(Vec::len), Some(3));
    assert_eq!(state["pods"][0]["reason"], "ContainerCreating");
    let (status, page) = get(demo.port, "/").expect("page");
    assert_eq!(status, 200);
    assert!(page.contains("EventSource"), "the page follows /events");

    let (code, took) = demo.terminate();
    assert_eq!(code, Some(0), "{}", demo.log());
    println!("stopped {took:?} after SIGTERM");
    let log = demo.log();
    let last = last_drawn(&log);
    assert!(
        last.ends_with(&["#000000"; 8].join(" ")),
        "LEDs off at exit, got {last:?}\n{log}"
    );
}

#[test]
fn leave_leds_on_keeps_the_last_colour_at_exit() {
    let mut demo = Demo::start(&["--leave-leds-on"]);
    demo.wait_for_leds("#323200");
    // …and until the fade to it has finished on the (virtual) stick.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !demo.log().contains(&["#323200"; 8].join(" ")) {
        assert!(Instant::now() < deadline, "{}", demo.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, _) = demo.terminate();
    assert_eq!(code, Some(0));
    let log = demo.log();
    let last = last_drawn(&log);
    assert!(last.ends_with(&["#323200"; 8].join(" ")), "{last:?}");
}

/// The last frame the virtual stick drew.
fn last_drawn(log: &str) -> String {
    log.lines()
        .rfind(|l| l.starts_with("leds: "))
        .unwrap_or_default()
        .to_string()
}

/// Pixels of exactly this colour (±2 per channel) in a PNG.
fn count_pixels(png_path: &std::path::Path, rgb: (u8, u8, u8)) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("screenshot"),
    ));
    let mut reader = decoder.read_info().expect("PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks_exact(step)
        .filter(|p| {
            p[0].abs_diff(rgb.0) <= 2 && p[1].abs_diff(rgb.1) <= 2 && p[2].abs_diff(rgb.2) <= 2
        })
        .count()
}

#[test]
fn the_live_page_shows_the_current_frame_in_chromium() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(chromium) = chromium else {
        panic!("chromium is missing: scripts/setup-test installs Debian's chromium");
    };
    let demo = Demo::start(&[]);
    demo.wait_for_leds("#323200");
    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("page.png");
    // The page keeps its event stream open, so it never finishes loading:
    // `--timeout` takes the screenshot after a fixed time instead.
    let mut browser = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
        ])
        .args(["--no-first-run", "--disable-background-networking"])
        .args([
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .args(["--window-size=900,600", "--timeout=3000"])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("http://127.0.0.1:{}/", demo.port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while browser.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = browser.kill();
            let _ = browser.wait();
            panic!("chromium did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(shot.exists(), "no screenshot");
    // Eight 48 px LEDs of the frame's colour (#323200: pending pods), and none green.
    let lit = count_pixels(&shot, (0x32, 0x32, 0));
    assert!(lit > 8 * 1200, "{lit} pixels of the frame's colour");
    assert_eq!(
        count_pixels(&shot, (0, 0x19, 0)),
        0,
        "no LED shows another colour"
    );
}

/// Peak RSS of a running process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[test]
fn a_plugin_too_expensive_to_compile_never_hurts_the_agent() {
    let mut demo = Demo::start(&[]);
    demo.wait_for_leds("#323200");
    // About 90 KB; compiled in the agent's own process it would take about 1 GB.
    let policies = demo._dir.path().join("policies");
    let started = Instant::now();
    std::fs::write(
        policies.join("priority.wasm"),
        support::expensive_to_compile(3000),
    )
    .expect("write");
    let deadline = Instant::now() + Duration::from_secs(60);
    let error = loop {
        assert_eq!(
            get(demo.port, "/healthz").map(|r| r.0),
            Some(200),
            "serving throughout"
        );
        if let Some(error) = demo.state()["policy"]["lastError"].as_str() {
            break error.to_string();
        }
        assert!(Instant::now() < deadline, "never refused:\n{}", demo.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let peak = peak_rss_mib(demo.child.id());
    println!(
        "refused in {:.2} s, agent peak RSS {peak:.0} MiB: {error}",
        started.elapsed().as_secs_f64()
    );
    assert!(error.contains("compile budget"), "{error}");
    assert!(
        peak < 150.0,
        "the compile stayed out of the agent: {peak} MiB"
    );
    demo.wait_for_leds("#323200");
    assert_eq!(
        demo.state()["policy"]["name"],
        "builtin",
        "the last good policy runs on"
    );
    let (code, _) = demo.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn a_stop_during_the_first_compile_ends_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).expect("dir");
    // Within a generous budget, this one compiles for tens of seconds.
    std::fs::write(
        policies.join("priority.wasm"),
        support::expensive_to_compile(6000),
    )
    .expect("write");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_podlight"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--policy-dir",
        ])
        .arg(&policies)
        .args([
            "--compile-memory-mib",
            "8192",
            "--compile-cpu-seconds",
            "300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("podlight demo starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(port, "/healthz").is_none_or(|(status, _)| status != 200) {
        assert!(
            Instant::now() < deadline,
            "/healthz answers while compiling"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, ready) = get(port, "/readyz").expect("readyz");
    assert!(ready.contains("policy is still being loaded"), "{ready}");
    std::thread::sleep(Duration::from_millis(500));
    let compiling = children_of(child.id());
    assert!(!compiling.is_empty(), "a compiling child runs");
    let started = Instant::now();
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still running long after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "stopped {:?} after SIGTERM during a compile",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    // The compiling child went with it.
    std::thread::sleep(Duration::from_millis(200));
    for pid in compiling {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("compile"),
            "the compiling child {pid} outlived the agent"
        );
    }
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|candidate| {
            std::fs::read_to_string(format!("/proc/{candidate}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("PPid:"))
                        .and_then(|v| v.trim().parse::<u32>().ok())
                })
                == Some(pid)
        })
        .collect()
}
