//! Snapshot lifecycle: expiration, tags, rollback and orphan-file removal,
//! with Paimon's layout (`tag/tag-{name}` holds a copy of the snapshot JSON,
//! `consumer/consumer-{id}` holds `{"nextSnapshot": N}`) and semantics.
//!
//! Every operation deletes files only after deciding, from the snapshots and
//! tags that stay, that nothing still needs them; when unsure it keeps them.

mod branches;
mod consumers;
mod expire;
mod orphans;
mod refs;
mod rollback;
mod tags;

use crate::error::Result;
use crate::table::Table;

pub use branches::{validate_branch_name, BranchInfo, MAIN_BRANCH};
pub(crate) use expire::expire_after_commit;
pub use expire::{ExpireOptions, ExpireOutcome};
pub use orphans::OrphanOptions;

/// The smallest `nextSnapshot` of the table's consumers: snapshots from it on
/// are still to be read and must not expire.
pub(crate) async fn min_consumer_snapshot(table: &Table) -> Result<Option<i64>> {
    Ok(table
        .list_consumers()
        .await?
        .into_iter()
        .map(|(_, next)| next)
        .min())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Callers run these on tokio tasks, and commits await expiration: the
    /// futures must be `Send` (checked at compile time).
    #[allow(dead_code)]
    fn lifecycle_futures_are_send(table: &Table) {
        fn send<T: Send>(_: T) {}
        send(table.expire_snapshots(ExpireOptions {
            retain_max: 1,
            retain_min: 1,
            older_than: None,
            max_deletes: 1,
        }));
        send(expire_after_commit(table));
        send(table.create_tag("t", None));
        send(table.delete_tag("t"));
        send(table.list_tags());
        send(table.rollback_to_snapshot(1));
        send(table.rollback_to_tag("t"));
        send(table.remove_orphan_files(0));
    }

    #[test]
    fn snapshot_options_have_paimon_defaults_and_are_checked() {
        use crate::options::TableOptions;
        use std::collections::BTreeMap;
        let mut m = BTreeMap::new();
        let o = TableOptions::from_map(&m, true).unwrap();
        assert_eq!(o.snapshot_num_retained_min, 10);
        assert_eq!(o.snapshot_num_retained_max, i32::MAX as usize);
        assert_eq!(o.snapshot_time_retained_millis, 3_600_000);
        assert_eq!(o.snapshot_expire_limit, 10);
        m.insert("snapshot.time-retained".to_string(), "30 min".to_string());
        m.insert("snapshot.num-retained.max".to_string(), "20".to_string());
        let o = TableOptions::from_map(&m, true).unwrap();
        assert_eq!(o.snapshot_time_retained_millis, 1_800_000);
        assert_eq!(o.snapshot_num_retained_max, 20);
        m.insert("snapshot.num-retained.min".to_string(), "21".to_string());
        let err = TableOptions::from_map(&m, true).unwrap_err().to_string();
        assert!(err.contains("snapshot.num-retained.min"), "{err}");
    }
}
