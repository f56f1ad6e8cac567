//! How a watch retries after the API server went away: 250 ms, doubling to at most
//! 2 s, each pause shortened by a random part of up to half, reset by the first event
//! that gets through. While the server is down an agent tries about once a second or
//! two (a refused connection costs the server nothing); once it answers, the watch is
//! back within 2 s — resuming from its last resourceVersion, or listing again if the
//! history is compacted — so the stick shows the truth within 3 s of the server's
//! return. kube's default (800 ms doubling to 30 s) could leave an agent dark for
//! 30 s after a long outage. 5,000 agents spread their returns over at least a second
//! by the jitter, and a resumed watch is served from the API server's watch cache.

use std::time::Duration;

use kube::runtime::utils::Backoff;

use crate::timing::{doubling, jittered};

/// The first pause after a failure.
pub const FIRST: Duration = Duration::from_millis(250);
/// The longest pause between tries.
pub const MAX: Duration = Duration::from_secs(2);

/// The watch back-off (see the module's doc).
#[derive(Debug, Default, Clone)]
pub struct WatchBackoff {
    failures: u32,
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        Some(jittered(doubling(FIRST, MAX, self.failures)))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_to_two_seconds_and_reset() {
        let mut backoff = WatchBackoff::default();
        let pauses: Vec<Duration> = backoff.by_ref().take(8).collect();
        for (pause, full) in pauses
            .iter()
            .zip([250, 500, 1000, 2000, 2000, 2000, 2000, 2000])
        {
            let full = Duration::from_millis(full);
            assert!(
                *pause <= full && *pause >= full / 2,
                "{pause:?} for {full:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next().is_some_and(|p| p <= FIRST));
    }
}
