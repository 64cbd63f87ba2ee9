#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgegemma_fuzz::runtime::chat_template(data));
