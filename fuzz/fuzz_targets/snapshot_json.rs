#![no_main]
//! See `podlight::fuzzing::snapshot_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::snapshot_json(data));
