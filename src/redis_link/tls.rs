//! TLS to Redis (`rediss://`): the certificates the settings' files hold, and a failed
//! connection told in one sentence that says what to fix (a certificate for another name, an
//! unknown CA, a server that wants a client certificate, a port without TLS) instead of
//! rustls's own words.

use anyhow::Context as _;
use redis::{ClientTlsConfig, RedisError, TlsCertificates};
use rustls::{AlertDescription, CertificateError};

use super::RedisTls;

/// The certificates of `tls`'s files; `None` when none is set (then `rediss://` trusts the
/// system's CAs and sends no client certificate).
pub(super) fn certificates(tls: &RedisTls) -> anyhow::Result<Option<TlsCertificates>> {
    let read = |path: &Option<std::path::PathBuf>, var: &str| {
        path.as_ref()
            .map(|p| std::fs::read(p).with_context(|| format!("cannot read {var}={}", p.display())))
            .transpose()
    };
    let root_cert = read(&tls.ca_file, "BLOBPROXY_REDIS_CA_FILE")?;
    let cert = read(&tls.client_cert_file, "BLOBPROXY_REDIS_CLIENT_CERT_FILE")?;
    let key = read(&tls.client_key_file, "BLOBPROXY_REDIS_CLIENT_KEY_FILE")?;
    let client_tls = match (cert, key) {
        (Some(client_cert), Some(client_key)) => Some(ClientTlsConfig {
            client_cert,
            client_key,
        }),
        _ => None,
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// A client of `url`, with `certificates` when there are some.
pub(super) fn client(
    url: &str,
    certificates: Option<&TlsCertificates>,
) -> redis::RedisResult<redis::Client> {
    match certificates {
        Some(certificates) => redis::Client::build_with_tls(url, certificates.clone()),
        None => redis::Client::open(url),
    }
}

/// The error of a connection to `what` that failed: what to fix when TLS is why, else
/// Redis's error.
pub(super) fn explained(e: RedisError, what: &str) -> anyhow::Error {
    match tls_failure(&e) {
        Some(why) => anyhow::anyhow!("cannot connect to {what}: {why}"),
        None => anyhow::Error::new(e).context(format!("cannot connect to {what}")),
    }
}

/// Why the TLS handshake failed, as what to fix, if it is why `e` happened.
fn tls_failure(e: &RedisError) -> Option<&'static str> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(rustls) = as_rustls(error) {
            return Some(what_to_fix(rustls));
        }
        source = error.source();
    }
    None
}

/// `e` as rustls's error, seen through the wrappers redis-rs puts around it (an `io::Error`
/// holding it, in an `Arc`).
fn as_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    if let Some(rustls) = e.downcast_ref::<rustls::Error>() {
        return Some(rustls);
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return as_rustls(io.get_ref()?);
    }
    let shared: &(dyn std::error::Error + 'static) = e.downcast_ref::<Shared>()?.as_ref();
    as_rustls(shared)
}

fn what_to_fix(e: &rustls::Error) -> &'static str {
    use rustls::Error::{AlertReceived, InappropriateMessage, InvalidCertificate, InvalidMessage};
    match e {
        InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            "the Redis server's TLS certificate is not for the host name in the URL (connect by a name the certificate holds)"
        }
        InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the Redis server's TLS certificate is signed by a CA blobproxy does not trust (set BLOBPROXY_REDIS_CA_FILE to that CA's certificate)"
        }
        InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            "the Redis server's TLS certificate has expired"
        }
        InvalidCertificate(_) => "the Redis server's TLS certificate is not valid",
        AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::HandshakeFailure,
        ) => {
            "the Redis server refused this client's TLS certificate or wants one (set BLOBPROXY_REDIS_CLIENT_CERT_FILE and BLOBPROXY_REDIS_CLIENT_KEY_FILE to one its CA signed)"
        }
        InvalidMessage(_) | InappropriateMessage { .. } => {
            "the server does not speak TLS on that port (use redis:// for a plain port, or the Redis server's tls-port)"
        }
        _ => "the TLS handshake with the Redis server failed",
    }
}
