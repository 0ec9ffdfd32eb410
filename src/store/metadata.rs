//! The object metadata blobproxy writes with each object and reads back: its one schema.
//! Every blob carries its extension and its blobproxy version (so a cache miss rebuilds the
//! exact record); on a versioned bucket, the empty version a delete leaves also carries
//! `deleted` (see [`super::S3Store`]'s delete).

use std::collections::HashMap;

use super::ObjectInfo;

const EXTENSION: &str = "extension";
const VERSION: &str = "version";
const DELETED: &str = "deleted";

/// What a blob's object carries.
pub(super) fn of_blob(extension: &str, version: u64) -> HashMap<String, String> {
    HashMap::from([
        (EXTENSION.to_owned(), extension.to_owned()),
        (VERSION.to_owned(), version.to_string()),
    ])
}

/// What the empty version standing for the delete numbered `version` carries.
pub(super) fn of_delete(version: u64) -> HashMap<String, String> {
    HashMap::from([
        (VERSION.to_owned(), version.to_string()),
        (DELETED.to_owned(), "1".to_owned()),
    ])
}

/// The extension and version an object's metadata carries (0 when absent: an object written
/// by something else than blobproxy).
pub(super) fn object_info(metadata: Option<&HashMap<String, String>>) -> ObjectInfo {
    let get = |name: &str| metadata.and_then(|m| m.get(name));
    ObjectInfo {
        extension: get(EXTENSION).cloned().unwrap_or_default(),
        version: get(VERSION).and_then(|v| v.parse().ok()).unwrap_or(0),
    }
}

/// Whether an object is the mark a delete left on a versioned bucket: absent for reads.
pub(super) fn is_tombstone(metadata: Option<&HashMap<String, String>>) -> bool {
    metadata.is_some_and(|m| m.contains_key(DELETED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_reads_back_what_it_carries_and_is_no_tombstone() {
        let written = of_blob("png", 42);
        let info = object_info(Some(&written));
        assert_eq!((info.extension.as_str(), info.version), ("png", 42));
        assert!(!is_tombstone(Some(&written)));
    }

    #[test]
    fn a_delete_mark_is_a_tombstone_with_its_version() {
        let written = of_delete(7);
        assert!(is_tombstone(Some(&written)));
        assert_eq!(object_info(Some(&written)).version, 7);
    }

    #[test]
    fn an_object_written_by_something_else_has_version_0() {
        let info = object_info(None);
        assert_eq!((info.extension.as_str(), info.version), ("", 0));
        assert!(!is_tombstone(None));
    }
}
