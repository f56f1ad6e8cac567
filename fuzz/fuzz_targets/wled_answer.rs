#![no_main]
//! See `podlight::fuzzing::wled_answer`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::wled_answer(data));
