//! Consumers: Paimon's `consumer/consumer-{id}` files, each holding
//! `{"nextSnapshot": N}`, the next snapshot a streaming reader will read.
//! Expiration keeps snapshot N and everything after it (see
//! `min_consumer_snapshot`), so a reader that restarts resumes exactly where
//! it stopped. `consumer.expiration-time` drops consumers that have not
//! recorded progress for that long, so an abandoned reader does not pin
//! snapshots forever.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tidelake_store::StoreError;

use crate::error::{EngineError, Result};
use crate::snapshots::file_name;
use crate::table::Table;

const CONSUMER_PREFIX: &str = "consumer-";

/// The option naming how long a consumer may stay idle before it is removed.
const CONSUMER_EXPIRATION_TIME: &str = "consumer.expiration-time";

#[derive(Serialize, Deserialize)]
struct ConsumerFile {
    #[serde(rename = "nextSnapshot")]
    next_snapshot: i64,
}

/// A consumer id is one path segment of Paimon's layout.
fn validate_consumer_id(id: &str) -> Result<()> {
    let bad = id.trim().is_empty()
        || id != id.trim()
        || id.starts_with('.')
        || id.contains(['/', '\\'])
        || id.chars().any(char::is_control);
    if bad {
        return Err(EngineError::invalid(format!(
            "invalid consumer id '{id}': it must be a non-blank name without '/', '\\', control characters or a leading '.'"
        )));
    }
    Ok(())
}

impl Table {
    pub(crate) fn consumer_dir(&self) -> String {
        self.paths().consumer_dir()
    }

    fn consumer_path(&self, id: &str) -> String {
        format!("{}/{CONSUMER_PREFIX}{id}", self.consumer_dir())
    }

    /// The next snapshot consumer `id` will read; `Ok(None)` when there is no
    /// such consumer.
    pub async fn consumer(&self, id: &str) -> Result<Option<i64>> {
        validate_consumer_id(id)?;
        let path = self.consumer_path(id);
        match self.store.get(&path).await {
            Ok(bytes) => parse_consumer(&path, &bytes).map(Some),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records that consumer `id` will next read snapshot `next_snapshot`
    /// (an atomic replace: a concurrent expiration sees the old or the new
    /// position, never a torn file).
    pub async fn record_consumer(&self, id: &str, next_snapshot: i64) -> Result<()> {
        validate_consumer_id(id)?;
        let path = self.consumer_path(id);
        let json = serde_json::to_string(&ConsumerFile { next_snapshot }).map_err(|e| {
            EngineError::Corrupt {
                path: path.clone(),
                message: format!("cannot encode consumer: {e}"),
            }
        })?;
        self.store.put(&path, Bytes::from(json)).await?;
        tracing::debug!(table = %self.id, consumer = id, next_snapshot, "recorded consumer");
        Ok(())
    }

    /// Removes consumer `id` (it no longer pins snapshots); `false` when it
    /// did not exist.
    pub async fn delete_consumer(&self, id: &str) -> Result<bool> {
        validate_consumer_id(id)?;
        let path = self.consumer_path(id);
        if !self.store.exists(&path).await? {
            return Ok(false);
        }
        self.store.delete(&path).await?;
        Ok(true)
    }

    /// Every consumer and its next snapshot, by id.
    pub async fn list_consumers(&self) -> Result<Vec<(String, i64)>> {
        let entries = match self.store.list(&self.consumer_dir()).await {
            Ok(e) => e,
            Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for e in entries {
            let Some(id) = file_name(&e.path).strip_prefix(CONSUMER_PREFIX) else {
                continue;
            };
            match self.store.get(&e.path).await {
                Ok(bytes) => out.push((id.to_string(), parse_consumer(&e.path, &bytes)?)),
                Err(StoreError::NotFound { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes consumers whose file was last written before
    /// `now_millis - consumer.expiration-time`. Without that option nothing
    /// expires. Returns the ids removed.
    pub async fn expire_consumers(&self, now_millis: i64) -> Result<Vec<String>> {
        let Some(text) = self.schema().options.get(CONSUMER_EXPIRATION_TIME) else {
            return Ok(Vec::new());
        };
        let max_idle = crate::options::parse_duration_millis(text).map_err(|e| {
            EngineError::invalid(format!("option '{CONSUMER_EXPIRATION_TIME}': {e}"))
        })?;
        let cutoff = now_millis.saturating_sub(max_idle);
        let entries = match self.store.list(&self.consumer_dir()).await {
            Ok(e) => e,
            Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut removed = Vec::new();
        for e in entries {
            let Some(id) = file_name(&e.path).strip_prefix(CONSUMER_PREFIX) else {
                continue;
            };
            if e.last_modified.timestamp_millis() < cutoff {
                self.store.delete(&e.path).await?;
                tracing::info!(table = %self.id, consumer = id, "consumer expired ({CONSUMER_EXPIRATION_TIME} = {text})");
                removed.push(id.to_string());
            }
        }
        Ok(removed)
    }
}

fn parse_consumer(path: &str, bytes: &[u8]) -> Result<i64> {
    let consumer: ConsumerFile =
        serde_json::from_slice(bytes).map_err(|err| EngineError::Corrupt {
            path: path.to_string(),
            message: format!("not a consumer file ({{\"nextSnapshot\": N}}): {err}"),
        })?;
    Ok(consumer.next_snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_ids_are_one_path_segment() {
        assert!(validate_consumer_id("job-1").is_ok());
        assert!(validate_consumer_id("my job").is_ok());
        for bad in ["", " ", "a/b", "..", ".hidden", "x\n", " lead"] {
            assert!(validate_consumer_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn consumer_files_are_paimon_json() {
        let json = serde_json::to_string(&ConsumerFile { next_snapshot: 7 }).unwrap();
        assert_eq!(json, r#"{"nextSnapshot":7}"#);
        assert_eq!(
            parse_consumer("c", b"{\n  \"nextSnapshot\" : 12\n}").unwrap(),
            12
        );
        assert!(parse_consumer("c", b"{}").is_err());
    }
}
