//! The checks: each reads [`TableFacts`] and reports findings with their
//! evidence. Thresholds come from the table's options (see
//! [`crate::catalogue`] for the rule texts).

use std::collections::BTreeMap;

use tidelake_engine::introspect::CommitKind;
use tidelake_engine::options::{ChangelogProducer, TableOptions};

use crate::catalogue::rule;
use crate::finding::{Evidence, Finding, Remedy, Severity};
use crate::observe::{BucketFacts, JobPosition, SnapshotFacts, TableFacts};

const MINUTE: i64 = 60_000;
const LAG_MIN_MILLIS: i64 = 5 * MINUTE;
const STOPPED_MILLIS: i64 = 30 * MINUTE;

/// Every finding on one table, ordered: severity, rule, scope.
pub fn check(facts: &TableFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    small_files(facts, &mut out);
    sorted_runs(facts, &mut out);
    write_only(facts, &mut out);
    retention(facts, &mut out);
    jobs(facts, &mut out);
    buckets(facts, &mut out);
    partition_explosion(facts, &mut out);
    orphans(facts, &mut out);
    manifests(facts, &mut out);
    deletion_ratio(facts, &mut out);
    conflicts(facts, &mut out);
    changelog(facts, &mut out);
    sort_findings(&mut out);
    out
}

/// Most severe first; ties by the rule's rank, then scope.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(crate::catalogue::rank(a.rule).cmp(&crate::catalogue::rank(b.rule)))
            .then(a.table.cmp(&b.table))
            .then(a.partition.cmp(&b.partition))
            .then(a.bucket.cmp(&b.bucket))
    });
}

/// A finding of `rule_id` on `facts`' table (scope narrowed by the caller).
struct Draft {
    severity: Severity,
    partition: Option<String>,
    bucket: Option<i32>,
    evidence: Vec<Evidence>,
    cause: String,
    fix: String,
    remedy: Remedy,
    magnitude: f64,
}

fn push(out: &mut Vec<Finding>, facts: &TableFacts, rule_id: &'static str, d: Draft) {
    let Some(info) = rule(rule_id) else {
        tracing::error!("doctor: rule {rule_id} is not in the catalogue");
        return;
    };
    out.push(Finding {
        rule: info.id,
        severity: d.severity,
        category: info.category,
        table: facts.name.clone(),
        partition: d.partition.filter(|p| !p.is_empty()),
        bucket: d.bucket,
        evidence: d.evidence,
        cause: d.cause,
        fix: d.fix,
        fixable: d.remedy != Remedy::Advice,
        magnitude: (d.magnitude.max(1.0) * 100.0).round() / 100.0,
        remedy: d.remedy,
    });
}

fn partition_arg(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" --partition {}", name.replace('/', ","))
    }
}

fn small_files(facts: &TableFacts, out: &mut Vec<Finding>) {
    let o = &facts.options;
    let small_limit = o.target_file_size / 8;
    for (partition, buckets) in facts.partitions() {
        let files: Vec<_> = buckets.iter().flat_map(|b| b.files.iter()).collect();
        let small: Vec<_> = files.iter().filter(|f| f.size < small_limit).collect();
        let threshold = 2 * o.num_sorted_run_compaction_trigger.max(1) * buckets.len();
        let small_bytes: u64 = small.iter().map(|f| f.size).sum();
        let merged = small_bytes.div_ceil(o.target_file_size.max(1)).max(1) as usize;
        if small.len() < threshold || small.len() < 4 * merged {
            continue;
        }
        let magnitude = small.len() as f64 / threshold as f64;
        push(
            out,
            facts,
            "small-files",
            Draft {
                severity: if magnitude >= 10.0 {
                    Severity::High
                } else {
                    Severity::Mid
                },
                partition: Some(partition.to_string()),
                bucket: None,
                evidence: vec![
                    Evidence::new("small_files", small.len(), threshold),
                    Evidence::context("files", files.len()),
                    Evidence::context("small_file_limit_bytes", small_limit),
                    Evidence::context("files_after_merge", merged),
                ],
                cause: format!(
                    "{} of {} files are below target-file-size / 8 ({} bytes): small commits nobody merges.",
                    small.len(),
                    files.len(),
                    small_limit
                ),
                fix: format!(
                    "tidelake compact {}{} --full",
                    facts.name,
                    partition_arg(partition)
                ),
                remedy: Remedy::Compact {
                    buckets: buckets.iter().map(|b| b.id()).collect(),
                },
                magnitude,
            },
        );
    }
}

fn sorted_runs(facts: &TableFacts, out: &mut Vec<Finding>) {
    let o = &facts.options;
    if !facts.primary_key || o.write_only {
        return;
    }
    let stop = o.num_sorted_run_stop_trigger;
    let near = (o.num_sorted_run_compaction_trigger + 1).max(stop.saturating_sub(1));
    for b in &facts.buckets {
        let runs = b.sorted_runs();
        if runs < near {
            continue;
        }
        let severity = if runs >= stop {
            Severity::High
        } else {
            Severity::Mid
        };
        push(
            out,
            facts,
            "sorted-run-stall",
            Draft {
                severity,
                partition: Some(b.partition_name.clone()),
                bucket: Some(b.bucket),
                evidence: vec![
                    Evidence::new("sorted_runs", runs, near),
                    Evidence::context("stop_trigger", stop),
                    Evidence::context("compaction_trigger", o.num_sorted_run_compaction_trigger),
                ],
                cause: format!(
                    "{runs} sorted runs against a stop trigger of {stop}: compaction is not keeping up with commits{}.",
                    if runs >= stop { ", so writers stall" } else { "" }
                ),
                fix: format!("tidelake compact {}{} --full", facts.name, partition_arg(&b.partition_name)),
                remedy: Remedy::Compact {
                    buckets: vec![b.id()],
                },
                magnitude: runs as f64 / near as f64,
            },
        );
    }
}

fn compact_count(facts: &TableFacts) -> usize {
    facts
        .snapshots
        .iter()
        .filter(|s| s.kind == CommitKind::Compact)
        .count()
}

fn write_only(facts: &TableFacts, out: &mut Vec<Finding>) {
    let o = &facts.options;
    if !facts.primary_key || !o.write_only {
        return;
    }
    let trigger = o.num_sorted_run_compaction_trigger.max(1);
    let over: Vec<&BucketFacts> = facts
        .buckets
        .iter()
        .filter(|b| b.sorted_runs() >= trigger)
        .collect();
    let Some(max_runs) = over.iter().map(|b| b.sorted_runs()).max() else {
        return;
    };
    push(
        out,
        facts,
        "write-only-uncompacted",
        Draft {
            severity: if max_runs >= o.num_sorted_run_stop_trigger {
                Severity::High
            } else {
                Severity::Mid
            },
            partition: None,
            bucket: None,
            evidence: vec![
                Evidence::new("max_sorted_runs", max_runs, trigger),
                Evidence::context("buckets_over_trigger", over.len()),
                Evidence::context("compact_snapshots_retained", compact_count(facts)),
            ],
            cause: format!(
                "'write-only' = 'true': writers do not compact, and no compaction job has compacted the table ({} buckets at or over {trigger} sorted runs).",
                over.len()
            ),
            fix: format!("tidelake compact {} --full (and run it regularly)", facts.name),
            remedy: Remedy::Compact {
                buckets: over.iter().map(|b| b.id()).collect(),
            },
            magnitude: max_runs as f64 / trigger as f64,
        },
    );
}

/// Index of the first snapshot an expiration at `now` keeps (snapshots
/// before it expire), ignoring consumers. Paimon's rule: keep at least
/// num-retained.min, at most num-retained.max, and between them what is
/// younger than time-retained.
pub(crate) fn expire_end(snapshots: &[(i64, i64)], o: &TableOptions, now: i64) -> usize {
    let n = snapshots.len();
    let most = n.saturating_sub(o.snapshot_num_retained_min.max(1));
    let least = n.saturating_sub(o.snapshot_num_retained_max).min(most);
    let cutoff = now.saturating_sub(o.snapshot_time_retained_millis);
    let mut k = least;
    while k < most && snapshots[k].1 < cutoff {
        k += 1;
    }
    k
}

fn id_times(snapshots: &[SnapshotFacts]) -> Vec<(i64, i64)> {
    snapshots.iter().map(|s| (s.id, s.time_millis)).collect()
}

fn retention(facts: &TableFacts, out: &mut Vec<Finding>) {
    let o = &facts.options;
    let snaps = id_times(&facts.snapshots);
    let end = expire_end(&snaps, o, facts.now_millis);
    let end_id = snaps.get(end).map_or(i64::MAX, |s| s.0);
    let min_consumer = facts.consumers.iter().map(|c| c.next_snapshot).min();
    let end_with_consumers = match min_consumer {
        Some(c) => snaps[..end].iter().take_while(|s| s.0 < c).count(),
        None => end,
    };
    let limit = o.snapshot_expire_limit.max(1);
    if end_with_consumers > limit {
        let cause = if o.write_only {
            "'write-only' = 'true' skips expiration after commits, and nothing else expires the table.".to_string()
        } else {
            let idle = facts.now_millis - snaps.last().map_or(facts.now_millis, |s| s.1);
            format!(
                "Expiration runs after commits; the table has not committed for {} min.",
                idle / MINUTE
            )
        };
        push(
            out,
            facts,
            "snapshot-backlog",
            Draft {
                severity: if end_with_consumers > 10 * limit {
                    Severity::High
                } else {
                    Severity::Mid
                },
                partition: None,
                bucket: None,
                evidence: vec![
                    Evidence::new("expirable_snapshots", end_with_consumers, limit),
                    Evidence::context("retained_snapshots", snaps.len()),
                    Evidence::context("num_retained_min", o.snapshot_num_retained_min),
                    Evidence::context("time_retained_ms", o.snapshot_time_retained_millis),
                ],
                cause,
                fix: format!("CALL sys.expire_snapshots(table => '{}')", facts.name),
                remedy: Remedy::Expire,
                magnitude: end_with_consumers as f64 / limit as f64,
            },
        );
    }
    consumers(facts, &snaps, end_id, out);
}

fn consumers(facts: &TableFacts, snaps: &[(i64, i64)], end_id: i64, out: &mut Vec<Finding>) {
    let o = &facts.options;
    let limit = o.snapshot_expire_limit.max(1);
    let expiration = facts
        .raw_options
        .get("consumer.expiration-time")
        .and_then(|t| tidelake_engine::options::parse_duration_millis(t).ok());
    for c in &facts.consumers {
        let idle = facts
            .now_millis
            .saturating_sub(c.last_modified_millis)
            .max(0);
        let pinned = snaps
            .iter()
            .filter(|s| s.0 >= c.next_snapshot && s.0 < end_id)
            .count();
        if pinned > limit {
            push(
                out,
                facts,
                "consumer-pins-snapshots",
                Draft {
                    severity: if expiration.is_none() {
                        Severity::High
                    } else {
                        Severity::Mid
                    },
                    partition: None,
                    bucket: None,
                    evidence: vec![
                        Evidence::new("pinned_snapshots", pinned, limit),
                        Evidence::context("consumer_next_snapshot", c.next_snapshot),
                        Evidence::context("consumer_idle_ms", idle),
                    ],
                    cause: match expiration {
                        None => format!("Consumer '{}' has not read past snapshot {} and the table has no consumer.expiration-time, so it pins them forever.", c.id, c.next_snapshot),
                        Some(_) => format!("Consumer '{}' has not read past snapshot {}; it keeps them until consumer.expiration-time drops it.", c.id, c.next_snapshot),
                    },
                    fix: format!(
                        "If its reader is gone, delete consumer '{}' (the file consumer/consumer-{}, or Paimon's CALL sys.reset_consumer); or ALTER TABLE {} SET ('consumer.expiration-time' = '1 d')",
                        c.id, c.id, facts.name
                    ),
                    remedy: Remedy::Advice,
                    magnitude: pinned as f64 / limit as f64,
                },
            );
        }
        if let Some(max_idle) = expiration.filter(|m| *m > 0) {
            let at_risk = max_idle * 4 / 5;
            if idle >= at_risk {
                push(out, facts, "stream-position-expiring", Draft {
                    severity: Severity::Mid,
                    partition: None,
                    bucket: None,
                    evidence: vec![
                        Evidence::new("consumer_idle_ms", idle, at_risk),
                        Evidence::context("consumer_expiration_ms", max_idle),
                    ],
                    cause: format!("Consumer '{}' has been idle for {} min; consumer.expiration-time drops it at {} min and its reader then loses its position.", c.id, idle / MINUTE, max_idle / MINUTE),
                    fix: "Resume the reader, or raise 'consumer.expiration-time'.".to_string(),
                    remedy: Remedy::Advice,
                    magnitude: idle as f64 / at_risk as f64,
                });
            }
        }
    }
}

fn jobs(facts: &TableFacts, out: &mut Vec<Finding>) {
    for job in &facts.jobs {
        let Some(src) = &job.source_facts else {
            continue;
        };
        position_expiry(facts, job, out);
        let pending = (src.latest - job.next_snapshot + 1).max(0);
        let Some(next_time) = src.next_time_millis else {
            continue;
        };
        if pending == 0 {
            continue;
        }
        let lag = facts.now_millis - next_time;
        let silent = facts.now_millis - job.since_millis;
        let evidence = |threshold: i64| {
            vec![
                Evidence::new("lag_ms", lag, threshold),
                Evidence::context("unread_snapshots", pending),
                Evidence::context("since_last_position_ms", silent),
            ]
        };
        if lag >= STOPPED_MILLIS && silent >= STOPPED_MILLIS {
            push(out, facts, "job-stopped", Draft {
                severity: Severity::High,
                partition: None,
                bucket: None,
                evidence: evidence(STOPPED_MILLIS),
                cause: format!("Job '{}' last advanced its position in {} {} min ago; {} snapshots of {} wait, the oldest {} min old.", job.job, job.source, silent / MINUTE, pending, job.source, lag / MINUTE),
                fix: format!("Restart it: tidelake stream --job {} -e \"INSERT INTO {} ...\"", job.job, facts.name),
                remedy: Remedy::Advice,
                magnitude: lag as f64 / STOPPED_MILLIS as f64,
            });
        } else if lag >= LAG_MIN_MILLIS && pending >= 2 {
            push(out, facts, "job-lagging", Draft {
                severity: Severity::Mid,
                partition: None,
                bucket: None,
                evidence: evidence(LAG_MIN_MILLIS),
                cause: format!("Job '{}' is {} snapshots ({} min) behind {}.", job.job, pending, lag / MINUTE, job.source),
                fix: "Give the job more resources or split it; look for write stalls on the sink.".to_string(),
                remedy: Remedy::Advice,
                magnitude: lag as f64 / LAG_MIN_MILLIS as f64,
            });
        }
    }
}

fn position_expiry(facts: &TableFacts, job: &JobPosition, out: &mut Vec<Finding>) {
    let Some(src) = &job.source_facts else {
        return;
    };
    let horizon = (src.options.snapshot_time_retained_millis / 4).max(MINUTE);
    let end = expire_end(&src.snapshots, &src.options, facts.now_millis + horizon);
    let end_id = src.snapshots.get(end).map_or(src.latest + 1, |s| s.0);
    let expired = job.next_snapshot < src.earliest;
    if !expired && job.next_snapshot >= end_id {
        return;
    }
    let (severity, cause) = if expired {
        (
            Severity::High,
            format!(
                "Job '{}' would read snapshot {} of {}, which has expired (earliest {}).",
                job.job, job.next_snapshot, job.source, src.earliest
            ),
        )
    } else {
        (
            Severity::Mid,
            format!(
                "Job '{}' would read snapshot {} of {} next; expiration removes it within {} min.",
                job.job,
                job.next_snapshot,
                job.source,
                horizon / MINUTE
            ),
        )
    };
    push(
        out,
        facts,
        "stream-position-expiring",
        Draft {
            severity,
            partition: None,
            bucket: None,
            evidence: vec![
                Evidence::new("next_snapshot", job.next_snapshot, end_id),
                Evidence::context("source_earliest_snapshot", src.earliest),
            ],
            cause,
            fix: format!("Restart job '{}' now, record a consumer for it, or raise snapshot.time-retained of {}.", job.job, job.source),
            remedy: Remedy::Advice,
            magnitude: 1.0 + (end_id - job.next_snapshot).max(0) as f64 / 10.0,
        },
    );
}

fn buckets(facts: &TableFacts, out: &mut Vec<Finding>) {
    let o = &facts.options;
    if o.bucket < 1 || facts.buckets.is_empty() {
        return;
    }
    let t = o.target_file_size.max(1);
    let ideal = 4 * t;
    let configured = o.bucket as u64;
    let partitions = facts.partitions();
    let Some((largest, bytes)) = partitions
        .iter()
        .map(|(p, b)| (*p, b.iter().map(|x| x.bytes()).sum::<u64>()))
        .max_by_key(|(p, bytes)| (*bytes, std::cmp::Reverse(*p)))
    else {
        return;
    };
    let per_bucket = bytes / configured;
    let recommended = bytes.div_ceil(ideal).max(1);
    let rescale = |rule_id: &'static str, threshold: u64, severity, cause: String| {
        Draft {
        severity,
        partition: Some(largest.to_string()),
        bucket: None,
        evidence: vec![
            Evidence::new("bytes_per_bucket", per_bucket, threshold),
            Evidence::context("buckets", configured),
            Evidence::context("recommended_buckets", recommended),
        ],
        cause,
        fix: format!(
            "Rescale: ALTER TABLE {} SET ('bucket' = '{recommended}'), then INSERT OVERWRITE it (advice: {rule_id})",
            facts.name
        ),
        remedy: Remedy::Advice,
        magnitude: 1.0,
    }
    };
    if per_bucket > 2 * ideal {
        let mut d = rescale("bucket-too-large", 2 * ideal, if per_bucket > 8 * ideal { Severity::High } else { Severity::Mid },
            format!("{configured} buckets for {bytes} bytes in partition '{largest}': each bucket is one writer and one reader task."));
        d.magnitude = per_bucket as f64 / (2 * ideal) as f64;
        push(out, facts, "bucket-too-large", d);
    } else if configured > 1 && bytes >= ideal && per_bucket < t / 4 {
        let mut d = rescale("bucket-too-small", t / 4, Severity::Low,
            format!("{configured} buckets for {bytes} bytes: every commit writes a file per bucket touched."));
        d.magnitude = (t / 4) as f64 / per_bucket.max(1) as f64;
        push(out, facts, "bucket-too-small", d);
    }
    for (partition, list) in &partitions {
        if list.len() < 2 {
            continue;
        }
        let total: u64 = list.iter().map(|b| b.bytes()).sum();
        let mean = total / configured.max(list.len() as u64);
        let Some(max) = list.iter().max_by_key(|b| (b.bytes(), -b.bucket)) else {
            continue;
        };
        if max.bytes() >= 3 * mean.max(1) && max.bytes() - mean >= t {
            push(out, facts, "bucket-skew", Draft {
                severity: Severity::Mid,
                partition: Some(partition.to_string()),
                bucket: Some(max.bucket),
                evidence: vec![
                    Evidence::new("largest_bucket_bytes", max.bytes(), 3 * mean),
                    Evidence::context("mean_bucket_bytes", mean),
                ],
                cause: format!("Bucket {} holds {} bytes against a mean of {mean}: the bucket key's values are uneven.", max.bucket, max.bytes()),
                fix: "Choose a 'bucket-key' with evenly spread values (recreate the table).".to_string(),
                remedy: Remedy::Advice,
                magnitude: max.bytes() as f64 / (3 * mean.max(1)) as f64,
            });
        }
    }
}

fn partition_explosion(facts: &TableFacts, out: &mut Vec<Finding>) {
    const MANY: usize = 100;
    let partitions = facts.partitions();
    if !facts.partitioned || partitions.len() < MANY {
        return;
    }
    let mean = facts.total_bytes() / partitions.len() as u64;
    let limit = facts.options.target_file_size / 8;
    if mean >= limit {
        return;
    }
    push(
        out,
        facts,
        "partition-explosion",
        Draft {
            severity: Severity::Mid,
            partition: None,
            bucket: None,
            evidence: vec![
                Evidence::new("partitions", partitions.len(), MANY),
                Evidence::new("mean_partition_bytes", mean, limit),
            ],
            cause: format!(
                "{} partitions of {mean} bytes on average: the partition key is too fine.",
                partitions.len()
            ),
            fix: "Partition by a coarser key (recreate the table and copy the data).".to_string(),
            remedy: Remedy::Advice,
            magnitude: partitions.len() as f64 / MANY as f64,
        },
    );
}

fn orphans(facts: &TableFacts, out: &mut Vec<Finding>) {
    let n = facts.orphans.len();
    if n == 0 {
        return;
    }
    push(out, facts, "orphan-files", Draft {
        severity: if n >= 100 { Severity::Mid } else { Severity::Low },
        partition: None,
        bucket: None,
        evidence: vec![Evidence::new("orphan_files", n, 1usize)],
        cause: format!("{n} files older than a day are referenced by no snapshot, tag or branch (failed or interrupted commits)."),
        fix: format!("CALL sys.remove_orphan_files(table => '{}')", facts.name),
        remedy: Remedy::RemoveOrphans,
        magnitude: n as f64,
    });
}

fn manifests(facts: &TableFacts, out: &mut Vec<Finding>) {
    let n = facts.manifest_sizes.len();
    // A commit merges once it finds merge-min-count manifests, so up to
    // that many is the normal state; and manifests a merge cannot make
    // fewer (each already near manifest.target-file-size) are no problem.
    let min = facts.options.manifest_merge_min_count.max(1) + 1;
    if n < min || facts.manifests_compact {
        return;
    }
    push(out, facts, "manifest-fragmented", Draft {
        severity: Severity::Low,
        partition: None,
        bucket: None,
        evidence: vec![
            Evidence::new("data_manifests", n, min),
            Evidence::context("manifest_bytes", facts.manifest_sizes.iter().sum::<u64>()),
            Evidence::context("manifests_after_merge", facts.manifests_after_merge),
        ],
        cause: format!("The latest snapshot lists {n} data manifests, read by every scan plan; commits merge them only once they find manifest.merge-min-count ({}).", min - 1),
        fix: format!("CALL sys.compact_manifest(table => '{}') (a COMPACT snapshot that merges the manifests and changes no data)", facts.name),
        remedy: Remedy::MergeManifests,
        magnitude: n as f64 / min as f64,
    });
}

fn deletion_ratio(facts: &TableFacts, out: &mut Vec<Finding>) {
    const RATIO: f64 = 0.3;
    const MIN_DELETED: u64 = 100;
    for b in &facts.buckets {
        let deleted = b.dv_deleted + b.files.iter().map(|f| f.retractions).sum::<u64>();
        let rows = b.rows();
        if rows == 0 || deleted < MIN_DELETED {
            continue;
        }
        let ratio = deleted as f64 / rows as f64;
        if ratio < RATIO {
            continue;
        }
        push(out, facts, "deletion-ratio", Draft {
            severity: if ratio >= 0.6 { Severity::High } else { Severity::Mid },
            partition: Some(b.partition_name.clone()),
            bucket: Some(b.bucket),
            evidence: vec![
                Evidence::new("deleted_ratio", ratio, RATIO),
                Evidence::context("deleted_rows", deleted),
                Evidence::context("rows", rows),
            ],
            cause: format!("{deleted} of {rows} stored rows are deleted ({}), and only a compaction into the top level drops them.",
                if b.dv_deleted > 0 { "deletion vectors" } else { "retraction rows" }),
            fix: format!("tidelake compact {}{} --full", facts.name, partition_arg(&b.partition_name)),
            remedy: Remedy::Compact { buckets: vec![b.id()] },
            magnitude: ratio / RATIO,
        });
    }
}

fn conflicts(facts: &TableFacts, out: &mut Vec<Finding>) {
    const MIN_RETRIES: u64 = 3;
    let mut per_partition: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    for s in &facts.snapshots {
        for p in &s.partitions {
            let e = per_partition.entry(p.as_str()).or_default();
            e.0 += s.retries;
            e.1 += 1;
        }
    }
    for (partition, (retries, commits)) in per_partition {
        if retries < MIN_RETRIES {
            continue;
        }
        push(out, facts, "multi-writer-conflicts", Draft {
            severity: if retries >= 10 * MIN_RETRIES { Severity::High } else { Severity::Mid },
            partition: Some(partition.to_string()),
            bucket: None,
            evidence: vec![
                Evidence::new("commit_retries", retries, MIN_RETRIES),
                Evidence::context("commits_that_retried", commits),
            ],
            cause: format!("{commits} commits into this partition had to retry {retries} times: several writers race for its buckets."),
            fix: "Route each partition to one writer, or write 'write-only' and compact in one dedicated job.".to_string(),
            remedy: Remedy::Advice,
            magnitude: retries as f64 / MIN_RETRIES as f64,
        });
    }
}

fn changelog(facts: &TableFacts, out: &mut Vec<Finding>) {
    let o = &facts.options;
    if !facts.primary_key {
        return;
    }
    let threshold = match o.changelog_producer {
        ChangelogProducer::Lookup => o.num_sorted_run_compaction_trigger,
        ChangelogProducer::FullCompaction => o
            .full_compaction_delta_commits
            .map_or(o.num_sorted_run_compaction_trigger, |d| d as usize + 1),
        _ => return,
    }
    .max(1);
    let pending = facts
        .snapshots
        .iter()
        .rev()
        .take_while(|s| s.changelog_records == 0)
        .filter(|s| s.kind == CommitKind::Append && s.delta_records != 0)
        .count();
    if pending < threshold {
        return;
    }
    let level0: Vec<(Vec<u8>, i32)> = facts
        .buckets
        .iter()
        .filter(|b| b.files.iter().any(|f| f.level == 0))
        .map(|b| b.id())
        .collect();
    push(out, facts, "changelog-starved", Draft {
        severity: if o.write_only { Severity::High } else { Severity::Mid },
        partition: None,
        bucket: None,
        evidence: vec![
            Evidence::new("commits_without_changelog", pending, threshold),
            Evidence::context("compact_snapshots_retained", compact_count(facts)),
        ],
        cause: format!(
            "changelog-producer writes changelog only when compaction runs; {pending} data commits produced none{}.",
            if o.write_only { " ('write-only': nothing compacts)" } else { "" }
        ),
        fix: format!("tidelake compact {} --full; run a dedicated compaction job or set full-compaction.delta-commits", facts.name),
        remedy: Remedy::Compact { buckets: level0 },
        magnitude: pending as f64 / threshold as f64,
    });
}
