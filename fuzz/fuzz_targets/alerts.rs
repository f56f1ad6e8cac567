#![no_main]
//! See `podlight::fuzzing::alerts`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::alerts(data));
