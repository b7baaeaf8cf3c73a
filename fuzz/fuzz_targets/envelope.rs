#![no_main]
// Envelope opening on arbitrary bytes: an error or a plaintext, never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hisbridge_message::fuzz::envelope(data));
