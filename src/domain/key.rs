//! `BlobKey` and `Extension`: the only ways a key or an extension enters the system, so every
//! layer below can trust them.

use std::fmt;

/// Why a request's key, extension or data was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InvalidInput {
    #[error("invalid key: {0}")]
    Key(&'static str),
    #[error("invalid extension: {0}")]
    Extension(&'static str),
    #[error("data is not valid base64: {0}")]
    Base64(String),
    #[error("invalid Content-Type: {0}")]
    ContentType(&'static str),
    #[error("invalid Idempotency-Key: {0}")]
    IdempotencyKey(&'static str),
}

/// The media type to store for a blob: the one the client sent (raw PUT), else the one its
/// extension implies, else `application/octet-stream`.
pub fn content_type(sent: Option<&str>, extension: &Extension) -> Result<String, InvalidInput> {
    let Some(sent) = sent.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(extension.content_type());
    };
    if sent.len() > 255 {
        return Err(InvalidInput::ContentType("longer than 255 characters"));
    }
    if !sent.bytes().all(|b| (0x20..0x7f).contains(&b)) || !sent.contains('/') {
        return Err(InvalidInput::ContentType("not a media type like image/png"));
    }
    Ok(sent.to_owned())
}

/// A blob key: what S3 can store and list, and a client can send. 1 to 1024 bytes of UTF-8;
/// no control characters and no U+FFFE or U+FFFF (S3's XML listings cannot carry them); not
/// only whitespace (the S3 client refuses such a key as missing); no leading `/`; no empty,
/// `.` or `..` segment between slashes (so it maps one-to-one onto an object key); segments of
/// at most 255 bytes (MinIO and file-system-backed S3 servers store a segment as a file name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

pub const MAX_KEY_BYTES: usize = 1024;
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Whether S3's XML (and a client's URL, percent-encoded) can carry `c`.
fn is_carried(c: char) -> bool {
    !c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}'
}

/// Checks the characters of a key or of a listing prefix (which may be any start of a key).
pub fn check_key_chars(text: &str) -> Result<(), InvalidInput> {
    match text.chars().find(|c| !is_carried(*c)) {
        None => Ok(()),
        Some(c) if c.is_control() => Err(InvalidInput::Key("the key contains a control character")),
        Some(_) => Err(InvalidInput::Key(
            "the key contains U+FFFE or U+FFFF, which S3 listings cannot carry",
        )),
    }
}

impl BlobKey {
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(InvalidInput::Key("the key is empty"));
        }
        if raw.len() > MAX_KEY_BYTES {
            return Err(InvalidInput::Key("the key is longer than 1024 bytes"));
        }
        check_key_chars(&raw)?;
        if raw.chars().all(char::is_whitespace) {
            return Err(InvalidInput::Key("the key is only whitespace"));
        }
        if raw.starts_with('/') {
            return Err(InvalidInput::Key("the key starts with '/'"));
        }
        let segments = || raw.split('/');
        if segments().any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(InvalidInput::Key(
                "the key has an empty, '.' or '..' segment between slashes",
            ));
        }
        if segments().any(|s| s.len() > MAX_SEGMENT_BYTES) {
            return Err(InvalidInput::Key(
                "a segment of the key (between slashes) is longer than 255 bytes",
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a URL path (`/blobs/<this>`): percent-encoded but for its slashes and
    /// unreserved characters, so the path decodes back to the key.
    pub fn url_path(&self) -> String {
        const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~')
            .remove(b'/');
        percent_encoding::utf8_percent_encode(&self.0, ESCAPED).to_string()
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file extension without the dot (`png`, `tar.gz`); may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extension(String);

impl Extension {
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        if raw.len() > 32 {
            return Err(InvalidInput::Extension(
                "the extension is longer than 32 characters",
            ));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(InvalidInput::Extension(
                "the extension may only hold A-Z, a-z, 0-9, '.', '_' and '-'",
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `Content-Type` S3 stores for this extension (`application/octet-stream` when unknown).
    pub fn content_type(&self) -> String {
        let last = self.0.rsplit('.').next().unwrap_or("");
        mime_guess::from_ext(last)
            .first_or_octet_stream()
            .essence_str()
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_nested_keys() {
        for ok in [
            "a",
            "photos/2024/cat.png",
            "ünïcode",
            "with space",
            "a.b",
            "x..y",
            "\u{fffd}\u{1f600}",
        ] {
            assert_eq!(BlobKey::parse(ok).unwrap().as_str(), ok);
        }
        assert!(BlobKey::parse(["k".repeat(255), "k".repeat(255)].join("/")).is_ok());
    }

    #[test]
    fn refuses_keys_that_do_not_map_to_one_object() {
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            ".",
            "..",
            "a/./b",
            "a/../b",
            "tab\there",
            "nl\n",
            " ",
            "\u{a0}",
            " \u{2003}\t",
            "a\u{fffe}",
            "\u{ffff}b",
            "nel\u{85}",
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(BlobKey::parse("k".repeat(1025)).is_err());
        assert!(BlobKey::parse(format!("a/{}", "s".repeat(256))).is_err());
        assert!(BlobKey::parse(format!("a/{}", "s".repeat(255))).is_ok());
    }

    #[test]
    fn whitespace_is_fine_inside_a_key_but_not_alone() {
        for ok in [" a", "a ", "a/ /b", "\u{a0}x"] {
            assert!(BlobKey::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn extensions_are_short_and_plain() {
        assert!(Extension::parse("").is_ok());
        assert!(Extension::parse("tar.gz").is_ok());
        assert!(Extension::parse("x".repeat(33)).is_err());
        assert!(Extension::parse("p/ng").is_err());
        assert!(Extension::parse("png ").is_err());
    }

    #[test]
    fn a_sent_content_type_wins_and_must_look_like_one() {
        let png = Extension::parse("png").unwrap();
        assert_eq!(content_type(None, &png).unwrap(), "image/png");
        assert_eq!(
            content_type(Some("text/plain; charset=utf-8"), &png).unwrap(),
            "text/plain; charset=utf-8"
        );
        assert!(content_type(Some("nonsense"), &png).is_err());
        assert!(content_type(Some("a/b\u{7f}"), &png).is_err());
    }

    #[test]
    fn content_type_follows_the_extension() {
        assert_eq!(Extension::parse("png").unwrap().content_type(), "image/png");
        assert_eq!(
            Extension::parse("tar.gz").unwrap().content_type(),
            "application/gzip"
        );
        assert_eq!(
            Extension::parse("").unwrap().content_type(),
            "application/octet-stream"
        );
    }
}
