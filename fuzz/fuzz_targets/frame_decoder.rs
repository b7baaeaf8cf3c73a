#![no_main]
// The deframer and link layer on arbitrary line noise: never panic, never hang.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hisbridge_protocol::fuzz::frames(data));
