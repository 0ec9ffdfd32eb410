//! Durations and sizes as settings take them: `5s`, `250ms`, `1h` (humantime's forms) and
//! `16MiB`, `64 MB` (bytesize's), or a bare integer in the unit the variable's name says
//! (`BLOBPROXY_CACHE_TTL_SECS=3600`, `BLOBPROXY_MAX_BLOB_BYTES=16777216`), the form every
//! release before accepted.

use std::time::Duration;

/// A duration whose bare integers are seconds.
pub fn seconds(text: &str) -> Result<Duration, String> {
    duration(text, Duration::from_secs)
}

/// A duration whose bare integers are milliseconds.
pub fn millis(text: &str) -> Result<Duration, String> {
    duration(text, Duration::from_millis)
}

fn duration(text: &str, unit: fn(u64) -> Duration) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(count) = text.parse::<u64>() {
        return Ok(unit(count));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (a duration: `30s`, `250ms`, `1h`, or a bare integer)"))
}

/// A size in bytes: a bare integer, or `16MiB`, `1.5 GiB`, `64MB`.
pub fn bytes(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size (bytes, or `16MiB`, `64MB`)"))?;
    usize::try_from(size.as_u64()).map_err(|_| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_integers_keep_the_unit_of_the_variable_and_units_are_read() {
        assert_eq!(seconds("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(seconds("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(seconds("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(millis("1000"), Ok(Duration::from_secs(1)));
        assert_eq!(millis("2s"), Ok(Duration::from_secs(2)));
        assert!(seconds("soon").is_err());
        assert!(seconds("-1").is_err());
        assert_eq!(bytes("16777216"), Ok(16 * 1024 * 1024));
        assert_eq!(bytes("16MiB"), Ok(16 * 1024 * 1024));
        assert_eq!(bytes("64 MB"), Ok(64_000_000));
        assert!(bytes("lots").is_err());
    }
}
