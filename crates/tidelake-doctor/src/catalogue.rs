//! The rules the doctor knows: stable ids, what each looks at, when it
//! fires, why that happens and what fixes it (`--explain RULE`, and the
//! table in `docs/doctor.md`). Thresholds are stated in terms of the
//! table's own options, so that they scale with the table.

use crate::finding::Category;

/// One rule's description.
#[derive(Clone, Copy, Debug)]
pub struct RuleInfo {
    pub id: &'static str,
    pub category: Category,
    pub what: &'static str,
    pub threshold: &'static str,
    pub cause: &'static str,
    pub fix: &'static str,
}

/// Every rule, in the order ties between findings of one severity are
/// reported (the more specific diagnosis first).
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: "job-stopped",
        category: Category::Freshness,
        what: "A continuous job (its position `tidelake.progress.job.NAME.DB.TABLE` in the sink) has not advanced while its source has unread snapshots.",
        threshold: "the oldest unread source snapshot is at least 30 min old and the sink recorded no new position for at least 30 min",
        cause: "The job process is not running, is stuck, or keeps failing before its commit.",
        fix: "Check and restart the job (`tidelake stream --job NAME ...`); it resumes from the position in its sink.",
    },
    RuleInfo {
        id: "job-lagging",
        category: Category::Freshness,
        what: "A continuous job is behind its source.",
        threshold: "at least 2 unread source snapshots AND the oldest of them at least 5 min old (a relative and an absolute gap)",
        cause: "The job reads or writes slower than the source commits, or it was paused.",
        fix: "Give the job more resources, batch larger source ranges, or split it; check the sink for write stalls.",
    },
    RuleInfo {
        id: "stream-position-expiring",
        category: Category::Retention,
        what: "A job's source position (or a consumer about to be dropped) points at a snapshot that expiration removes soon, or already removed.",
        threshold: "the next snapshot to read is older than the source's first kept snapshot, or would be expired by an expiration run snapshot.time-retained / 4 from now; a consumer idle for at least 80% of consumer.expiration-time",
        cause: "Job positions are not consumers: the source's expiration does not wait for them.",
        fix: "Restart the job soon, record a consumer for it ('consumer-id'), or raise the source's snapshot.time-retained.",
    },
    RuleInfo {
        id: "consumer-pins-snapshots",
        category: Category::Retention,
        what: "A consumer's position keeps snapshots that the retention options would expire.",
        threshold: "more than snapshot.expire.limit snapshots pinned only by the consumer",
        cause: "Expiration keeps every snapshot from a consumer's next snapshot on; an abandoned reader without consumer.expiration-time pins them forever.",
        fix: "Advice: delete the consumer if its reader is gone, or set 'consumer.expiration-time'.",
    },
    RuleInfo {
        id: "sorted-run-stall",
        category: Category::Lsm,
        what: "A bucket has so many sorted runs that writers stall (at num-sorted-run.stop-trigger they compact before taking rows) and reads merge many runs.",
        threshold: "sorted runs >= max(num-sorted-run.compaction-trigger + 1, num-sorted-run.stop-trigger - 1) (MID), >= stop-trigger (HIGH)",
        cause: "Compaction does not keep up with commits, or failed (conflicts), or was off when the table was written.",
        fix: "Compact the bucket (`tidelake compact db.t --full`, or `doctor --fix`); run a dedicated compaction job for busy tables.",
    },
    RuleInfo {
        id: "changelog-starved",
        category: Category::Lsm,
        what: "A table with changelog-producer lookup or full-compaction whose recent commits produced no changelog, so streaming readers see nothing.",
        threshold: "data commits since the last snapshot with changelog >= num-sorted-run.compaction-trigger (lookup) or full-compaction.delta-commits + 1 (full-compaction; trigger when unset)",
        cause: "These producers write changelog only when compaction runs; with 'write-only' and no dedicated compaction, nothing compacts.",
        fix: "Compact (`doctor --fix` compacts the buckets with new data); run a dedicated compaction job, or set full-compaction.delta-commits.",
    },
    RuleInfo {
        id: "write-only-uncompacted",
        category: Category::Lsm,
        what: "A 'write-only' primary-key table that nobody compacts.",
        threshold: "'write-only' = 'true' and a bucket with >= num-sorted-run.compaction-trigger sorted runs (HIGH at stop-trigger)",
        cause: "'write-only' writers neither compact nor expire; a dedicated compaction job is expected and is not running.",
        fix: "Compact now (`doctor --fix`), and run `tidelake compact db.t` regularly (or remove 'write-only').",
    },
    RuleInfo {
        id: "snapshot-backlog",
        category: Category::Retention,
        what: "Snapshots the retention options (snapshot.num-retained.*, snapshot.time-retained) say should be gone are still there.",
        threshold: "expirable snapshots > snapshot.expire.limit",
        cause: "Expiration runs after commits: 'write-only' skips it, and an idle table never runs it.",
        fix: "Expire within the table's own retention (`doctor --fix`); run expiration with the dedicated compaction job.",
    },
    RuleInfo {
        id: "deletion-ratio",
        category: Category::Deletes,
        what: "Many stored rows of a bucket are deleted rows (deletion vectors, or -D/-U rows kept in files).",
        threshold: "deleted rows / rows >= 0.3 and at least 100 deleted rows (HIGH at 0.6)",
        cause: "Deletes and updates mark or retract rows; only a compaction into the top level drops them.",
        fix: "Full compaction of the bucket (`doctor --fix`).",
    },
    RuleInfo {
        id: "small-files",
        category: Category::Layout,
        what: "A partition holds many small files (smaller than target-file-size / 8).",
        threshold: "small files >= 2 x num-sorted-run.compaction-trigger x buckets of the partition, and merging them would leave at most a quarter as many",
        cause: "Frequent small commits, or many buckets per commit, with nothing merging the files (append tables are not compacted inline).",
        fix: "Compact the partition (`tidelake compact db.t --partition k=v --full`, or `doctor --fix`); commit less often or with fewer buckets.",
    },
    RuleInfo {
        id: "bucket-too-large",
        category: Category::Distribution,
        what: "Buckets of a fixed-bucket table hold too much data for one writer and one reader task.",
        threshold: "bytes per bucket (largest partition) > 8 x target-file-size",
        cause: "The table grew past what its 'bucket' count was sized for.",
        fix: "Advice: rescale to the bucket count the finding names (bytes / (4 x target-file-size)).",
    },
    RuleInfo {
        id: "bucket-too-small",
        category: Category::Distribution,
        what: "A fixed-bucket table has many more buckets than its data needs, so every commit writes many tiny files.",
        threshold: "partition bytes >= 4 x target-file-size and bytes per bucket < target-file-size / 4",
        cause: "'bucket' was set for more data than the table holds.",
        fix: "Advice: rescale to the bucket count the finding names.",
    },
    RuleInfo {
        id: "bucket-skew",
        category: Category::Distribution,
        what: "One bucket holds much more than the others of its partition.",
        threshold: "largest bucket >= 3 x the partition's mean bucket AND at least target-file-size larger",
        cause: "The bucket key has few distinct or very uneven values.",
        fix: "Advice: choose a bucket key ('bucket-key') with more evenly spread values.",
    },
    RuleInfo {
        id: "partition-explosion",
        category: Category::Layout,
        what: "Very many partitions that each hold little data.",
        threshold: ">= 100 partitions and mean partition bytes < target-file-size / 8",
        cause: "The partition key is too fine (e.g. an hour or an id instead of a day).",
        fix: "Advice: partition by a coarser key; recreate the table and copy the data.",
    },
    RuleInfo {
        id: "multi-writer-conflicts",
        category: Category::Distribution,
        what: "Several writers commit into one partition and their commits conflict.",
        threshold: ">= 3 commit retries (snapshot property tidelake.commit.retries) in retained snapshots that wrote the partition (HIGH at 30)",
        cause: "Concurrent writers race for the same buckets; each conflict redoes a write.",
        fix: "Advice: route each partition to one writer (one job), or write with 'write-only' and compact in one dedicated job.",
    },
    RuleInfo {
        id: "orphan-files",
        category: Category::Layout,
        what: "Files in the table's folders that no snapshot, tag or branch references.",
        threshold: ">= 1 unreferenced file older than the 1-day safety margin (MID at 100)",
        cause: "Failed or interrupted commits and expirations leave their files behind.",
        fix: "Remove orphan files past the safety margin (`doctor --fix`, or CALL sys.remove_orphan_files).",
    },
    RuleInfo {
        id: "manifest-fragmented",
        category: Category::Layout,
        what: "The latest snapshot lists many data manifests, each read by every scan plan.",
        threshold: "data manifests > manifest.merge-min-count, and a merge would leave fewer (some hold DELETE entries, or they are more than their entries need at manifest.target-file-size)",
        cause: "Commits merge manifests only once there are manifest.merge-min-count of them; a table last written by another engine or with a raised merge-min-count keeps them.",
        fix: "Merge them (`doctor --fix`, or CALL sys.compact_manifest): one COMPACT snapshot whose manifests list the same live files; no data changes.",
    },
];

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}

/// The rule's position in [`RULES`] (for ordering ties).
pub(crate) fn rank(id: &str) -> usize {
    RULES.iter().position(|r| r.id == id).unwrap_or(RULES.len())
}

/// `--explain RULE` text.
pub fn explain(id: &str) -> Option<String> {
    let r = rule(id)?;
    Some(format!(
        "{}  [{}]\n  what:      {}\n  threshold: {}\n  cause:     {}\n  fix:       {}\n",
        r.id,
        r.category.as_str(),
        r.what,
        r.threshold,
        r.cause,
        r.fix
    ))
}
