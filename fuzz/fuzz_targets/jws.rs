#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaas_join_fuzz::jws(data));
