#![no_main]
// Instruction JSON and amount parsing on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hisbridge_message::fuzz::instruction(data));
