//! Fenced progress: exactly-once bookkeeping for whoever writes a table from
//! a source it reads in order.
//!
//! A *progress owner* (a continuous job, a CDC pipeline, a compaction
//! service) records its position in the table it writes, in the same
//! snapshot as the rows that position accounts for: one atomic step, so a
//! crash leaves either both or neither. Positions are snapshot properties
//! `tidelake.progress.<owner>.<slot>` (a slot per source, say), and:
//! - **carried**: the committer copies every `tidelake.progress.` property
//!   of a snapshot into the next one unless that commit sets it, so the
//!   latest snapshot holds every owner's newest position whoever committed
//!   last, and expiring the snapshot that recorded it loses nothing;
//! - **fenced**: a commit made from positions read at snapshot R checks
//!   every snapshot after R, in every attempt, before it races for the next
//!   snapshot id; one that records other positions for the owner refuses the
//!   commit (another instance of the owner got there first) and nothing is
//!   written. Since the next id is created if absent, nothing slips in
//!   between check and commit.
//!
//! This module knows no owner kind: names are the owners' business.

use std::collections::BTreeMap;

use crate::error::{EngineError, Result};
use crate::snapshots::SnapshotReader;

/// Snapshot properties under this prefix are progress: carried into every
/// later snapshot.
pub const PROGRESS_PREFIX: &str = "tidelake.progress.";

/// Who records progress, e.g. `job.daily_totals` or `cdc.pg_orders`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProgressOwner {
    name: String,
}

impl ProgressOwner {
    /// An owner name is part of property keys: 1 to 200 ASCII letters,
    /// digits, `_`, `-` and `.`, not starting or ending with a dot.
    pub fn new(name: impl Into<String>) -> Result<ProgressOwner> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('.')
            && !name.ends_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            Ok(ProgressOwner { name })
        } else {
            Err(EngineError::invalid(format!(
                "progress owner '{name}': use 1 to 200 letters, digits, '_', '-' or inner '.'"
            )))
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The snapshot property of one of this owner's positions.
    pub fn key(&self, slot: &str) -> String {
        format!("{PROGRESS_PREFIX}{}.{slot}", self.name)
    }

    /// This owner's positions among `properties`, by slot.
    pub fn positions_in(&self, properties: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let prefix = format!("{PROGRESS_PREFIX}{}.", self.name);
        properties
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k[prefix.len()..].to_string(), v.clone()))
            .collect()
    }
}

/// An owner's positions as of one moment: what a fenced commit starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerProgress {
    pub owner: ProgressOwner,
    /// The latest snapshot when the positions were read (`None`: the table
    /// had none). Every snapshot after it is checked at commit.
    pub read_at: Option<i64>,
    /// The snapshot the positions were found in (`None`: never recorded).
    pub recorded_in: Option<i64>,
    /// Position by slot; empty when the owner never recorded one.
    pub positions: BTreeMap<String, String>,
    /// All properties of the snapshot the positions were found in.
    pub properties: BTreeMap<String, String>,
}

impl OwnerProgress {
    /// Progress of an owner that never recorded any, read at `read_at`.
    pub fn none(owner: ProgressOwner, read_at: Option<i64>) -> OwnerProgress {
        OwnerProgress {
            owner,
            read_at,
            recorded_in: None,
            positions: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }

    /// Whether the snapshot properties `found` (of a snapshot after
    /// `read_at`) agree with these positions: `None` when they do, else the
    /// first differing key with what was expected and what was found.
    pub(crate) fn disagreement(
        &self,
        found: &BTreeMap<String, String>,
    ) -> Option<(String, Option<String>, String)> {
        self.owner
            .positions_in(found)
            .into_iter()
            .find(|(slot, value)| self.positions.get(slot) != Some(value))
            .map(|(slot, value)| {
                let expected = self.positions.get(&slot).cloned();
                (self.owner.key(&slot), expected, value)
            })
    }
}

/// Walks back from the latest snapshot to the newest one whose properties
/// `find` recognises. Returns the latest snapshot id (`None`: no snapshot)
/// and, if one was found, its id, its properties and what `find` returned.
/// The latest snapshot holds every owner's progress unless snapshots were
/// committed by other engines (which do not carry it): hence the walk.
pub async fn newest_recorded<T>(
    snapshots: &SnapshotReader,
    mut find: impl FnMut(&BTreeMap<String, String>) -> Option<T>,
) -> Result<(Option<i64>, Option<(i64, BTreeMap<String, String>, T)>)> {
    let Some(latest) = snapshots.latest_snapshot_id().await? else {
        return Ok((None, None));
    };
    let earliest = snapshots.earliest_snapshot_id().await?.unwrap_or(1);
    for id in (earliest..=latest).rev() {
        let Some(snapshot) = snapshots.snapshot(id).await? else {
            continue;
        };
        let properties = snapshot.properties.unwrap_or_default();
        if let Some(found) = find(&properties) {
            return Ok((Some(latest), Some((id, properties, found))));
        }
    }
    Ok((Some(latest), None))
}

/// Reads the newest positions `owner` recorded in a table.
pub async fn read_progress(
    snapshots: &SnapshotReader,
    owner: &ProgressOwner,
) -> Result<OwnerProgress> {
    let (latest, found) = newest_recorded(snapshots, |properties| {
        let positions = owner.positions_in(properties);
        (!positions.is_empty()).then_some(positions)
    })
    .await?;
    Ok(match found {
        Some((id, properties, positions)) => OwnerProgress {
            owner: owner.clone(),
            read_at: latest,
            recorded_in: Some(id),
            positions,
            properties,
        },
        None => OwnerProgress::none(owner.clone(), latest),
    })
}

/// The properties of a new snapshot: the progress carried from the latest
/// one, then the commit's own.
pub(crate) fn carried_properties(
    latest: Option<&BTreeMap<String, String>>,
    own: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let mut properties: BTreeMap<String, String> = latest
        .map(|p| {
            p.range(PROGRESS_PREFIX.to_string()..)
                .take_while(|(k, _)| k.starts_with(PROGRESS_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    properties.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    (!properties.is_empty()).then_some(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn owners_name_their_keys_and_find_their_positions() {
        let owner = ProgressOwner::new("job.daily").unwrap();
        assert_eq!(owner.key("db.src"), "tidelake.progress.job.daily.db.src");
        let found = props(&[
            ("tidelake.progress.job.daily.db.src", "7"),
            ("tidelake.progress.job.daily.watermark", "100"),
            ("tidelake.progress.job.daily2.db.src", "9"),
            ("tidelake.progress.job.dail", "1"),
            ("other", "x"),
        ]);
        assert_eq!(
            owner.positions_in(&found),
            props(&[("db.src", "7"), ("watermark", "100")])
        );
        for bad in ["", ".a", "a.", "a b", "ü", &"x".repeat(201)] {
            assert!(ProgressOwner::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_fence_compares_only_the_owners_positions() {
        let owner = ProgressOwner::new("job.j").unwrap();
        let mut progress = OwnerProgress::none(owner.clone(), Some(3));
        assert_eq!(progress.disagreement(&props(&[("x", "1")])), None);
        let other = props(&[("tidelake.progress.job.j.db.s", "5")]);
        assert_eq!(
            progress.disagreement(&other),
            Some(("tidelake.progress.job.j.db.s".into(), None, "5".into()))
        );
        progress.positions = props(&[("db.s", "5")]);
        assert_eq!(progress.disagreement(&other), None);
        let unrelated = props(&[("tidelake.progress.job.k.db.s", "9")]);
        assert_eq!(progress.disagreement(&unrelated), None);
    }

    #[test]
    fn progress_is_carried_and_own_properties_win() {
        let latest = props(&[
            ("tidelake.progress.job.j.db.s", "5"),
            ("tidelake.commit.retries", "2"),
        ]);
        let own = props(&[("tidelake.progress.job.j.db.s", "6")]);
        assert_eq!(
            carried_properties(Some(&latest), &own),
            Some(props(&[("tidelake.progress.job.j.db.s", "6")]))
        );
        assert_eq!(
            carried_properties(Some(&latest), &BTreeMap::new()),
            Some(props(&[("tidelake.progress.job.j.db.s", "5")]))
        );
        assert_eq!(carried_properties(None, &BTreeMap::new()), None);
    }
}
