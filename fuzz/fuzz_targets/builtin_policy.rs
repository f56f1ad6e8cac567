#![no_main]
//! See `podlight::fuzzing::builtin_policy`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::builtin_policy(data));
