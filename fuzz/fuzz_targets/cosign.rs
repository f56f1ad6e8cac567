#![no_main]
//! See `podlight::fuzzing::cosign`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::cosign(data));
