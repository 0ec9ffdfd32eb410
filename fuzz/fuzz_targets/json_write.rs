//! The JSON write body: any bytes give a write or a 4xx, never a panic; a write's bytes are
//! what its base64 says, within the size limit.
#![no_main]

use blobproxy::domain::encode_base64;
use blobproxy::http::json::parse_put;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|body: &[u8]| {
    match parse_put(body, MAX) {
        Ok((_key, _extension, bytes)) => {
            assert!(bytes.len() <= MAX);
            let data: serde_json::Value = serde_json::from_slice(body).unwrap();
            let sent = data["data"].as_str().unwrap().trim_end_matches('=');
            assert_eq!(encode_base64(&bytes).trim_end_matches('='), sent);
        }
        Err(e) => {
            use actix_web::ResponseError as _;
            assert!(e.status_code().is_client_error(), "{e}");
        }
    }
});
