//! Presigned URLs: a URL for one key, one method (`GET` or `PUT` on `/blobs/<key>`) and a time
//! limit, signed with a secret every replica shares (HMAC-SHA256), so its holder can read or
//! write that key without the API key. No state is kept: any replica checks a URL another made.
//!
//! The URL is `<public url>/blobs/<key>?method=PUT&expires=<unix seconds>&signature=<sig>`,
//! where `sig` is the unpadded base64url HMAC of `"<METHOD>\n<key>\n<expires>"`. Any other
//! query parameter (`wc`, `version`) is the caller's to add: it is not signed, and none of
//! them reaches another key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit as _, Mac as _};

use super::BlobKey;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The longest a presigned URL may live: a week, as S3's own.
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a presigned URL lets its holder do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum PresignedMethod {
    /// Read the blob (`GET` or `HEAD /blobs/<key>`).
    Get,
    /// Write the blob (`PUT /blobs/<key>`, the body as its bytes).
    Put,
}

impl PresignedMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PresignedMethod::Get => "GET",
            PresignedMethod::Put => "PUT",
        }
    }

    fn parse(method: &str) -> Option<Self> {
        match method {
            "GET" => Some(PresignedMethod::Get),
            "PUT" => Some(PresignedMethod::Put),
            _ => None,
        }
    }

    /// Whether a request by the HTTP `method` is what this URL was signed for.
    fn allows(self, method: &str) -> bool {
        match self {
            PresignedMethod::Get => method == "GET" || method == "HEAD",
            PresignedMethod::Put => method == "PUT",
        }
    }
}

/// A presigned URL and when it stops working.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Presigned {
    pub url: String,
    pub method: PresignedMethod,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// The signed parts of a request's URL, as sent.
#[derive(Debug, Default, Clone)]
pub struct SignedParts<'a> {
    pub method: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Why a presigned request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Changed, for another key or method, signed by another secret, or missing a part.
    #[error("{0}")]
    Invalid(String),
    #[error("this presigned URL expired at {}", rfc3339(*.0))]
    Expired(u64),
}

/// Signs and checks presigned URLs with the deployment's secret.
#[derive(Clone)]
pub struct Presigner {
    mac: HmacSha256,
}

impl Presigner {
    pub fn new(secret: &str) -> Self {
        Presigner {
            mac: HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size"),
        }
    }

    fn mac_of(&self, method: PresignedMethod, key: &str, expires: u64) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(format!("{}\n{key}\n{expires}", method.as_str()).as_bytes());
        mac
    }

    /// The URL under `base` (`https://blobs.example.com`) for `method` on `key`, valid for
    /// `lasting` from now.
    pub fn presign(
        &self,
        base: &str,
        method: PresignedMethod,
        key: &BlobKey,
        lasting: Duration,
    ) -> Presigned {
        self.presign_until(base, method, key, unix_seconds(SystemTime::now() + lasting))
    }

    /// The URL, valid until `expires` (Unix seconds).
    fn presign_until(
        &self,
        base: &str,
        method: PresignedMethod,
        key: &BlobKey,
        expires: u64,
    ) -> Presigned {
        let mac = self.mac_of(method, key.as_str(), expires);
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Presigned {
            url: format!(
                "{}/blobs/{}?method={}&expires={expires}&signature={signature}",
                base.trim_end_matches('/'),
                key.url_path(),
                method.as_str()
            ),
            method,
            expires_at: rfc3339(expires),
        }
    }

    /// Whether a request for `key` by the HTTP `method` may go ahead on the signed `parts` of
    /// its URL. The signature is checked first, so a changed expiry reads as changed.
    pub fn check(&self, parts: &SignedParts, method: &str, key: &str) -> Result<(), Refusal> {
        let invalid = |why: &str| Refusal::Invalid(why.to_owned());
        let (Some(signed_for), Some(expires), Some(signature)) =
            (parts.method, parts.expires, parts.signature)
        else {
            return Err(invalid(
                "a presigned URL needs method, expires and signature",
            ));
        };
        let signed_for = PresignedMethod::parse(signed_for)
            .ok_or_else(|| Refusal::Invalid(format!("method={signed_for} is not GET or PUT")))?;
        let expires: u64 = expires
            .parse()
            .map_err(|_| invalid("expires is not a number of seconds"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| invalid("the signature is not base64url"))?;
        // hmac's own comparison takes the same time wherever the bytes differ: the answer's
        // timing tells nothing of the right signature.
        self.mac_of(signed_for, key, expires)
            .verify_slice(&signature)
            .map_err(|_| {
                invalid(
                    "the signature does not match: the URL was changed, or signed for another key or with another secret",
                )
            })?;
        if !signed_for.allows(method) {
            return Err(Refusal::Invalid(format!(
                "this URL was signed for {}, not {method}",
                signed_for.as_str()
            )));
        }
        if unix_seconds(SystemTime::now()) > expires {
            return Err(Refusal::Expired(expires));
        }
        Ok(())
    }
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn rfc3339(unix_seconds: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_seconds)).to_string()
}

#[cfg(test)]
#[path = "presigned_tests.rs"]
mod tests;
