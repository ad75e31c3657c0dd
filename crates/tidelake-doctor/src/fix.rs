//! `--fix`: the safe fixes. Each is scoped to what its finding names
//! (the buckets of a partition or a bucket, or the table), idempotent (it
//! runs only while the finding stands, and removes the finding), and never
//! removes anything a snapshot, tag, branch or consumer still reaches:
//! - compaction (rows unchanged; its COMPACT snapshot records
//!   `tidelake.doctor.fix = <rule>`);
//! - snapshot expiration with the table's own retention options (the
//!   engine keeps tagged snapshots, consumers' snapshots and other
//!   branches' files);
//! - orphan removal of files older than the engine's one-day margin;
//! - manifest merge (`Table::compact_manifests`: a COMPACT snapshot with
//!   the same live files, recording `tidelake.doctor.fix = <rule>`).
//!
//! Option changes, rescaling and deleting consumers are advice only.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use tidelake_engine::{Catalog, CompactOptions, ExpireOptions, Identifier};

use crate::error::{DoctorError, Result};
use crate::finding::{Finding, Remedy};
use crate::observe::ORPHAN_MARGIN_MILLIS;
use crate::TableReport;

/// The snapshot property a fix's commit records its rule in.
pub const FIX_PROPERTY: &str = "tidelake.doctor.fix";

/// Most expiration runs one fix makes (each expires at most
/// `snapshot.expire.limit` snapshots).
const MAX_EXPIRE_ROUNDS: usize = 1_000;

/// One fix, planned (dry run) or applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FixAction {
    pub rule: String,
    pub scope: String,
    /// What it does (or would do).
    pub action: String,
    /// What it did: a snapshot id, counts; `None` in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

fn parse_table(name: &str) -> Result<Identifier> {
    match name.split_once('.') {
        Some((db, t)) => Ok(Identifier::new(db, t)),
        None => Err(DoctorError::Target(format!("'{name}' is not db.table"))),
    }
}

/// Applies (or with `dry_run`, lists) the safe fixes of `reports`' findings.
/// A compaction of buckets another fix already compacted in this run is
/// skipped, so overlapping findings cost one compaction.
pub async fn apply_fixes(
    catalog: &Catalog,
    reports: &[TableReport],
    dry_run: bool,
    now_millis: i64,
) -> Result<Vec<FixAction>> {
    let mut actions = Vec::new();
    for report in reports {
        let id = parse_table(&report.table)?;
        let table = catalog
            .load_table(&id)
            .await
            .map_err(|e| DoctorError::table(&id, e))?;
        let mut compacted: HashSet<(Vec<u8>, i32)> = HashSet::new();
        for f in &report.findings {
            let action = match &f.remedy {
                Remedy::Advice => continue,
                Remedy::Compact { buckets } => {
                    let todo: HashSet<(Vec<u8>, i32)> = buckets
                        .iter()
                        .filter(|b| !compacted.contains(*b))
                        .cloned()
                        .collect();
                    if todo.is_empty() {
                        continue;
                    }
                    let mut a = planned(f, format!("full compaction of {} bucket(s)", todo.len()));
                    if !dry_run {
                        let outcome = table
                            .compact_buckets(
                                CompactOptions {
                                    full: true,
                                    partition: None,
                                },
                                Some(&todo),
                                BTreeMap::from([(FIX_PROPERTY.to_string(), f.rule.to_string())]),
                            )
                            .await
                            .map_err(|e| DoctorError::table(&id, e))?;
                        a.outcome = Some(match outcome.snapshot_id {
                            Some(s) => format!(
                                "snapshot {s}: {} files in, {} out",
                                outcome.files_in, outcome.files_out
                            ),
                            None => "nothing to compact".to_string(),
                        });
                    }
                    compacted.extend(todo);
                    a
                }
                Remedy::Expire => {
                    let mut a = planned(
                        f,
                        "expire snapshots within the table's retention options".to_string(),
                    );
                    if !dry_run {
                        let (mut snapshots, mut files) = (0, 0);
                        for _ in 0..MAX_EXPIRE_ROUNDS {
                            let done = table
                                .expire_snapshots(ExpireOptions::from_table(&table, now_millis))
                                .await
                                .map_err(|e| DoctorError::table(&id, e))?;
                            snapshots += done.snapshots_deleted;
                            files += done.files_deleted;
                            if done.snapshots_deleted == 0 {
                                break;
                            }
                        }
                        a.outcome =
                            Some(format!("{snapshots} snapshots and {files} files removed"));
                    }
                    a
                }
                Remedy::MergeManifests => {
                    let mut a = planned(
                        f,
                        "merge the data manifests (a COMPACT snapshot, no data change)".to_string(),
                    );
                    if !dry_run {
                        let done = table
                            .compact_manifests(BTreeMap::from([(
                                FIX_PROPERTY.to_string(),
                                f.rule.to_string(),
                            )]))
                            .await
                            .map_err(|e| DoctorError::table(&id, e))?;
                        a.outcome = Some(match done.snapshot_id {
                            Some(s) => format!(
                                "snapshot {s}: {} manifests -> {} ({} live files)",
                                done.manifests_before, done.manifests_after, done.live_files
                            ),
                            None => "manifests already compact".to_string(),
                        });
                    }
                    a
                }
                Remedy::RemoveOrphans => {
                    let mut a = planned(f, "remove orphan files older than one day".to_string());
                    if !dry_run {
                        let removed = table
                            .remove_orphan_files(now_millis.saturating_sub(ORPHAN_MARGIN_MILLIS))
                            .await
                            .map_err(|e| DoctorError::table(&id, e))?;
                        a.outcome = Some(format!("{} files removed", removed.len()));
                    }
                    a
                }
            };
            tracing::info!(rule = f.rule, scope = %f.scope(), action = %action.action, outcome = ?action.outcome, "doctor fix");
            actions.push(action);
        }
    }
    Ok(actions)
}

fn planned(f: &Finding, action: String) -> FixAction {
    FixAction {
        rule: f.rule.to_string(),
        scope: f.scope(),
        action,
        outcome: None,
    }
}
