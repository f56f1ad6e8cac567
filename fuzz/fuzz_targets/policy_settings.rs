#![no_main]
//! See `podlight::fuzzing::policy_settings`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::policy_settings(data));
