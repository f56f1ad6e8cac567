#![no_main]
//! See `podlight::fuzzing::cluster_model`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::cluster_model(data));
