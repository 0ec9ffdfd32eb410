//! How service errors become answers: codes, sentences, what the log keeps.

use super::*;

#[test]
fn service_errors_map_to_their_codes_and_keep_the_key() {
    let e: ApiError = ServiceError::NotFound("a/b".into()).into();
    assert_eq!(e.code(), NotFound);
    assert!(e.to_string().contains("a/b"));
    let e: ApiError = ServiceError::UploadInterrupted("k".into()).into();
    assert_eq!(e.code(), UploadInterrupted);
    let e: ApiError = ServiceError::IncompleteBody("eof".into()).into();
    assert_eq!((e.code(), e.status_code().as_u16()), (IncompleteBody, 400));
    let e: ApiError = ServiceError::RedisFull("OOM".into()).into();
    assert_eq!((e.code(), e.status_code().as_u16()), (CacheFull, 503));
}

#[test]
fn the_log_gets_each_layers_words_of_a_failure_and_the_client_one_sentence() {
    let e: ApiError = ServiceError::RedisUnavailable("refused".into()).into();
    assert_eq!(e.code(), RedisUnavailable);
    assert_eq!(e.detail(), Some("Redis is unavailable: refused"));
    assert!(!e.to_string().contains("refused"), "{e}");
}

#[test]
fn a_dependencys_own_words_go_to_the_log_not_the_client() {
    let dump = "dispatch failure: ConnectorError { kind: Io, source: 127.0.0.1:9000 }";
    let e: ApiError = ServiceError::S3Unavailable(dump.into()).into();
    assert_eq!(e.code(), S3Unavailable);
    assert!(!e.to_string().contains("127.0.0.1"), "{e}");
    assert!(e.detail().unwrap().contains(dump));
}

#[test]
fn unavailable_answers_say_when_to_retry_and_readiness_does_not() {
    let e = ApiError::new(S3Unavailable, "down");
    assert_eq!(
        e.error_response().headers().get("retry-after").unwrap(),
        "1"
    );
    let e = ApiError::new(NotReady, "down");
    assert!(!e.error_response().headers().contains_key("retry-after"));
}
