//! `Range` and `If-None-Match` headers: any text, any blob length; never a panic, and a part
//! served is inside the blob.
#![no_main]

use blobproxy::http::range::{RangeAnswer, etag, matches_etag, requested_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, Option<&str>, u32)| {
    let (header, if_range, total) = input;
    let total = u64::from(total);
    let tag = etag(7);
    match requested_range(Some(header), if_range, &tag, total) {
        RangeAnswer::Part(start, last) => assert!(start <= last && last < total),
        RangeAnswer::Full | RangeAnswer::Unsatisfiable => {}
    }
    let _ = matches_etag(header.split('\n'), &tag);
});
