#![no_main]
//! The `checkpoint` readers (what they are fed: `descent_fuzz::exercise::run`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| descent_fuzz::exercise::run("checkpoint", data));
