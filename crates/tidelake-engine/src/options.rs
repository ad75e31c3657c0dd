//! Typed access to the Paimon table options the engine honours, with
//! Paimon's defaults. Unknown options are kept in the schema untouched (other
//! engines may use them) but never interpreted here.

use std::collections::BTreeMap;

use crate::error::{EngineError, Result};

/// Paimon's `merge-engine` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeEngine {
    Deduplicate,
    PartialUpdate,
    Aggregation,
    FirstRow,
}

/// Paimon's `changelog-producer` option: how a primary-key table produces
/// the complete -U/+U/-D/+I stream streaming readers consume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangelogProducer {
    /// No changelog files: streaming readers see the delta files.
    None,
    /// Writers copy their input rows into changelog files at flush.
    Input,
    /// Compactions that consume level-0 files look up the previous value of
    /// each of their keys in the higher levels and write the difference.
    Lookup,
    /// Compactions into the highest level write the difference against the
    /// previous highest level.
    FullCompaction,
}

/// The options of one table, read once from its schema.
#[derive(Clone, Debug)]
pub struct TableOptions {
    pub bucket: i32,
    pub write_buffer_size: usize,
    pub target_file_size: u64,
    pub file_compression: String,
    pub file_compression_zstd_level: i32,
    pub manifest_compression: String,
    pub manifest_merge_min_count: usize,
    pub manifest_target_file_size: u64,
    pub merge_engine: MergeEngine,
    pub partition_default_name: String,
    pub dynamic_bucket_target_row_num: u64,
    pub file_format: String,
    pub data_file_prefix: String,
    pub commit_max_retries: u32,
    pub sequence_fields: Vec<String>,
    pub write_only: bool,
    pub stats_truncate_length: Option<usize>,
    /// `partition.legacy-name`: Paimon's default (true) names DATE partitions
    /// by day number; false uses readable `yyyy-MM-dd` values.
    pub partition_legacy_name: bool,
    /// `num-sorted-run.compaction-trigger`: sorted runs of a bucket that start a compaction.
    pub num_sorted_run_compaction_trigger: usize,
    /// `num-sorted-run.stop-trigger`: sorted runs at which writing waits for compaction.
    pub num_sorted_run_stop_trigger: usize,
    /// `compaction.max-size-amplification-percent`.
    pub compaction_max_size_amplification_percent: u64,
    /// `compaction.size-ratio` (percent).
    pub compaction_size_ratio: u64,
    /// `num-levels`: the LSM tree's levels; the highest is `num_levels - 1`.
    pub num_levels: usize,
    // Snapshot lifecycle (see `crate::lifecycle`).
    /// `snapshot.num-retained.min` (10).
    pub snapshot_num_retained_min: usize,
    /// `snapshot.num-retained.max` (i32::MAX).
    pub snapshot_num_retained_max: usize,
    /// `snapshot.time-retained` (1 h), in milliseconds.
    pub snapshot_time_retained_millis: i64,
    /// `snapshot.expire.limit` (10): snapshots expired per run at most.
    pub snapshot_expire_limit: usize,
    /// `changelog-producer` (none).
    pub changelog_producer: ChangelogProducer,
    /// `changelog-file.prefix` (`changelog-`).
    pub changelog_file_prefix: String,
    /// `full-compaction.delta-commits`: writers run a full compaction when
    /// the snapshot they commit is a multiple of it.
    pub full_compaction_delta_commits: Option<u64>,
    /// `lookup-wait` (true): with the lookup producer, writers compact their
    /// level-0 files right after each commit, so changes reach the changelog
    /// at once.
    pub lookup_wait: bool,
    /// `deletion-vectors.enabled` (false): compactions mark replaced rows of
    /// higher levels in per-file deletion vectors, and batch reads skip
    /// level 0 and read each file without merging.
    pub deletion_vectors_enabled: bool,
    /// Parquet's writer settings, under Paimon's pass-through names.
    pub parquet: ParquetOptions,
}

/// Parquet writer settings a table may set with Paimon's pass-through
/// option names (`parquet.*`, as Paimon hands them to parquet-java).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParquetOptions {
    /// `parquet.page.size`: uncompressed bytes per data page.
    pub page_size: usize,
    /// `parquet.dictionary.page.size`: the dictionary's size limit per
    /// column chunk, beyond which a column falls back to plain encoding.
    pub dictionary_page_size: usize,
    /// `parquet.enable.dictionary` (true).
    pub enable_dictionary: bool,
}

/// Parquet's own page and dictionary limit (1 MiB), kept for append tables.
const PARQUET_PAGE_SIZE: u64 = 1 << 20;
/// Primary-key tables default to small pages: a key lookup decompresses and
/// decodes the whole page holding its row (and the column's dictionary), so
/// page size is the cost of a lookup, while scans lose little (zstd
/// compresses the plain-encoded pages about as well).
const PRIMARY_KEY_PAGE_SIZE: u64 = 64 << 10;

impl ParquetOptions {
    fn from_map(options: &BTreeMap<String, String>, has_primary_key: bool) -> Result<Self> {
        let default = if has_primary_key {
            PRIMARY_KEY_PAGE_SIZE
        } else {
            PARQUET_PAGE_SIZE
        };
        let size = |key: &str| -> Result<usize> {
            let bytes = match options.get(key) {
                Some(v) => parse_size(key, v)?,
                None => default,
            };
            if bytes == 0 || bytes > 1 << 30 {
                return Err(EngineError::invalid(format!(
                    "option '{key}': {bytes} bytes is not between 1 byte and 1 gb"
                )));
            }
            usize::try_from(bytes)
                .map_err(|_| EngineError::invalid(format!("option '{key}': too large")))
        };
        Ok(ParquetOptions {
            page_size: size("parquet.page.size")?,
            dictionary_page_size: size("parquet.dictionary.page.size")?,
            enable_dictionary: match options.get("parquet.enable.dictionary") {
                Some(v) => parse_bool("parquet.enable.dictionary", v)?,
                None => true,
            },
        })
    }
}

fn parse_size(key: &str, value: &str) -> Result<u64> {
    let v = value.trim().to_ascii_lowercase().replace(' ', "");
    let (digits, mult) = [
        ("kb", 1u64 << 10),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("tb", 1 << 40),
        ("k", 1 << 10),
        ("m", 1 << 20),
        ("g", 1 << 30),
        ("t", 1 << 40),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| v.strip_suffix(suffix).map(|d| (d.to_string(), *m)))
    .unwrap_or((v.clone(), 1));
    digits.parse::<u64>().map(|d| d * mult).map_err(|_| {
        EngineError::invalid(format!(
            "option '{key}': '{value}' is not a size (e.g. 256 mb)"
        ))
    })
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value.trim().parse::<T>().map_err(|_| {
        EngineError::invalid(format!("option '{key}': '{value}' is not a valid number"))
    })
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(EngineError::invalid(format!(
            "option '{key}': '{value}' is not true or false"
        ))),
    }
}

/// The combinations Paimon refuses with `deletion-vectors.enabled`.
fn check_deletion_vectors(
    has_primary_key: bool,
    producer: ChangelogProducer,
    engine: MergeEngine,
) -> Result<()> {
    if !has_primary_key {
        return Err(EngineError::Unsupported(
            "option 'deletion-vectors.enabled' on a table without a primary key".into(),
        ));
    }
    if producer == ChangelogProducer::FullCompaction {
        return Err(EngineError::invalid(
            "option 'deletion-vectors.enabled' works with 'changelog-producer' = 'none', 'input' or 'lookup' only (as in Paimon)",
        ));
    }
    if engine == MergeEngine::FirstRow {
        return Err(EngineError::invalid(
            "option 'deletion-vectors.enabled' cannot be used with the first-row merge engine: it never deletes old rows, so it needs no deletion vectors (Paimon refuses it too)",
        ));
    }
    Ok(())
}

impl TableOptions {
    /// Reads the options, failing with a message naming the bad option.
    pub fn from_map(options: &BTreeMap<String, String>, has_primary_key: bool) -> Result<Self> {
        let get = |k: &str| options.get(k).map(String::as_str);
        let bucket = match get("bucket") {
            Some(v) => parse_num::<i32>("bucket", v)?,
            None => -1,
        };
        if bucket == 0 || bucket < -2 {
            return Err(EngineError::invalid(format!(
                "option 'bucket': {bucket} is not valid (use a positive number, or -1 for dynamic buckets)"
            )));
        }
        if bucket == -2 {
            return Err(EngineError::Unsupported(
                "postponed buckets ('bucket' = '-2') are not supported yet".into(),
            ));
        }
        let merge_engine = match get("merge-engine").unwrap_or("deduplicate") {
            "deduplicate" => MergeEngine::Deduplicate,
            "partial-update" => MergeEngine::PartialUpdate,
            "aggregation" => MergeEngine::Aggregation,
            "first-row" => MergeEngine::FirstRow,
            other => {
                return Err(EngineError::invalid(format!(
                    "option 'merge-engine': unknown engine '{other}' (deduplicate, partial-update, aggregation, first-row)"
                )))
            }
        };
        let file_format = get("file.format").unwrap_or("parquet").to_ascii_lowercase();
        if file_format != "parquet" {
            return Err(EngineError::Unsupported(format!(
                "option 'file.format' = '{file_format}': only parquet data files are supported"
            )));
        }
        let stats_truncate_length = match get("metadata.stats-mode").unwrap_or("truncate(16)") {
            "full" => None,
            "none" | "counts" => Some(0),
            mode => match mode.strip_prefix("truncate(").and_then(|m| m.strip_suffix(')')) {
                Some(n) => Some(parse_num::<usize>("metadata.stats-mode", n)?),
                None => {
                    return Err(EngineError::invalid(format!(
                        "option 'metadata.stats-mode': '{mode}' is not none, counts, full or truncate(N)"
                    )))
                }
            },
        };
        let changelog_producer = match get("changelog-producer").unwrap_or("none") {
            "none" => ChangelogProducer::None,
            "input" => ChangelogProducer::Input,
            "lookup" => ChangelogProducer::Lookup,
            "full-compaction" => ChangelogProducer::FullCompaction,
            other => {
                return Err(EngineError::invalid(format!(
                    "option 'changelog-producer': unknown producer '{other}' (none, input, lookup, full-compaction)"
                )))
            }
        };
        if changelog_producer != ChangelogProducer::None && !has_primary_key {
            return Err(EngineError::invalid(
                "option 'changelog-producer' needs a primary key: a table without one has no changelog beyond its appended rows",
            ));
        }
        let full_compaction_delta_commits = match get("full-compaction.delta-commits") {
            Some(v) => {
                let n = parse_num::<u64>("full-compaction.delta-commits", v)?;
                if n == 0 {
                    return Err(EngineError::invalid(
                        "option 'full-compaction.delta-commits' must be at least 1",
                    ));
                }
                Some(n)
            }
            None => None,
        };
        let compaction_trigger: usize = parse_num(
            "num-sorted-run.compaction-trigger",
            get("num-sorted-run.compaction-trigger").unwrap_or("5"),
        )?;
        let num_sorted_run_stop_trigger = match get("num-sorted-run.stop-trigger") {
            Some(v) => parse_num::<usize>("num-sorted-run.stop-trigger", v)?,
            None => compaction_trigger + 3,
        };
        let num_levels = match get("num-levels") {
            Some(v) => parse_num::<usize>("num-levels", v)?,
            None => compaction_trigger + 1,
        };
        if compaction_trigger < 1 || num_levels < 2 {
            return Err(EngineError::invalid(format!(
                "options 'num-sorted-run.compaction-trigger' ({compaction_trigger}) must be at least 1 and 'num-levels' ({num_levels}) at least 2"
            )));
        }
        let deletion_vectors_enabled = parse_bool(
            "deletion-vectors.enabled",
            get("deletion-vectors.enabled").unwrap_or("false"),
        )?;
        if deletion_vectors_enabled {
            check_deletion_vectors(has_primary_key, changelog_producer, merge_engine)?;
        }
        let snapshot_num_retained_min: usize = parse_num(
            "snapshot.num-retained.min",
            get("snapshot.num-retained.min").unwrap_or("10"),
        )?;
        let snapshot_num_retained_max: usize = match get("snapshot.num-retained.max") {
            Some(v) => parse_num("snapshot.num-retained.max", v)?,
            None => i32::MAX as usize,
        };
        if snapshot_num_retained_min < 1 || snapshot_num_retained_max < snapshot_num_retained_min {
            return Err(EngineError::invalid(format!(
                "options 'snapshot.num-retained.min' ({snapshot_num_retained_min}) must be at least 1 and at most 'snapshot.num-retained.max' ({snapshot_num_retained_max})"
            )));
        }
        let snapshot_time_retained_millis =
            parse_duration_millis(get("snapshot.time-retained").unwrap_or("1 h")).map_err(|e| {
                EngineError::invalid(format!("option 'snapshot.time-retained': {e}"))
            })?;
        let snapshot_expire_limit: usize = parse_num(
            "snapshot.expire.limit",
            get("snapshot.expire.limit").unwrap_or("10"),
        )?;
        Ok(TableOptions {
            deletion_vectors_enabled,
            changelog_producer,
            changelog_file_prefix: get("changelog-file.prefix")
                .unwrap_or("changelog-")
                .to_string(),
            full_compaction_delta_commits,
            lookup_wait: parse_bool("lookup-wait", get("lookup-wait").unwrap_or("true"))?,
            snapshot_num_retained_min,
            snapshot_num_retained_max,
            snapshot_time_retained_millis,
            snapshot_expire_limit,
            num_sorted_run_compaction_trigger: compaction_trigger,
            num_sorted_run_stop_trigger: num_sorted_run_stop_trigger.max(compaction_trigger),
            compaction_max_size_amplification_percent: parse_num(
                "compaction.max-size-amplification-percent",
                get("compaction.max-size-amplification-percent").unwrap_or("200"),
            )?,
            compaction_size_ratio: parse_num(
                "compaction.size-ratio",
                get("compaction.size-ratio").unwrap_or("1"),
            )?,
            num_levels,
            bucket,
            write_buffer_size: parse_size(
                "write-buffer-size",
                get("write-buffer-size").unwrap_or("256 mb"),
            )? as usize,
            target_file_size: parse_size(
                "target-file-size",
                get("target-file-size").unwrap_or("128 mb"),
            )?,
            file_compression: get("file.compression")
                .unwrap_or("zstd")
                .to_ascii_lowercase(),
            file_compression_zstd_level: parse_num(
                "file.compression.zstd-level",
                get("file.compression.zstd-level").unwrap_or("1"),
            )?,
            manifest_compression: get("manifest.compression")
                .unwrap_or("zstd")
                .to_ascii_lowercase(),
            manifest_merge_min_count: parse_num(
                "manifest.merge-min-count",
                get("manifest.merge-min-count").unwrap_or("30"),
            )?,
            manifest_target_file_size: parse_size(
                "manifest.target-file-size",
                get("manifest.target-file-size").unwrap_or("8 mb"),
            )?,
            merge_engine,
            partition_default_name: get("partition.default-name")
                .unwrap_or("__DEFAULT_PARTITION__")
                .to_string(),
            dynamic_bucket_target_row_num: parse_num(
                "dynamic-bucket.target-row-num",
                get("dynamic-bucket.target-row-num").unwrap_or("2000000"),
            )?,
            file_format,
            data_file_prefix: get("data-file.prefix").unwrap_or("data-").to_string(),
            commit_max_retries: parse_num(
                "commit.max-retries",
                get("commit.max-retries").unwrap_or("10"),
            )?,
            sequence_fields: get("sequence.field")
                .map(|s| {
                    s.split(',')
                        .map(|f| f.trim().to_string())
                        .filter(|f| !f.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            write_only: parse_bool("write-only", get("write-only").unwrap_or("false"))?,
            stats_truncate_length,
            partition_legacy_name: parse_bool(
                "partition.legacy-name",
                get("partition.legacy-name").unwrap_or("true"),
            )?,
            parquet: ParquetOptions::from_map(options, has_primary_key)?,
        })
    }
}

/// Parses a Paimon duration such as `1 h`, `30 min`, `7d`, `500 ms` or
/// `90s` (a bare number is milliseconds) into milliseconds.
pub fn parse_duration_millis(text: &str) -> Result<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || {
        EngineError::invalid(format!(
            "'{text}' is not a duration (e.g. '1 h', '30 min', '7d', '500 ms')"
        ))
    };
    let amount: i64 = digits.parse().map_err(|_| bad())?;
    let millis_per_unit: i64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return Err(bad()),
    };
    amount.checked_mul(millis_per_unit).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_paimon() {
        assert_eq!(parse_duration_millis("1 h").unwrap(), 3_600_000);
        assert_eq!(parse_duration_millis("30 min").unwrap(), 1_800_000);
        assert_eq!(parse_duration_millis("7d").unwrap(), 7 * 86_400_000);
        assert_eq!(parse_duration_millis("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_millis("250").unwrap(), 250);
        assert_eq!(parse_duration_millis(" 2 hours ").unwrap(), 7_200_000);
        assert!(parse_duration_millis("soon").is_err());
        assert!(parse_duration_millis("1 fortnight").is_err());
        assert!(parse_duration_millis("").is_err());
        assert!(parse_duration_millis("99999999999999999 d").is_err());
    }

    #[test]
    fn sizes_parse_like_paimon() {
        assert_eq!(parse_size("k", "256 mb").unwrap(), 256 << 20);
        assert_eq!(parse_size("k", "1kb").unwrap(), 1024);
        assert_eq!(parse_size("k", "42").unwrap(), 42);
        assert!(parse_size("k", "lots").is_err());
    }

    #[test]
    fn parquet_pages_are_small_for_key_tables_unless_set() {
        let mut m = BTreeMap::new();
        let key = TableOptions::from_map(&m, true).unwrap().parquet;
        let append = TableOptions::from_map(&m, false).unwrap().parquet;
        assert_eq!(
            (key.page_size, key.dictionary_page_size),
            (64 << 10, 64 << 10)
        );
        assert_eq!(append.page_size, 1 << 20);
        assert!(key.enable_dictionary);
        m.insert("parquet.page.size".into(), "1 mb".into());
        m.insert("parquet.dictionary.page.size".into(), "2mb".into());
        m.insert("parquet.enable.dictionary".into(), "false".into());
        let set = TableOptions::from_map(&m, true).unwrap().parquet;
        assert_eq!(
            (set.page_size, set.dictionary_page_size),
            (1 << 20, 2 << 20)
        );
        assert!(!set.enable_dictionary);
        m.insert("parquet.page.size".into(), "0".into());
        let err = TableOptions::from_map(&m, true).unwrap_err().to_string();
        assert!(err.contains("'parquet.page.size'"), "{err}");
        m.insert("parquet.page.size".into(), "big".into());
        let err = TableOptions::from_map(&m, true).unwrap_err().to_string();
        assert!(err.contains("'parquet.page.size'"), "{err}");
    }

    #[test]
    fn defaults_and_bad_values() {
        let mut m = BTreeMap::new();
        let o = TableOptions::from_map(&m, true).unwrap();
        assert_eq!(o.bucket, -1);
        assert_eq!(o.merge_engine, MergeEngine::Deduplicate);
        assert_eq!(o.num_sorted_run_compaction_trigger, 5);
        assert_eq!(o.num_sorted_run_stop_trigger, 8);
        assert_eq!(o.num_levels, 6);
        assert_eq!(o.compaction_max_size_amplification_percent, 200);
        m.insert("bucket".into(), "zero".into());
        let err = TableOptions::from_map(&m, true).unwrap_err().to_string();
        assert!(err.contains("'bucket'"), "{err}");
        m.insert("bucket".into(), "0".into());
        assert!(TableOptions::from_map(&m, true).is_err());
    }

    #[test]
    fn deletion_vectors_are_refused_where_paimon_refuses_them() {
        let options = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            let mut m: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            m.insert("deletion-vectors.enabled".into(), "true".into());
            m
        };
        assert!(
            !TableOptions::from_map(&BTreeMap::new(), true)
                .unwrap()
                .deletion_vectors_enabled
        );
        for producer in ["none", "input", "lookup"] {
            let o = TableOptions::from_map(&options(&[("changelog-producer", producer)]), true);
            assert!(o.unwrap().deletion_vectors_enabled, "{producer}");
        }
        for engine in ["deduplicate", "partial-update", "aggregation"] {
            let o = TableOptions::from_map(&options(&[("merge-engine", engine)]), true);
            assert!(o.is_ok(), "{engine}");
        }
        let refused = [
            (
                options(&[("changelog-producer", "full-compaction")]),
                true,
                "changelog-producer",
            ),
            (options(&[("merge-engine", "first-row")]), true, "first-row"),
            (options(&[]), false, "primary key"),
        ];
        for (m, pk, needle) in refused {
            let err = TableOptions::from_map(&m, pk).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let mut m = BTreeMap::new();
        m.insert("deletion-vectors.enabled".to_string(), "yes".to_string());
        assert!(TableOptions::from_map(&m, true).is_err());
    }
}
