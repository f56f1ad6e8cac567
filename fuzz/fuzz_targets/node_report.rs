#![no_main]
//! See `podlight::fuzzing::node_report`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::node_report(data));
