//! Keys from a URL path: whatever the path, parsing never panics, and a key it accepts is one
//! the key rules accept, whose percent-encoded form parses back to the same key.
#![no_main]

use blobproxy::domain::BlobKey;
use blobproxy::http::key_from_path;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = key_from_path(path) {
        assert!(BlobKey::parse(key.as_str()).is_ok());
        let encoded: Vec<String> = key
            .as_str()
            .split('/')
            .map(|s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string())
            .collect();
        let again = key_from_path(&format!("/blobs/{}", encoded.join("/"))).unwrap();
        assert_eq!(again, key);
    }
    // The raw text as a key: accepted keys hold the rules S3 needs.
    if let Ok(key) = BlobKey::parse(path) {
        let key = key.as_str();
        assert!(!key.is_empty() && key.len() <= 1024);
        assert!(!key.chars().all(char::is_whitespace));
        assert!(
            !key.chars()
                .any(|c| c.is_control() || c == '\u{fffe}' || c == '\u{ffff}')
        );
        assert!(
            key.split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".." && s.len() <= 255)
        );
    }
});
