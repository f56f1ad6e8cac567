#![no_main]
//! See `podlight::fuzzing::oci_reference`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::oci_reference(data));
