#![no_main]
//! See `podlight::fuzzing::precompiled_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::precompiled_header(data));
