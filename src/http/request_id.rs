//! Request ids: the caller's `X-Request-Id` when it sent a usable one (nginx sets one), else a
//! new one, so a request can be followed from nginx's log to the replica's.

/// A new request id: a lower-case ULID (sortable by time, unique without coordination).
pub fn new_request_id() -> String {
    ulid::Ulid::generate().to_string().to_lowercase()
}

/// The id to log and echo for a request that sent `sent`.
pub fn request_id(sent: Option<&str>) -> String {
    sent.filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_id_is_kept_and_a_missing_or_huge_one_replaced() {
        assert_eq!(request_id(Some("abc")), "abc");
        let made = request_id(None);
        assert_eq!(made.len(), 26);
        assert_ne!(made, request_id(None));
        assert_eq!(request_id(Some(&"x".repeat(200))).len(), 26);
        assert_eq!(request_id(Some("")).len(), 26);
    }
}
