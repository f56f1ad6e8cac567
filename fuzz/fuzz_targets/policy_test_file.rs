#![no_main]
//! See `podlight::fuzzing::policy_test_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::policy_test_file(data));
