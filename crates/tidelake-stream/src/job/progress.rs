//! A job's progress: the next source snapshot to read, recorded in the
//! properties of the sink snapshot that holds the output of everything
//! before it, as the engine's fenced progress of owner `job.<job>`, slot
//! `<db>.<table>` (`tidelake.progress.job.<job>.<db>.<table>` = snapshot id).
//!
//! The engine carries progress into every later snapshot, so the latest
//! sink snapshot normally holds it; snapshots committed by other engines do
//! not, hence the walk back to the newest one that does. Progress recorded
//! before the engine had progress owners (`tidelake.job.<job>.<db>.<table>`)
//! is still read, so jobs resume across the upgrade.

use std::collections::BTreeMap;

use tidelake_engine::{
    newest_recorded, Identifier, OwnerProgress, ProgressOwner, Table, PROGRESS_PREFIX,
};

use tidelake_sql::{Result, SqlError};

/// The progress owner of a job (its name is checked by [`check_job_name`]).
pub(crate) fn job_owner(job: &str) -> Result<ProgressOwner> {
    ProgressOwner::new(format!("job.{job}")).map_err(SqlError::from)
}

/// The property that records `job`'s progress through `source`.
pub(crate) fn progress_key(job: &str, source: &Identifier) -> Result<String> {
    Ok(job_owner(job)?.key(&format!("{}.{}", source.database, source.table)))
}

/// Where the same progress was recorded before progress owners existed.
fn legacy_key(key: &str) -> Option<String> {
    key.strip_prefix(PROGRESS_PREFIX)
        .and_then(|rest| rest.strip_prefix("job."))
        .map(|rest| format!("tidelake.job.{rest}"))
}

/// The value of `key` in `properties`, or of its legacy form.
fn recorded<'a>(properties: &'a BTreeMap<String, String>, key: &str) -> Option<&'a String> {
    properties
        .get(key)
        .or_else(|| legacy_key(key).and_then(|legacy| properties.get(&legacy)))
}

/// Job names are part of property keys and of messages: plain words only.
pub fn check_job_name(name: &str) -> Result<()> {
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
    /// The commit precondition: nobody recorded other positions for the
    /// job since (its source's and, for a window job, its watermark).
    pub fn fence(&self, owner: &ProgressOwner) -> OwnerProgress {
        let mut from = OwnerProgress::none(owner.clone(), self.read_at);
        from.recorded_in = self.recorded_in;
        from.positions = owner.positions_in(&self.properties);
        from
    }
}

/// A recorded snapshot id, or a clear error naming where it was found.
fn parse_position(sink: &Table, id: i64, key: &str, value: &str) -> Result<i64> {
    value.trim().parse::<i64>().map_err(|_| {
        SqlError::Corrupt(format!(
            "snapshot {id} of sink '{}' records '{key}' = '{value}', which is not a snapshot id",
            sink.identifier()
        ))
    })
}

/// Reads the newest progress of `key` in `sink`.
pub(crate) async fn read_progress(sink: &Table, key: &str) -> Result<Progress> {
    let (latest, found) = newest_recorded(sink.snapshots(), |p| recorded(p, key).cloned()).await?;
    let Some((id, properties, value)) = found else {
        return Ok(Progress {
            read_at: latest,
            next: None,
            recorded_in: None,
            properties: BTreeMap::new(),
        });
    };
    Ok(Progress {
        read_at: latest,
        next: Some(parse_position(sink, id, key, &value)?),
        recorded_in: Some(id),
        properties,
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
    /// The commit precondition over both keys (the job's only positions).
    pub fn fence(&self, owner: &ProgressOwner, keys: &[String; 2]) -> OwnerProgress {
        let mut from = OwnerProgress::none(owner.clone(), self.read_at);
        if let Some((a, b)) = self.next {
            let properties = BTreeMap::from([
                (keys[0].clone(), a.to_string()),
                (keys[1].clone(), b.to_string()),
            ]);
            from.positions = owner.positions_in(&properties);
        }
        from
    }
}

/// Reads the newest progress of both `keys` in `sink` from one snapshot
/// (reading them separately could mix two commits).
pub(crate) async fn read_pair_progress(sink: &Table, keys: &[String; 2]) -> Result<PairProgress> {
    let (latest, found) = newest_recorded(sink.snapshots(), |p| {
        match (recorded(p, &keys[0]), recorded(p, &keys[1])) {
            (None, None) => None,
            (a, b) => Some((a.cloned(), b.cloned())),
        }
    })
    .await?;
    let next = match found {
        None => None,
        Some((id, _, (Some(a), Some(b)))) => Some((
            parse_position(sink, id, &keys[0], &a)?,
            parse_position(sink, id, &keys[1], &b)?,
        )),
        Some((id, _, _)) => {
            return Err(SqlError::Corrupt(format!(
                "snapshot {id} of sink '{}' records only one of '{}' and '{}', which a join job always commits together",
                sink.identifier(),
                keys[0],
                keys[1]
            )))
        }
    };
    Ok(PairProgress {
        read_at: latest,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_job_and_the_source() {
        let key = progress_key("orders_by_day", &Identifier::new("shop", "orders")).unwrap();
        assert_eq!(key, "tidelake.progress.job.orders_by_day.shop.orders");
        assert_eq!(
            legacy_key(&key).as_deref(),
            Some("tidelake.job.orders_by_day.shop.orders")
        );
        assert!(check_job_name("orders_by-day2").is_ok());
        for bad in ["", "a.b", "a b", "ü"] {
            assert!(check_job_name(bad).is_err(), "{bad:?}");
        }
        let owner = job_owner("orders_by_day").unwrap();
        let fence = Progress {
            read_at: Some(7),
            next: None,
            recorded_in: None,
            properties: BTreeMap::new(),
        }
        .fence(&owner);
        assert_eq!(fence.read_at, Some(7));
        assert!(fence.positions.is_empty());
        let keys = [key.clone(), format!("{key}2")];
        let pair = PairProgress {
            read_at: Some(9),
            next: Some((4, 6)),
        }
        .fence(&owner, &keys);
        assert_eq!(pair.read_at, Some(9));
        assert_eq!(pair.positions.get("shop.orders"), Some(&"4".to_string()));
        assert_eq!(pair.positions.get("shop.orders2"), Some(&"6".to_string()));
    }

    #[test]
    fn legacy_progress_is_still_read() {
        let key = progress_key("j", &Identifier::new("db", "src")).unwrap();
        let old = BTreeMap::from([("tidelake.job.j.db.src".to_string(), "5".to_string())]);
        assert_eq!(recorded(&old, &key), Some(&"5".to_string()));
        let both = BTreeMap::from([
            ("tidelake.job.j.db.src".to_string(), "5".to_string()),
            (key.clone(), "6".to_string()),
        ]);
        assert_eq!(recorded(&both, &key), Some(&"6".to_string()));
    }
}
