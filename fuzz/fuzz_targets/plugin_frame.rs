#![no_main]
//! See `podlight::fuzzing::plugin_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::plugin_frame(data));
