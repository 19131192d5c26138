#![no_main]
//! The `experiment_toml` readers (what they are fed: `descent_fuzz::exercise::run`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| descent_fuzz::exercise::run("experiment_toml", data));
