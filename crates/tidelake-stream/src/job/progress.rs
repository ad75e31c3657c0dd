//! A job's progress: the next source snapshot to read, recorded in the
//! properties of the sink snapshot that holds the output of everything
//! before it (`tidelake.job.<job>.<db>.<table>` = snapshot id).
//!
//! The engine carries these properties into every later snapshot, so the
//! latest sink snapshot normally holds them; snapshots committed by other
//! engines do not, hence the walk back to the newest one that does.

use std::collections::BTreeMap;

use tidelake_engine::commit::{PropertyFence, CARRIED_PROPERTY_PREFIX};
use tidelake_engine::{Identifier, Table};

use tidelake_sql::{Result, SqlError};

/// The property that records `job`'s progress through `source`.
pub(crate) fn progress_key(job: &str, source: &Identifier) -> String {
    format!(
        "{CARRIED_PROPERTY_PREFIX}{job}.{}.{}",
        source.database, source.table
    )
}

/// Job names are part of property keys and of messages: plain words only.
pub(crate) fn check_job_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(SqlError::InvalidParameter(format!(
            "job name '{name}': use 1 to 128 letters, digits, '_' or '-'"
        )))
    }
}

/// What the sink says about a job, as of one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    /// The latest sink snapshot when it was read.
    pub read_at: Option<i64>,
    /// The next source snapshot to read, if the job ever committed.
    pub next: Option<i64>,
    /// The sink snapshot that recorded it.
    pub recorded_in: Option<i64>,
    /// That snapshot's properties (a window job's watermark is among them).
    pub properties: BTreeMap<String, String>,
}

impl Progress {
    /// The commit precondition: nobody recorded other progress since.
    pub fn fence(&self, key: &str) -> PropertyFence {
        PropertyFence {
            read_at: self.read_at,
            expected: BTreeMap::from([(key.to_string(), self.next.map(|n| n.to_string()))]),
        }
    }
}

/// Reads the newest progress of `key` in `sink`, walking back from the
/// latest snapshot.
pub(crate) async fn read_progress(sink: &Table, key: &str) -> Result<Progress> {
    let snapshots = sink.snapshots();
    let Some(latest) = snapshots.latest_snapshot_id().await? else {
        return Ok(Progress {
            read_at: None,
            next: None,
            recorded_in: None,
            properties: BTreeMap::new(),
        });
    };
    let earliest = snapshots.earliest_snapshot_id().await?.unwrap_or(1);
    let mut id = latest;
    while id >= earliest {
        if let Some(snapshot) = snapshots.snapshot(id).await? {
            if let Some(value) = snapshot.properties.as_ref().and_then(|p| p.get(key)) {
                let next = value.trim().parse::<i64>().map_err(|_| {
                    SqlError::Corrupt(format!(
                        "snapshot {id} of sink '{}' records '{key}' = '{value}', which is not a snapshot id",
                        sink.identifier()
                    ))
                })?;
                return Ok(Progress {
                    read_at: Some(latest),
                    next: Some(next),
                    recorded_in: Some(id),
                    properties: snapshot.properties.clone().unwrap_or_default(),
                });
            }
        }
        id -= 1;
    }
    Ok(Progress {
        read_at: Some(latest),
        next: None,
        recorded_in: None,
        properties: BTreeMap::new(),
    })
}

/// The progress of a job over two sources (a join of two streams): both
/// keys are committed in the same sink snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PairProgress {
    /// The latest sink snapshot when it was read.
    pub read_at: Option<i64>,
    /// The next snapshot to read of each source, if the job ever committed.
    pub next: Option<(i64, i64)>,
}

impl PairProgress {
    /// The commit precondition over both keys.
    pub fn fence(&self, keys: &[String; 2]) -> PropertyFence {
        let values = match self.next {
            Some((a, b)) => [Some(a.to_string()), Some(b.to_string())],
            None => [None, None],
        };
        PropertyFence {
            read_at: self.read_at,
            expected: keys.iter().cloned().zip(values).collect(),
        }
    }
}

/// Reads the newest progress of both `keys` in `sink` from one snapshot
/// (reading them separately could mix two commits).
pub(crate) async fn read_pair_progress(sink: &Table, keys: &[String; 2]) -> Result<PairProgress> {
    let snapshots = sink.snapshots();
    let Some(latest) = snapshots.latest_snapshot_id().await? else {
        return Ok(PairProgress {
            read_at: None,
            next: None,
        });
    };
    let earliest = snapshots.earliest_snapshot_id().await?.unwrap_or(1);
    let parse = |id: i64, key: &str, value: &str| {
        value.trim().parse::<i64>().map_err(|_| {
            SqlError::Corrupt(format!(
                "snapshot {id} of sink '{}' records '{key}' = '{value}', which is not a snapshot id",
                sink.identifier()
            ))
        })
    };
    let mut id = latest;
    while id >= earliest {
        if let Some(snapshot) = snapshots.snapshot(id).await? {
            let properties = snapshot.properties.unwrap_or_default();
            match (properties.get(&keys[0]), properties.get(&keys[1])) {
                (None, None) => {}
                (Some(a), Some(b)) => {
                    return Ok(PairProgress {
                        read_at: Some(latest),
                        next: Some((parse(id, &keys[0], a)?, parse(id, &keys[1], b)?)),
                    })
                }
                _ => {
                    return Err(SqlError::Corrupt(format!(
                        "snapshot {id} of sink '{}' records only one of '{}' and '{}', which a join job always commits together",
                        sink.identifier(),
                        keys[0],
                        keys[1]
                    )))
                }
            }
        }
        id -= 1;
    }
    Ok(PairProgress {
        read_at: Some(latest),
        next: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_job_and_the_source() {
        let key = progress_key("orders_by_day", &Identifier::new("shop", "orders"));
        assert_eq!(key, "tidelake.job.orders_by_day.shop.orders");
        assert!(check_job_name("orders_by-day2").is_ok());
        for bad in ["", "a.b", "a b", "ü"] {
            assert!(check_job_name(bad).is_err(), "{bad:?}");
        }
        let fence = Progress {
            read_at: Some(7),
            next: None,
            recorded_in: None,
            properties: BTreeMap::new(),
        }
        .fence(&key);
        assert_eq!(fence.read_at, Some(7));
        assert_eq!(fence.expected.get(&key), Some(&None));
        let keys = [key.clone(), format!("{key}2")];
        let pair = PairProgress {
            read_at: Some(9),
            next: Some((4, 6)),
        }
        .fence(&keys);
        assert_eq!(pair.read_at, Some(9));
        assert_eq!(pair.expected.get(&keys[0]), Some(&Some("4".to_string())));
        assert_eq!(pair.expected.get(&keys[1]), Some(&Some("6".to_string())));
    }
}
