//! `tidelake advise db.table`: option recommendations from the table's
//! observed shape and workload, each with its evidence and expected effect.
//! Advice only: nothing is changed.

use serde::Serialize;
use tidelake_engine::introspect::CommitKind;
use tidelake_engine::options::{ChangelogProducer, MergeEngine};

use crate::finding::Evidence;
use crate::observe::TableFacts;

/// One recommended option value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Advice {
    pub option: String,
    pub current: String,
    pub recommended: String,
    pub effect: String,
    pub evidence: Vec<Evidence>,
}

fn mb(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} mb", bytes >> 20)
    } else if bytes.is_multiple_of(1024) {
        format!("{} kb", bytes >> 10)
    } else {
        format!("{bytes} b")
    }
}

/// The recommendations for one table, in option order.
pub fn advise(facts: &TableFacts) -> Vec<Advice> {
    let mut out = Vec::new();
    bucket(facts, &mut out);
    write_buffer(facts, &mut out);
    target_file_size(facts, &mut out);
    changelog_producer(facts, &mut out);
    deletion_vectors(facts, &mut out);
    compaction_trigger(facts, &mut out);
    consumer_expiration(facts, &mut out);
    out.sort_by(|a, b| a.option.cmp(&b.option));
    out
}

fn bucket(facts: &TableFacts, out: &mut Vec<Advice>) {
    let o = &facts.options;
    if o.bucket < 1 {
        return;
    }
    let ideal = 4 * o.target_file_size.max(1);
    let largest = facts
        .partitions()
        .values()
        .map(|b| b.iter().map(|x| x.bytes()).sum::<u64>())
        .max()
        .unwrap_or(0);
    if largest < o.target_file_size {
        return;
    }
    let current = o.bucket as u64;
    let recommended = largest.div_ceil(ideal).max(1);
    if recommended * 2 > current && recommended < current * 2 {
        return;
    }
    out.push(Advice {
        option: "bucket".into(),
        current: current.to_string(),
        recommended: recommended.to_string(),
        effect: format!(
            "about {} per bucket (4 x target-file-size): one writer and one reader task per bucket stay busy but not overloaded; rescaling rewrites the table (INSERT OVERWRITE)",
            mb(ideal)
        ),
        evidence: vec![
            Evidence::context("largest_partition_bytes", largest),
            Evidence::context("bytes_per_bucket", largest / current),
        ],
    });
}

fn write_buffer(facts: &TableFacts, out: &mut Vec<Advice>) {
    let o = &facts.options;
    let buffer = o.write_buffer_size as u64;
    if buffer >= o.target_file_size {
        return;
    }
    let level0: Vec<u64> = facts
        .buckets
        .iter()
        .flat_map(|b| b.files.iter())
        .filter(|f| f.level == 0)
        .map(|f| f.size)
        .collect();
    out.push(Advice {
        option: "write-buffer-size".into(),
        current: mb(buffer),
        recommended: mb(o.target_file_size),
        effect: "flushes write files of target-file-size instead of smaller level-0 files: fewer sorted runs and less compaction".into(),
        evidence: vec![
            Evidence::context("write_buffer_size", buffer),
            Evidence::context("target_file_size", o.target_file_size),
            Evidence::context("level0_files", level0.len()),
        ],
    });
}

fn target_file_size(facts: &TableFacts, out: &mut Vec<Advice>) {
    let o = &facts.options;
    if facts.buckets.is_empty() {
        return;
    }
    let files = facts.total_files();
    let per_bucket = files / facts.buckets.len();
    let mean_size = facts.total_bytes() / files.max(1) as u64;
    if per_bucket < 64 || mean_size * 5 < o.target_file_size * 4 {
        return;
    }
    out.push(Advice {
        option: "target-file-size".into(),
        current: mb(o.target_file_size),
        recommended: mb(o.target_file_size * 2),
        effect: "halves the files per bucket: fewer manifest entries and file opens per scan"
            .into(),
        evidence: vec![
            Evidence::context("files_per_bucket", per_bucket),
            Evidence::context("mean_file_bytes", mean_size),
        ],
    });
}

fn changelog_producer(facts: &TableFacts, out: &mut Vec<Advice>) {
    let o = &facts.options;
    if !facts.primary_key
        || !matches!(
            o.changelog_producer,
            ChangelogProducer::None | ChangelogProducer::Input
        )
        || facts.consumers.is_empty()
    {
        return;
    }
    out.push(Advice {
        option: "changelog-producer".into(),
        current: format!("{:?}", o.changelog_producer).to_lowercase(),
        recommended: "lookup".into(),
        effect: "streaming readers get a complete changelog (-U/+U with old values) instead of upserts, so aggregates and joins downstream stay exact".into(),
        evidence: vec![Evidence::context("streaming_consumers", facts.consumers.len())],
    });
}

fn deletion_vectors(facts: &TableFacts, out: &mut Vec<Advice>) {
    let o = &facts.options;
    if !facts.primary_key
        || o.deletion_vectors_enabled
        || o.merge_engine == MergeEngine::FirstRow
        || o.changelog_producer == ChangelogProducer::FullCompaction
        || facts.buckets.is_empty()
    {
        return;
    }
    let runs: usize = facts.buckets.iter().map(|b| b.sorted_runs()).sum();
    let mean_runs = runs as f64 / facts.buckets.len() as f64;
    if mean_runs < 2.0 {
        return;
    }
    out.push(Advice {
        option: "deletion-vectors.enabled".into(),
        current: "false".into(),
        recommended: "true".into(),
        effect: "batch reads skip merging sorted runs (each file read as is, minus deleted rows) and prune by value statistics; writes do a lookup at compaction; fixed at CREATE, so recreate the table".into(),
        evidence: vec![Evidence::context("mean_sorted_runs_per_bucket", mean_runs)],
    });
}

fn compaction_trigger(facts: &TableFacts, out: &mut Vec<Advice>) {
    let o = &facts.options;
    if !facts.primary_key || o.write_only || facts.snapshots.len() < 10 {
        return;
    }
    let compacts = facts
        .snapshots
        .iter()
        .filter(|s| s.kind == CommitKind::Compact)
        .count();
    let share = compacts as f64 / facts.snapshots.len() as f64;
    if share < 0.4 {
        return;
    }
    let trigger = o.num_sorted_run_compaction_trigger;
    out.push(Advice {
        option: "num-sorted-run.compaction-trigger".into(),
        current: trigger.to_string(),
        recommended: (trigger + 3).to_string(),
        effect: format!(
            "fewer inline compactions (now {:.0}% of snapshots) at the cost of merging a few more runs on read; keep num-sorted-run.stop-trigger above it",
            share * 100.0
        ),
        evidence: vec![Evidence::context("compact_snapshot_share", share)],
    });
}

fn consumer_expiration(facts: &TableFacts, out: &mut Vec<Advice>) {
    if facts.consumers.is_empty() || facts.raw_options.contains_key("consumer.expiration-time") {
        return;
    }
    out.push(Advice {
        option: "consumer.expiration-time".into(),
        current: "(unset)".into(),
        recommended: "1 d".into(),
        effect: "an abandoned reader stops pinning snapshots a day after its last progress".into(),
        evidence: vec![Evidence::context("consumers", facts.consumers.len())],
    });
}
