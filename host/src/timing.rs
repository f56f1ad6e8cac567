//! Waiting: the one back-off schedule every retry in podlight follows, and sleeping
//! until an optional instant.

use std::time::Duration;

/// The pause before try number `failures + 1` after `failures` failures in a row:
/// `first`, doubling each time, at most `max` (none before the first failure).
pub fn doubling(first: Duration, max: Duration, failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => first.saturating_mul(1 << (n - 1).min(20)).min(max),
    }
}

/// `pause` shortened by up to half, differently each call: retries of many agents that
/// failed together spread out instead of arriving at once.
pub fn jittered(pause: Duration) -> Duration {
    pause - pause / 2 * random_permille() / 1000
}

/// `pause` lengthened or shortened by up to a tenth, differently each call: many agents
/// polling the same server at the same interval do not stay in step.
pub fn spread(pause: Duration) -> Duration {
    pause - pause / 10 + pause / 5 * random_permille() / 1000
}

/// Longest a wait for a moment of wall-clock time sleeps before it looks at the clock
/// again: sleeps run on the monotonic clock, so a wall clock stepped forward (NTP, a
/// VM resumed, an operator) is noticed within this, not when the old wait ends.
pub const WALL_CLOCK_RECHECK: Duration = Duration::from_secs(10);

/// How long to sleep until wall-clock `at_ms`, seen at `now_ms`: at most
/// [`WALL_CLOCK_RECHECK`]. Waking early is harmless (what is due is decided by the
/// clock when waking); a clock stepped back only makes the wait longer.
pub fn until_wall_clock(at_ms: u64, now_ms: u64) -> Duration {
    Duration::from_millis(at_ms.saturating_sub(now_ms)).min(WALL_CLOCK_RECHECK)
}

/// A number in 0..1000, different each call.
fn random_permille() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    // A hasher seeded randomly per process, fed the time: no random number crate.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() % 1000) as u32
}

/// Sleeps until `at`; never without one.
pub async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_starts_at_first_and_stops_at_max() {
        let ms = |n| doubling(Duration::from_millis(250), Duration::from_secs(2), n).as_millis();
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 40].map(ms),
            [0, 250, 500, 1000, 2000, 2000, 2000]
        );
    }

    #[test]
    fn jitter_shortens_by_at_most_half() {
        let pause = Duration::from_secs(2);
        let pauses: Vec<_> = (0..200).map(|_| jittered(pause)).collect();
        assert!(pauses.iter().all(|p| *p <= pause && *p >= pause / 2));
        assert!(pauses.iter().any(|p| *p != pauses[0]), "the pauses differ");
    }

    #[test]
    fn spread_stays_within_a_tenth() {
        let pause = Duration::from_secs(10);
        let pauses: Vec<_> = (0..200).map(|_| spread(pause)).collect();
        assert!(
            pauses
                .iter()
                .all(|p| *p >= Duration::from_secs(9) && *p <= Duration::from_secs(11))
        );
        assert!(pauses.iter().any(|p| *p != pauses[0]), "the pauses differ");
    }
}
