#![no_main]
//! See `podlight::fuzzing::protobuf_watch`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| podlight::fuzzing::protobuf_watch(data));
