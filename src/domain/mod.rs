//! What a blob is, independent of HTTP, Redis and S3: validated keys and extensions, and the
//! base64 form the JSON API uses, and the signing of presigned URLs ([`presigned`]). Pure
//! code, unit-tested here.

mod key;
pub mod presigned;

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

/// A client's name for one write (its `Idempotency-Key` header; nginx sends its own request
/// id there): the cache applies a write that names a request once, and answers a repeat of it
/// within a minute with the first one's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_BYTES: usize = 255;

    /// The header's value: 1 to 255 visible ASCII characters, in double quotes or not (the
    /// IETF draft sends a quoted string; most clients send the bare token).
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let raw = raw.trim();
        let bare = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(raw);
        if bare.is_empty() || bare.len() > Self::MAX_BYTES {
            return Err(InvalidInput::IdempotencyKey(
                "it must be 1 to 255 characters",
            ));
        }
        if !bare.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidInput::IdempotencyKey(
                "it may hold only visible ASCII characters",
            ));
        }
        Ok(Self(bare.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_visible_ascii_quoted_or_not() {
        let key = IdempotencyKey::parse("\"8e03978e-40d5\"").unwrap();
        assert_eq!(key.as_str(), "8e03978e-40d5");
        assert_eq!(IdempotencyKey::parse("abc").unwrap().as_str(), "abc");
        for bad in ["", "\"\"", "a b", "caf\u{e9}", &"x".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

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
