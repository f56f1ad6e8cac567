//! The real USB HID path: podlight → hidapi → Linux hidraw → HID core → uhid → a
//! virtual light (`podlight emulate`: two BlinkSticks, a blink(1) and a Luxafor
//! Flag), in a qemu VM booting Debian's kernel.
//! `scripts/uhid-vm` builds and boots the VM; `tests/uhid/scenario.sh` runs inside;
//! this test reads the serial console and checks every report the stick received.

use podlight_testsupport as support;

use std::process::Command;
use std::time::Instant;

use support::repo_root;

const PODLIGHT: &str = env!("CARGO_BIN_EXE_podlight");
const SNAPSHOT: &str = "examples/snapshots/one-pending.json";

/// A strip frame as report 6 carries it: ID, channel 0, then G, R, B per LED.
fn report_6(leds: &[(u8, u8, u8)]) -> String {
    let mut bytes = vec![6u8, 0];
    for &(r, g, b) in leds {
        bytes.extend([g, r, b]);
    }
    hex::encode(bytes)
}

/// One line of the stick's log: milliseconds since it started, and what happened.
struct StickLine {
    ms: f64,
    text: String,
}

/// The console: each step's own output, and the stick's log split at its marks.
struct Console {
    text: String,
}

impl Console {
    /// What the step printed, between `== step` and its `== rc N`, and N.
    fn step(&self, name: &str) -> (String, i32) {
        let start = self
            .text
            .find(&format!("== {name}\n"))
            .unwrap_or_else(|| panic!("step {name} missing from the console:\n{}", self.text));
        let body = &self.text[start + name.len() + 4..];
        let end = body
            .find("== rc ")
            .unwrap_or_else(|| panic!("step {name} has no exit status"));
        let rc = body[end + 6..]
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(-1);
        (body[..end].to_string(), rc)
    }

    /// The log of the stick whose lines carry this prefix.
    fn log(&self, prefix: &str) -> Vec<StickLine> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|l| {
                let (ms, text) = l.split_once(' ')?;
                Some(StickLine {
                    ms: ms.parse().ok()?,
                    text: text.to_string(),
                })
            })
            .collect()
    }

    /// The stick's log from `mark from` up to the next mark.
    fn stick_during(&self, from: &str) -> Vec<StickLine> {
        self.during("stick: ", from)
    }

    /// The log of the light whose lines carry `prefix`, from `mark from` up to the
    /// next mark.
    fn during(&self, prefix: &str, from: &str) -> Vec<StickLine> {
        let mark = format!("mark {from}");
        self.log(prefix)
            .into_iter()
            .skip_while(|l| l.text != mark)
            .skip(1)
            .take_while(|l| !l.text.starts_with("mark "))
            .collect()
    }
}

/// What the light showed after the last report it accepted in these lines.
fn last_shown(lines: &[StickLine]) -> Option<String> {
    lines.iter().rev().find_map(|l| {
        l.text
            .split_once(" leds=")
            .map(|(_, leds)| leds.to_string())
    })
}

/// `#rrggbb,…` for these LEDs.
fn hex_leds(leds: &[(u8, u8, u8)]) -> String {
    leds.iter()
        .map(|(r, g, b)| format!("#{r:02x}{g:02x}{b:02x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The hex of every report the stick accepted in these lines.
fn reports(lines: &[StickLine]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.text.strip_prefix("set "))
        .map(|rest| rest.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn podlight_drives_a_virtual_stick_through_hidraw_in_a_vm() {
    let root = repo_root();
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(root.join("scripts/uhid-vm"))
        .arg(PODLIGHT)
        .arg(root.join("host/tests/uhid/scenario.sh"))
        .arg(root.join(SNAPSHOT))
        .current_dir(&root)
        .output()
        .expect("scripts/uhid-vm runs");
    let took = started.elapsed();
    let console = Console {
        text: String::from_utf8_lossy(&output.stdout).replace('\r', ""),
    };
    assert!(
        output.status.success() && console.text.contains("vm: exit 0"),
        "the VM did not finish its scenario ({}):\n{}\n{}",
        output.status,
        console.text,
        String::from_utf8_lossy(&output.stderr)
    );

    // Through uhid, hidapi reports release 0 and no manufacturer: the stick is found
    // by vendor/product, and its model cannot be told without an override.
    let (listed, rc) = console.step("devices-unknown-model");
    assert_eq!(rc, 0, "{listed}");
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("devices --json");
    assert_eq!(listed[1]["serial"], "BS012345-3.1");
    assert_eq!(listed[1]["release"], "0x0000");
    assert_eq!(listed[1]["manufacturer"], "");
    assert!(listed[1]["model"].is_null(), "{listed}");
    let (listed, rc) = console.step("devices");
    assert_eq!(rc, 0, "{listed}");
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("devices --json");
    assert_eq!(listed.as_array().map(Vec::len), Some(4), "{listed}");
    // Sorted by family, then serial: the BlinkSticks (the Pro first), the blink(1),
    // the Flag, named by its node.
    assert_eq!(listed[2]["family"], "blink1", "{listed}");
    assert_eq!(listed[2]["serial"], "3000cafe");
    assert_eq!(listed[2]["leds"], 2);
    assert_eq!(listed[2]["access"], "ok");
    assert_eq!(listed[3]["family"], "luxafor", "{listed}");
    assert_eq!(listed[3]["leds"], 6);
    assert_eq!(listed[3]["serial"], listed[3]["path"]);
    assert_eq!(listed[3]["access"], "ok");
    assert_eq!(listed[0]["serial"], "BS000777-3.0");
    let strip = &listed[1];
    assert_eq!(strip["serial"], "BS012345-3.1");
    assert_eq!(strip["model"], "strip");
    assert_eq!(strip["leds"], 8);
    assert_eq!(strip["access"], "ok");
    assert!(
        strip["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/dev/hidraw")),
        "{listed}"
    );

    // `set red` without a fade: one report 6, R and G swapped into GRB order.
    assert_eq!(console.step("set-red").1, 0);
    let red = "060000ff0000ff0000ff0000ff0000ff0000ff0000ff0000ff00";
    assert_eq!(red, report_6(&[(255, 0, 0); 8]));
    assert_eq!(reports(&console.stick_during("set-red")), [red]);

    // The Pro, picked by serial: WS2812 mode first (report 4), then the same frame;
    // the strip saw nothing of it.
    assert_eq!(console.step("pro-red").1, 0);
    let pro: Vec<StickLine> = console
        .log("pro: ")
        .into_iter()
        .filter(|l| l.text.starts_with("set "))
        .collect();
    assert_eq!(reports(&pro), ["0402", red]);
    assert!(reports(&console.stick_during("pro-red")).is_empty());

    // A policy evaluation reaches the stick as the frame the same policy gives here.
    let (shown, rc) = console.step("eval");
    assert_eq!(rc, 0, "{shown}");
    let here = Command::new(PODLIGHT)
        .args(["eval", "builtin", SNAPSHOT, "--leds", "8", "--json"])
        .current_dir(&root)
        .output()
        .expect("podlight eval runs");
    let frame: serde_json::Value = serde_json::from_slice(&here.stdout).expect("frame JSON");
    assert_eq!(shown.trim(), String::from_utf8_lossy(&here.stdout).trim());
    let leds: Vec<(u8, u8, u8)> = frame["leds"]
        .as_array()
        .expect("leds")
        .iter()
        .map(|c| {
            let channel = |k: &str| c[k].as_u64().expect("channel") as u8;
            (channel("r"), channel("g"), channel("b"))
        })
        .collect();
    assert_eq!(leds.len(), 8);
    let eval_reports = reports(&console.stick_during("eval"));
    assert_eq!(eval_reports.last(), Some(&report_6(&leds)));

    // A 300 ms fade: a bounded number of writes, blue rising, ending exactly on blue.
    assert_eq!(console.step("fade-blue").1, 0);
    let fade = reports(&console.stick_during("fade-blue"));
    assert!(
        (2..=17).contains(&fade.len()),
        "300 ms at ≤ 50 fps: {} writes",
        fade.len()
    );
    assert_eq!(fade.last(), Some(&report_6(&[(0, 0, 255); 8])));
    let blue: Vec<u8> = fade
        .iter()
        .map(|r| hex::decode(r).expect("hex")[4])
        .collect();
    assert!(blue.windows(2).all(|w| w[0] <= w[1]), "{blue:?}");
    // It starts from what the stick showed (read back over GET_REPORT), not from off.
    let first = hex::decode(&fade[0]).expect("hex");
    assert!(
        first[3] > 0,
        "the first step keeps the earlier red: {first:?}"
    );

    // Unplugged and replugged while the frame holds still: re-sent within a second.
    let green = report_6(&[(0, 255, 0); 8]);
    assert_eq!(
        reports(&console.stick_during("hold-green")),
        std::slice::from_ref(&green)
    );
    let replug = console.stick_during("replug");
    let plugged = replug
        .iter()
        .position(|l| l.text.starts_with("plugged"))
        .expect("the stick was plugged back in");
    assert!(replug[..plugged].iter().any(|l| l.text == "unplugged"));
    let resent = replug[plugged..]
        .iter()
        .find(|l| l.text.starts_with("set "))
        .expect("the frame was re-sent after the replug");
    assert_eq!(reports(std::slice::from_ref(resent)), [green]);
    let reconnect_ms = resent.ms - replug[plugged].ms;
    assert!(reconnect_ms < 1000.0, "re-sent after {reconnect_ms:.0} ms");
    let (_, rc) = console.step("replug");
    assert_eq!(rc, 0, "the held `set` exits 0 on SIGTERM");

    // blink(1): feature report 1, 'c' fade per LED with fade time 0, LED 1 then 2.
    assert_eq!(console.step("blink1-red").1, 0);
    let blink1 = console.during("blink1: ", "blink1-red");
    let fades: Vec<String> = reports(&blink1)
        .into_iter()
        .filter(|r| r.starts_with("0163"))
        .collect();
    assert_eq!(
        fades,
        ["0163ff000000000100", "0163ff000000000200"],
        "{}",
        console.text
    );
    assert_eq!(last_shown(&blink1).as_deref(), Some("#ff0000,#ff0000"));
    // Luxafor Flag: output reports through hidraw's write, leading 0 and all.
    assert_eq!(console.step("flag-green").1, 0);
    let flag = console.during("flag: ", "flag-green");
    assert!(
        flag.iter().all(|l| !l.text.starts_with("refused")),
        "{}",
        console.text
    );
    assert_eq!(
        last_shown(&flag).as_deref(),
        Some(hex_leds(&[(0, 255, 0); 6]).as_str())
    );
    // Two families as one strip: the policy's eight LEDs, two on the blink(1), six
    // on the Flag.
    let (shown, rc) = console.step("two-families");
    assert_eq!(rc, 0, "{shown}");
    assert_eq!(shown.trim(), String::from_utf8_lossy(&here.stdout).trim());
    assert_eq!(
        last_shown(&console.during("blink1: ", "two-families")),
        Some(hex_leds(&leds[..2]))
    );
    assert_eq!(
        last_shown(&console.during("flag: ", "two-families")),
        Some(hex_leds(&leds[2..]))
    );
    // A blink(1) replugged while the frame holds still gets it again.
    let replug = console.during("blink1: ", "blink1-replug");
    let plugged = replug
        .iter()
        .position(|l| l.text.starts_with("plugged"))
        .expect("the blink(1) was plugged back in");
    let resent = replug[plugged..]
        .iter()
        .find(|l| l.text.starts_with("set "))
        .expect("the frame was re-sent to the blink(1)");
    let blink1_reconnect_ms = resent.ms - replug[plugged].ms;
    assert!(
        blink1_reconnect_ms < 1000.0,
        "re-sent after {blink1_reconnect_ms:.0} ms"
    );
    assert_eq!(
        last_shown(&replug[plugged..]).as_deref(),
        Some("#102030,#102030")
    );
    assert_eq!(console.step("blink1-replug").1, 0);

    let booted = console
        .text
        .lines()
        .find_map(|l| l.split_once("vm: booted in ").map(|(_, t)| t))
        .unwrap_or("?");
    println!(
        "uhid VM: boot to verdict {:.1} s (kernel up in {booted}); fade {} reports per colour change; reconnect after replug {reconnect_ms:.0} ms (blink(1): {blink1_reconnect_ms:.0} ms)",
        took.as_secs_f64(),
        fade.len()
    );
}
