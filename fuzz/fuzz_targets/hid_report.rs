#![no_main]
//! See `podlight::fuzzing::hid_report`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::hid_report(data));
