#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| client_credentials::fuzzing::token_response(data));
