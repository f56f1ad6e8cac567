//! The original prototype's way of changing colour, reproduced as a baseline: for each
//! LED in turn, 50 linear steps from its colour to the target, each written as report
//! 5 and followed by a sleep of `duration / 51`, then the target — blocking.

use std::time::Duration;

use podlight::device::Transport;
use podlight::device::protocol;
use podlight::device::transport::set_feature_with_retry;
use podlight::frame::Rgb;

/// Morphs every LED of `shown` to `target`, one after another, as the prototype did.
pub fn morph_all(
    transport: &mut dyn Transport,
    shown: &mut [Rgb],
    target: Rgb,
    duration: Duration,
) {
    let step_sleep = duration / 51;
    for (index, led) in shown.iter_mut().enumerate() {
        let from = *led;
        for step in 1..=50u32 {
            let mix = |a: u8, b: u8| {
                (f64::from(a) + (f64::from(b) - f64::from(a)) * f64::from(step) / 50.0) as u8
            };
            let c = Rgb::new(
                mix(from.r, target.r),
                mix(from.g, target.g),
                mix(from.b, target.b),
            );
            // Like the prototype, a failed write is not fatal: the next step follows.
            let _ = set_feature_with_retry(transport, &protocol::encode_indexed(0, index as u8, c));
            std::thread::sleep(step_sleep);
        }
        let _ =
            set_feature_with_retry(transport, &protocol::encode_indexed(0, index as u8, target));
        *led = target;
    }
}
