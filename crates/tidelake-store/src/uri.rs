//! Parsing of warehouse URIs into the backend they name.

use std::path::PathBuf;

use crate::error::{Result, StoreError};
use crate::path::normalize_prefix;

/// Where a warehouse lives, as parsed from its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A local folder; relative paths are resolved against the working directory.
    Local(PathBuf),
    /// A fresh in-memory store.
    Memory,
    /// A bucket and a key prefix ("" for the bucket root), without slashes at either end.
    S3 { bucket: String, prefix: String },
}

pub(crate) fn parse(uri: &str) -> Result<Location> {
    let invalid = |message: &str| StoreError::InvalidUri {
        uri: uri.to_string(),
        message: message.to_string(),
    };
    if uri.trim().is_empty() {
        return Err(invalid("the warehouse URI is empty"));
    }
    let Some((scheme, rest)) = split_scheme(uri) else {
        return Ok(Location::Local(PathBuf::from(uri)));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "file" => {
            if !rest.starts_with('/') {
                return Err(invalid(
                    "file URLs must hold an absolute local path (file:///abs/path)",
                ));
            }
            let url =
                url::Url::parse(uri).map_err(|e| invalid(&format!("not a valid file URL: {e}")))?;
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(invalid(
                    "file URLs must name a local path (file:///abs/path)",
                ));
            }
            let path = url.to_file_path().map_err(|()| {
                invalid("file URLs must hold an absolute local path (file:///abs/path)")
            })?;
            Ok(Location::Local(path))
        }
        "memory" => {
            if rest.trim_start_matches('/').is_empty() {
                Ok(Location::Memory)
            } else {
                Err(invalid(
                    "an in-memory warehouse is written 'memory://' with nothing after it",
                ))
            }
        }
        "s3" => {
            let Some(after) = rest.strip_prefix("//") else {
                return Err(invalid("S3 warehouses are written s3://bucket/prefix"));
            };
            let (bucket, prefix) = after.split_once('/').unwrap_or((after, ""));
            if bucket.is_empty() {
                return Err(invalid(
                    "the S3 bucket name is missing (s3://bucket/prefix)",
                ));
            }
            if bucket.contains(['?', '#', '@', ':']) {
                return Err(invalid(
                    "the S3 bucket name has characters S3 does not allow",
                ));
            }
            let prefix = normalize_prefix(prefix.trim_end_matches('/'))
                .map_err(|e| invalid(&e.to_string()))?;
            Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            })
        }
        other => Err(invalid(&format!(
            "unsupported scheme '{other}://' (use a local path, file://, memory:// or s3://)"
        ))),
    }
}

/// Splits `scheme:rest` when the URI starts with a URL scheme. A plain local
/// path (even one with ':' later on) has none.
fn split_scheme(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    let looks_like_scheme = scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    // Our own schemes are URLs however they continue ("file:/abs" is how
    // Hadoop writes file URLs); another "name:" is one only if a '/' follows.
    let known = ["file", "memory", "s3"]
        .iter()
        .any(|k| scheme.eq_ignore_ascii_case(k));
    let is_url = known || rest.starts_with('/');
    (looks_like_scheme && is_url).then_some((scheme, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_local() {
        assert_eq!(
            parse("./warehouse").unwrap(),
            Location::Local("./warehouse".into())
        );
        assert_eq!(parse("/tmp/wh").unwrap(), Location::Local("/tmp/wh".into()));
        assert_eq!(parse("wh:odd").unwrap(), Location::Local("wh:odd".into()));
    }

    #[test]
    fn file_urls_become_local_paths() {
        assert_eq!(
            parse("file:///tmp/wh").unwrap(),
            Location::Local("/tmp/wh".into())
        );
        assert_eq!(
            parse("file:/tmp/wh").unwrap(),
            Location::Local("/tmp/wh".into())
        );
        assert_eq!(
            parse("file:///tmp/a%20b").unwrap(),
            Location::Local("/tmp/a b".into())
        );
        assert!(matches!(
            parse("file://host/tmp"),
            Err(StoreError::InvalidUri { .. })
        ));
        assert!(matches!(
            parse("file:relative"),
            Err(StoreError::InvalidUri { .. })
        ));
    }

    #[test]
    fn memory_uri() {
        assert_eq!(parse("memory://").unwrap(), Location::Memory);
        assert_eq!(parse("memory:").unwrap(), Location::Memory);
        assert!(matches!(
            parse("memory://x"),
            Err(StoreError::InvalidUri { .. })
        ));
    }

    #[test]
    fn s3_uris() {
        assert_eq!(
            parse("s3://bucket").unwrap(),
            Location::S3 {
                bucket: "bucket".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            parse("s3://bucket/a/b/").unwrap(),
            Location::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        for bad in ["s3://", "s3:bucket", "s3://bucket/a//b", "s3://bucket/../x"] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, StoreError::InvalidUri { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_schemes_and_empty_uris_are_rejected() {
        for bad in ["", "  ", "hdfs://nn/wh", "oss://b/p", "gs://b"] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, StoreError::InvalidUri { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(&format!("'{bad}'")), "{err}");
        }
    }
}
