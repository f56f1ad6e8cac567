#![no_main]
//! See `podlight::fuzzing::registry_documents`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::registry_documents(data));
