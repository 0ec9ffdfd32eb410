use std::time::Duration;

use super::*;

const SECRET: &str = "a-secret-of-thirty-two-characters!";

/// The signed parts of a URL's query.
fn parts_of(url: &str) -> [String; 3] {
    let query = url.split_once('?').unwrap().1;
    let part = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap()
            .to_owned()
    };
    [part("method"), part("expires"), part("signature")]
}

fn signed(parts: &[String; 3]) -> SignedParts<'_> {
    SignedParts {
        method: Some(&parts[0]),
        expires: Some(&parts[1]),
        signature: Some(&parts[2]),
    }
}

fn is_invalid(result: Result<(), Refusal>, why: &str) -> bool {
    matches!(result, Err(Refusal::Invalid(msg)) if msg.contains(why))
}

#[test]
fn a_url_works_for_its_key_and_method_until_it_expires() {
    let presigner = Presigner::new(SECRET);
    let key = BlobKey::parse("photos/a cat?.png").unwrap();
    let url = presigner.presign(
        "https://blobs.example.com/",
        PresignedMethod::Put,
        &key,
        Duration::from_secs(60),
    );
    assert!(
        url.url.starts_with(
            "https://blobs.example.com/blobs/photos/a%20cat%3F.png?method=PUT&expires="
        ),
        "{}",
        url.url
    );
    let parts = parts_of(&url.url);
    presigner
        .check(&signed(&parts), "PUT", key.as_str())
        .unwrap();
    assert!(is_invalid(
        presigner.check(&signed(&parts), "GET", key.as_str()),
        "signed for PUT, not GET"
    ));
    assert!(is_invalid(
        presigner.check(&signed(&parts), "PUT", "photos/another"),
        "does not match"
    ));
    // Another secret, a later expiry, another method named: the signature no longer matches.
    let other = Presigner::new(&SECRET.repeat(2));
    assert!(is_invalid(
        other.check(&signed(&parts), "PUT", key.as_str()),
        "does not match"
    ));
    let mut later = parts.clone();
    later[1] = (unix_seconds(SystemTime::now()) + 3600).to_string();
    assert!(is_invalid(
        presigner.check(&signed(&later), "PUT", key.as_str()),
        "does not match"
    ));
    let mut as_get = parts.clone();
    as_get[0] = "GET".into();
    assert!(is_invalid(
        presigner.check(&signed(&as_get), "GET", key.as_str()),
        "does not match"
    ));
}

#[test]
fn an_expired_url_is_refused_as_expired_and_a_get_url_allows_head() {
    let presigner = Presigner::new(SECRET);
    let key = BlobKey::parse("k").unwrap();
    let a_minute_ago = unix_seconds(SystemTime::now()) - 60;
    let gone = presigner.presign_until("http://h", PresignedMethod::Get, &key, a_minute_ago);
    let refused = presigner.check(&signed(&parts_of(&gone.url)), "GET", "k");
    assert_eq!(refused, Err(Refusal::Expired(a_minute_ago)));
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .starts_with("this presigned URL expired at 20")
    );
    let fresh = presigner.presign(
        "http://h",
        PresignedMethod::Get,
        &key,
        Duration::from_secs(60),
    );
    let parts = parts_of(&fresh.url);
    presigner.check(&signed(&parts), "HEAD", "k").unwrap();
    assert!(is_invalid(
        presigner.check(&signed(&parts), "DELETE", "k"),
        "not DELETE"
    ));
}

#[test]
fn a_url_missing_a_part_or_with_a_malformed_one_is_refused() {
    let presigner = Presigner::new(SECRET);
    let lacking = SignedParts {
        signature: Some("abc"),
        ..SignedParts::default()
    };
    assert!(is_invalid(
        presigner.check(&lacking, "GET", "k"),
        "needs method, expires and signature"
    ));
    let bad = |method, expires, signature| SignedParts {
        method: Some(method),
        expires: Some(expires),
        signature: Some(signature),
    };
    assert!(is_invalid(
        presigner.check(&bad("POST", "1", "abc"), "POST", "k"),
        "not GET or PUT"
    ));
    assert!(is_invalid(
        presigner.check(&bad("GET", "soon", "abc"), "GET", "k"),
        "not a number"
    ));
    assert!(is_invalid(
        presigner.check(&bad("GET", "1", "a+b/"), "GET", "k"),
        "not base64url"
    ));
}
