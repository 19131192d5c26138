#![no_main]
//! The `npz` readers (what they are fed: `descent_fuzz::exercise::run`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| descent_fuzz::exercise::run("npz", data));
