//! Conditional and partial reads of the raw path: the ETag (a blob's version), `If-None-Match`,
//! and single `Range` requests. Pure functions of header values.

use std::str::FromStr as _;

use actix_web::http::header::{ByteRangeSpec, Range};

/// A strong validator: one version of a key is one exact byte sequence.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// Whether any `If-None-Match` value matches `etag` (weak comparison, as RFC 9110 asks).
pub fn matches_etag<'a>(if_none_match: impl Iterator<Item = &'a str>, etag: &str) -> bool {
    if_none_match
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == "*" || v == etag)
}

#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    Full,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// One byte range is served as 206; several ranges, a stale `If-Range` or a malformed header
/// get the whole blob (as RFC 9110 allows).
pub fn requested_range(
    range: Option<&str>,
    if_range: Option<&str>,
    etag: &str,
    total: u64,
) -> RangeAnswer {
    let Some(raw) = range else {
        return RangeAnswer::Full;
    };
    if if_range.is_some_and(|v| v != etag) {
        return RangeAnswer::Full;
    }
    let Ok(Range::Bytes(specs)) = Range::from_str(raw) else {
        return RangeAnswer::Full;
    };
    let [spec]: [ByteRangeSpec; 1] = match specs.try_into() {
        Ok(one) => one,
        Err(_) => return RangeAnswer::Full,
    };
    match spec.to_satisfiable_range(total) {
        Some((start, end)) => RangeAnswer::Part(start, end),
        None => RangeAnswer::Unsatisfiable,
    }
}

/// Bytes `start..end` of a stream of chunks, passed on as they arrive (a range of a large
/// blob read from S3; the parts before it are read and dropped).
pub fn byte_range<E>(
    chunks: impl futures::Stream<Item = Result<bytes::Bytes, E>>,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, E>> {
    use futures::StreamExt as _;
    chunks
        .scan(0u64, move |offset, chunk| {
            let next = match chunk {
                Err(e) => Some(Some(Err(e))),
                Ok(chunk) => {
                    let (from, to) = (*offset, *offset + chunk.len() as u64);
                    *offset = to;
                    let (low, high) = (start.max(from), end.min(to));
                    if from >= end {
                        None
                    } else if low >= high {
                        Some(None)
                    } else {
                        Some(Some(Ok(
                            chunk.slice((low - from) as usize..(high - from) as usize)
                        )))
                    }
                }
            };
            std::future::ready(next)
        })
        .filter_map(std::future::ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    #[test]
    fn one_range_is_served_in_part() {
        let etag = etag(7);
        assert_eq!(requested_range(None, None, &etag, 10), RangeAnswer::Full);
        let part = |r| requested_range(Some(r), None, &etag, 10);
        assert_eq!(part("bytes=0-3"), RangeAnswer::Part(0, 3));
        assert_eq!(part("bytes=-2"), RangeAnswer::Part(8, 9));
        assert_eq!(part("bytes=5-"), RangeAnswer::Part(5, 9));
        assert_eq!(part("bytes=5-99"), RangeAnswer::Part(5, 9));
        assert_eq!(part("bytes=10-"), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn several_ranges_junk_or_a_stale_if_range_get_the_whole_blob() {
        let etag = etag(7);
        assert_eq!(
            requested_range(Some("bytes=0-1,4-5"), None, &etag, 10),
            RangeAnswer::Full
        );
        assert_eq!(
            requested_range(Some("lines=1"), None, &etag, 10),
            RangeAnswer::Full
        );
        assert_eq!(
            requested_range(Some("bytes=0-1"), Some("\"6\""), &etag, 10),
            RangeAnswer::Full
        );
        assert_eq!(
            requested_range(Some("bytes=0-1"), Some("\"7\""), &etag, 10),
            RangeAnswer::Part(0, 1)
        );
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_stars() {
        let etag = etag(7);
        assert!(matches_etag(["\"7\""].into_iter(), &etag));
        assert!(matches_etag(["W/\"7\""].into_iter(), &etag));
        assert!(matches_etag(["\"1\", \"7\""].into_iter(), &etag));
        assert!(matches_etag(["*"].into_iter(), &etag));
        assert!(!matches_etag(["\"8\""].into_iter(), &etag));
        assert!(!matches_etag(std::iter::empty(), &etag));
    }

    #[tokio::test]
    async fn byte_range_cuts_across_chunk_boundaries() {
        let chunks =
            ["abc", "def", "ghi"].map(|c| Ok::<_, ()>(bytes::Bytes::from_static(c.as_bytes())));
        let cut: Vec<_> = byte_range(futures::stream::iter(chunks), 2, 7)
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(cut.concat(), b"cdefg");
    }
}
