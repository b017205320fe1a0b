#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| client_credentials_fuzzing::exchange_response(data));
