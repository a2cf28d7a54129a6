#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xq::fuzzing::quantize_execute(data));
