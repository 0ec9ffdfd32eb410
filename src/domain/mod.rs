//! What a blob is, independent of HTTP, Redis and S3: validated keys and extensions, and the
//! base64 form the JSON API uses. Pure code, unit-tested here.

mod key;

pub use key::{BlobKey, Extension, InvalidInput, MAX_KEY_BYTES, check_key_chars, content_type};

use base64::Engine as _;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig, general_purpose};

/// Standard alphabet; padding optional on input so `"YQ"` and `"YQ=="` both decode, always
/// written on output.
const BASE64_IN: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Decodes the `data` field of a PUT. The caller checks the size limit.
pub fn decode_base64(data: &str) -> Result<Vec<u8>, InvalidInput> {
    BASE64_IN
        .decode(data)
        .map_err(|e| InvalidInput::Base64(e.to_string()))
}

/// Encodes blob bytes for the JSON GET response.
pub fn encode_base64(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

/// Upper bound of a base64 text that can hold `max_bytes` decoded bytes.
pub fn base64_len(max_bytes: usize) -> usize {
    max_bytes.div_ceil(3) * 4
}

/// A blob as the cache and the store hold it: bytes, extension, media type and the version that
/// wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub data: bytes::Bytes,
    pub extension: String,
    /// What `GET /blobs/<key>` answers as `Content-Type` (and S3 stores).
    pub content_type: String,
    /// Grows with every write of any key (microseconds of Redis time, made strictly increasing),
    /// so a newer write of a key always has a larger version, even after a Redis restart.
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_with_and_without_padding() {
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YQ").unwrap(), b"a");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(encode_base64(b"a"), "YQ==");
    }

    #[test]
    fn junk_base64_is_an_error_not_empty_bytes() {
        assert!(matches!(decode_base64("@@@"), Err(InvalidInput::Base64(_))));
        assert!(decode_base64("a b").is_err());
        assert!(decode_base64("Y").is_err());
    }

    #[test]
    fn base64_len_covers_the_limit() {
        assert_eq!(base64_len(3), 4);
        assert_eq!(base64_len(4), 8);
        let max = vec![0u8; 1000];
        assert_eq!(encode_base64(&max).len(), base64_len(1000));
    }
}
