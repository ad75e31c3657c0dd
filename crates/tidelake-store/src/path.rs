//! Relative warehouse paths: validation and mapping to object_store paths.
//!
//! A relative path maps to the object key (or file name) with exactly the same
//! characters: `dt=a%2Fb/x` is stored as `dt=a%2Fb/x`, never re-encoded, so
//! files written by other Paimon implementations are found under the names
//! they chose.

use object_store::path::Path;

use crate::error::{Result, StoreError};
use crate::local::is_temporary_name;

/// Name of the zero-byte object that stands for a folder on object stores
/// (see [`WarehouseStore::create_dir`](crate::WarehouseStore::create_dir)).
/// Hidden from listings and reserved: no path may use it.
pub const DIR_MARKER: &str = ".tidelake-keep";

/// Checks a path that names an object.
pub(crate) fn validate_object_path(rel: &str) -> Result<()> {
    if rel.is_empty() {
        return Err(StoreError::invalid_path(
            rel,
            "an object path must not be empty",
        ));
    }
    if rel.ends_with('/') {
        return Err(StoreError::invalid_path(
            rel,
            "an object path must not end with '/'",
        ));
    }
    validate_segments(rel)?;
    if let Some(name) = rel.rsplit('/').next() {
        if is_local_staging_name(name) {
            return Err(StoreError::invalid_path(
                rel,
                "a file name ending in '#' and digits is reserved for in-flight local writes",
            ));
        }
        if is_temporary_name(name) {
            return Err(StoreError::invalid_path(
                rel,
                "a file name like '.name.tmp' is reserved for in-flight writes",
            ));
        }
    }
    Ok(())
}

/// Checks a directory prefix and returns it without its optional trailing
/// '/'. The empty prefix is the warehouse root.
pub(crate) fn normalize_prefix(rel: &str) -> Result<&str> {
    let trimmed = rel.strip_suffix('/').unwrap_or(rel);
    if trimmed.is_empty() {
        if rel.is_empty() {
            return Ok("");
        }
        return Err(StoreError::invalid_path(
            rel,
            "paths are relative to the warehouse root and must not start with '/'",
        ));
    }
    validate_segments(trimmed)?;
    Ok(trimmed)
}

fn validate_segments(rel: &str) -> Result<()> {
    if rel.starts_with('/') {
        return Err(StoreError::invalid_path(
            rel,
            "paths are relative to the warehouse root and must not start with '/'",
        ));
    }
    for segment in rel.split('/') {
        match segment {
            "" => return Err(StoreError::invalid_path(rel, "empty path segment ('//')")),
            "." | ".." => {
                return Err(StoreError::invalid_path(
                    rel,
                    format!("'{segment}' segments are not allowed"),
                ))
            }
            DIR_MARKER => {
                return Err(StoreError::invalid_path(
                    rel,
                    format!("'{DIR_MARKER}' is reserved for folder markers"),
                ))
            }
            _ => {}
        }
        if let Some(c) = segment.chars().find(|c| c.is_control()) {
            return Err(StoreError::invalid_path(
                rel,
                format!("control character {c:?} is not allowed"),
            ));
        }
    }
    Ok(())
}

/// object_store's local backend writes `name#N` staging files and hides them
/// from listings, so such names cannot be real objects.
fn is_local_staging_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((_, suffix)) => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// True for names that listings hide: folder markers and in-flight temporary files.
pub(crate) fn is_hidden(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name == DIR_MARKER || is_temporary_name(name)
}

/// Joins the store's root prefix and an already validated relative path.
pub(crate) fn join(root: &Path, rel: &str) -> Path {
    let joined = match (root.as_ref(), rel) {
        (root, "") => root.to_string(),
        ("", rel) => rel.to_string(),
        (root, rel) => format!("{root}/{rel}"),
    };
    // Validated paths always parse; the fallback (which percent-encodes odd
    // characters) only serves unvalidated input to `full_path`.
    Path::parse(&joined).unwrap_or_else(|_| Path::from(joined.as_str()))
}

/// The relative path of a backend location, or None when it lies outside `root`.
pub(crate) fn relative(root: &Path, location: &Path) -> Option<String> {
    let parts = location.prefix_match(root)?;
    let segments: Vec<String> = parts.map(|part| part.as_ref().to_string()).collect();
    Some(segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_object_paths() {
        for ok in [
            "a",
            "db.db/t/snapshot/snapshot-1",
            "dt=a%2Fb/bucket-0/data 1.parquet",
            "x#y",
            "x#",
            "#12a",
            "a\\b",
        ] {
            validate_object_path(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn invalid_object_paths_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("/abs", "start with '/'"),
            ("dir/", "end with '/'"),
            ("a//b", "empty path segment"),
            ("a/../b", "'..'"),
            ("./a", "'.'"),
            ("..", "'..'"),
            ("a/\nb", "control character"),
            ("a/b#12", "reserved"),
            ("db.db/.tidelake-keep", "reserved"),
            ("t/snapshot/.snapshot-1.abc.tmp", "reserved"),
        ] {
            let err = validate_object_path(bad).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(why), "{bad:?}: {message}");
            assert!(matches!(err, StoreError::InvalidPath { ref path, .. } if path == bad));
        }
    }

    #[test]
    fn prefixes_allow_root_and_one_trailing_slash() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("a/b/").unwrap(), "a/b");
        assert_eq!(normalize_prefix("a/b").unwrap(), "a/b");
        for bad in ["/", "/a", "a//", "a/../b", "a/./b"] {
            assert!(normalize_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn join_and_relative_keep_the_characters() {
        let root = Path::parse("ware/house").unwrap();
        let full = join(&root, "dt=a%2Fb/x#1y");
        assert_eq!(full.as_ref(), "ware/house/dt=a%2Fb/x#1y");
        assert_eq!(relative(&root, &full).as_deref(), Some("dt=a%2Fb/x#1y"));
        assert_eq!(join(&root, "").as_ref(), "ware/house");
        assert_eq!(join(&Path::default(), "a/b").as_ref(), "a/b");
        assert_eq!(relative(&root, &Path::parse("elsewhere/x").unwrap()), None);
        assert_eq!(
            relative(&root, &Path::parse("ware/housex/y").unwrap()),
            None
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9=%#_. -]{1,12}".prop_filter("reserved segment", |s| {
            s != "."
                && s != ".."
                && s != DIR_MARKER
                && !is_local_staging_name(s)
                && !is_temporary_name(s)
        })
    }

    proptest! {
        #[test]
        fn valid_paths_round_trip(segments in prop::collection::vec(segment(), 1..6), root in prop::collection::vec(segment(), 0..3)) {
            let rel = segments.join("/");
            validate_object_path(&rel).unwrap();
            let root = join(&Path::default(), &root.join("/"));
            let full = join(&root, &rel);
            prop_assert_eq!(relative(&root, &full), Some(rel));
        }

        #[test]
        fn dot_dot_anywhere_is_rejected(mut segments in prop::collection::vec(segment(), 0..5), at in 0usize..5) {
            let at = at.min(segments.len());
            segments.insert(at, "..".to_string());
            let rel = segments.join("/");
            prop_assert!(validate_object_path(&rel).is_err());
            prop_assert!(normalize_prefix(&rel).is_err());
        }
    }
}
