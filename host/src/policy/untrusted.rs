//! Text that comes from a plugin (its errors, its settings complaints, its output) is
//! untrusted: it is bounded and stripped of control characters before it reaches a
//! log, the status page, a metric or an Event, so a plugin can neither flood them nor
//! move a reader's terminal cursor, clear a screen or forge log lines.

/// Longest plugin text kept, in characters (more is cut, and the cut is said).
pub const MAX_PLUGIN_TEXT: usize = 1024;

/// Longest escape [`sanitize`] writes for one character (`\u{10ffff}`).
pub const MAX_ESCAPE: usize = 10;

/// `text` as safe to show: control characters (including newlines, escapes and
/// Unicode bidi and line-separator controls) become `\u{…}` escapes, and past `max`
/// characters the rest is replaced by a note of how much was cut. The result has at
/// most `max` × [`MAX_ESCAPE`] characters and the note.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(2)));
    for (shown, (index, c)) in text.char_indices().enumerate() {
        if shown >= max {
            let rest = text.len() - index;
            out.push_str(&format!("… ({rest} more bytes cut)"));
            return out;
        }
        if is_unsafe(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`sanitize`] for raw bytes (a plugin's output line): invalid UTF-8 becomes U+FFFD.
pub fn sanitize_bytes(bytes: &[u8], max: usize) -> String {
    sanitize(&String::from_utf8_lossy(bytes), max)
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_stay_within_the_stated_bound() {
        // Found by fuzzing: escaped characters make the text longer than `max`.
        let shown = sanitize(&"\u{7f}".repeat(1000), 5);
        assert!(shown.starts_with(&"\\u{7f}".repeat(5)), "{shown}");
        assert!(shown.chars().count() <= 5 * MAX_ESCAPE + 40, "{shown}");
    }

    #[test]
    fn no_bound_at_all_is_a_bound_too() {
        // Found by fuzzing: the capacity hint overflowed for the largest bound.
        assert_eq!(sanitize("plain \u{1b}", usize::MAX), "plain \\u{1b}");
    }

    #[test]
    fn escapes_control_characters() {
        let text = sanitize("red\x1b[2J\x1b[Hgreen\nfake: line\r\u{202e}", 100);
        assert_eq!(
            text,
            "red\\u{1b}[2J\\u{1b}[Hgreen\\u{a}fake: line\\u{d}\\u{202e}"
        );
        assert!(!text.chars().any(char::is_control));
    }

    #[test]
    fn bounds_the_length_and_says_so() {
        let long = "x".repeat(10 * 1024 * 1024);
        let text = sanitize(&long, 512);
        assert!(text.starts_with(&"x".repeat(512)));
        assert!(
            text.ends_with("… (10485248 more bytes cut)"),
            "{}",
            &text[500..]
        );
        assert!(text.len() < 600);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(
            sanitize_bytes(b"ok \xff\xfe done", 100),
            "ok \u{fffd}\u{fffd} done"
        );
    }

    #[test]
    fn plain_text_is_unchanged() {
        let text = "pod web: CrashLoopBackOff (3 restarts) — ünïcode ✓";
        assert_eq!(sanitize(text, 100), text);
    }
}
