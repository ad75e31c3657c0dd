//! Partitions as units, as Paimon manages them: listing the live ones,
//! dropping them (one OVERWRITE commit whose DELETE entries remove every
//! live file of the partitions, as Paimon's `dropPartitions`; the files
//! themselves go when the snapshots that still list them expire), truncating
//! a table, and expiring partitions by the time their values name
//! (`partition.expiration-time`, after commits and by procedure).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{NaiveDate, NaiveDateTime};
use tidelake_format::binary_row::deserialize_binary_row;
use tidelake_format::path::partition_value_string;
use tidelake_format::snapshot::CommitKind;

use crate::commit::{CommitRequest, Committer};
use crate::error::{EngineError, Result};
use crate::options::parse_duration_millis;
use crate::table::Table;
use crate::Datum;

/// One live partition of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionInfo {
    /// The serialized BinaryRow of the partition values.
    pub partition: Vec<u8>,
    /// The values, one per partition column.
    pub values: Vec<Datum>,
    pub record_count: i64,
    pub file_count: usize,
    pub file_size_bytes: i64,
    /// The newest creation time of its files (epoch millis), if known.
    pub last_file_creation_millis: Option<i64>,
}

impl Table {
    /// Every partition with live files in the latest snapshot, ordered by
    /// their serialized values (unpartitioned tables have one, without values).
    pub async fn list_partitions(&self) -> Result<Vec<PartitionInfo>> {
        let Some(snapshot) = self.reader.latest_snapshot().await? else {
            return Ok(Vec::new());
        };
        let store = self.manifest_store()?;
        let metas = store.data_manifests(&snapshot).await?;
        let live = store.live_entries(&metas, &|_| true).await?;
        let mut by_partition: BTreeMap<Vec<u8>, PartitionInfo> = BTreeMap::new();
        for e in live {
            let info = match by_partition.get_mut(&e.partition) {
                Some(info) => info,
                None => {
                    let values = deserialize_binary_row(&e.partition, &self.layout.partition_types)
                        .map_err(|err| EngineError::format("partition", err))?;
                    by_partition
                        .entry(e.partition.clone())
                        .or_insert(PartitionInfo {
                            partition: e.partition.clone(),
                            values,
                            record_count: 0,
                            file_count: 0,
                            file_size_bytes: 0,
                            last_file_creation_millis: None,
                        })
                }
            };
            info.record_count += e.file.row_count;
            info.file_count += 1;
            info.file_size_bytes += e.file.file_size;
            info.last_file_creation_millis =
                info.last_file_creation_millis.max(e.file.creation_time);
        }
        Ok(by_partition.into_values().collect())
    }

    /// Drops `partitions` (serialized values, as [`PartitionInfo::partition`]):
    /// one OVERWRITE snapshot deletes every file live in them. Returns the
    /// snapshot id; `None` when no partition was given.
    pub async fn drop_partitions(
        &self,
        partitions: Vec<Vec<u8>>,
        properties: BTreeMap<String, String>,
    ) -> Result<Option<i64>> {
        if partitions.is_empty() {
            // An empty list would mean "every partition" to the committer.
            return Ok(None);
        }
        self.commit_and_expire(empty_overwrite(Some(partitions), properties))
            .await
    }

    /// Removes every row: an OVERWRITE snapshot of the whole table with no
    /// new files (Paimon's `truncateTable`).
    pub async fn truncate(&self, properties: BTreeMap<String, String>) -> Result<Option<i64>> {
        self.commit_and_expire(empty_overwrite(Some(Vec::new()), properties))
            .await
    }

    /// Commits, then expires snapshots as after any commit (partition
    /// expiration aside: the commit itself removes partitions).
    async fn commit_and_expire(&self, request: CommitRequest) -> Result<Option<i64>> {
        let id = Committer::new(self)?.commit(request).await?;
        if id.is_some() {
            crate::lifecycle::expire_after_commit(self).await;
        }
        Ok(id)
    }

    /// Drops the partitions `options` finds expired at `now_millis`; returns
    /// them (none, and no snapshot, when nothing expired).
    pub async fn expire_partitions(
        &self,
        options: &PartitionExpireOptions,
        now_millis: i64,
    ) -> Result<Vec<PartitionInfo>> {
        let expired = self.expired_partitions(options, now_millis).await?;
        if !expired.is_empty() {
            let partitions = expired.iter().map(|p| p.partition.clone()).collect();
            // Committed without partition expiration, which is what calls
            // this: it must not start itself again.
            self.commit_and_expire(empty_overwrite(Some(partitions), BTreeMap::new()))
                .await?;
        }
        Ok(expired)
    }

    /// The partitions `options` finds expired at `now_millis`, oldest first,
    /// at most `options.max_expires`.
    pub async fn expired_partitions(
        &self,
        options: &PartitionExpireOptions,
        now_millis: i64,
    ) -> Result<Vec<PartitionInfo>> {
        if self.partition_keys().is_empty() {
            return Ok(Vec::new());
        }
        let deadline = now_millis.saturating_sub(options.expiration_millis);
        let mut expired: Vec<(i64, PartitionInfo)> = Vec::new();
        for info in self.list_partitions().await? {
            let time = match options.strategy {
                ExpireStrategy::UpdateTime => info.last_file_creation_millis,
                ExpireStrategy::ValuesTime => self.partition_time(&info.values, options),
            };
            match time {
                Some(t) if t < deadline => expired.push((t, info)),
                _ => {}
            }
        }
        expired.sort_by_key(|(t, _)| *t);
        expired.truncate(options.max_expires);
        Ok(expired.into_iter().map(|(_, p)| p).collect())
    }

    /// The time a partition's values name (epoch millis, read as UTC);
    /// `None` (logged) when they do not parse, so that such partitions stay.
    fn partition_time(&self, values: &[Datum], options: &PartitionExpireOptions) -> Option<i64> {
        let mut texts = Vec::with_capacity(values.len());
        for (value, ty) in values.iter().zip(&self.layout.partition_types) {
            // Values as text (DATE as yyyy-MM-dd, not its day number).
            let text = partition_value_string(value, ty, false).ok().flatten()?;
            texts.push(text);
        }
        let text = match &options.timestamp_pattern {
            None => texts.first()?.clone(),
            Some(pattern) => substitute(pattern, self.partition_keys(), &texts),
        };
        let parsed = parse_partition_time(&text, options.timestamp_formatter.as_deref());
        if parsed.is_none() {
            tracing::warn!(table = %self.id, "partition time '{text}' does not parse; the partition does not expire");
        }
        parsed
    }
}

fn empty_overwrite(
    partitions: Option<Vec<Vec<u8>>>,
    properties: BTreeMap<String, String>,
) -> CommitRequest {
    CommitRequest {
        messages: Vec::new(),
        kind: CommitKind::Overwrite,
        overwrite_partitions: partitions,
        base_snapshot_id: None,
        commit_user: uuid::Uuid::new_v4().to_string(),
        commit_identifier: i64::MAX,
        properties,
        index_entries: Vec::new(),
        index_loaded_from: HashMap::new(),
        deletion_vectors_replaced: HashMap::new(),
        watermark: None,
    }
}

/// `$key` in the pattern replaced by the partition's value of `key` (longest
/// names first, so that `$dt` does not eat `$dth`).
fn substitute(pattern: &str, keys: &[String], values: &[String]) -> String {
    let mut pairs: Vec<(&String, &String)> = keys.iter().zip(values).collect();
    pairs.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut out = pattern.to_string();
    for (key, value) in pairs {
        out = out.replace(&format!("${key}"), value);
    }
    out
}

/// Parses a partition time: with a Java `DateTimeFormatter` pattern
/// (`yyyyMMdd`, `yyyy-MM-dd HH`, ...; a date alone means its midnight), or
/// without one as `yyyy-MM-dd[ HH:mm[:ss[.fff]]]` (also with `T`).
pub fn parse_partition_time(text: &str, formatter: Option<&str>) -> Option<i64> {
    let text = text.trim();
    let formats: Vec<String> = match formatter {
        Some(f) => vec![java_to_chrono(f)],
        None => [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    };
    for format in &formats {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
        // Hours without minutes (`yyyy-MM-dd HH`): chrono needs the
        // minutes, so parse with them added.
        if format.contains("%H") && !format.contains("%M") {
            let with_minutes = format!("{format}:%M");
            if let Ok(t) = NaiveDateTime::parse_from_str(&format!("{text}:00"), &with_minutes) {
                return Some(t.and_utc().timestamp_millis());
            }
        } else if !format.contains("%H") {
            // A date alone means its midnight.
            if let Ok(d) = NaiveDate::parse_from_str(text, format) {
                return d
                    .and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc().timestamp_millis());
            }
        }
    }
    None
}

/// The letters of a Java `DateTimeFormatter` pattern that partition times
/// use, as chrono's; quoted text stays literal.
fn java_to_chrono(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        match c {
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|x| *x == '\'')
                    .map_or(chars.len(), |p| i + 1 + p);
                out.extend(chars[i + 1..end].iter().map(|x| match x {
                    '%' => "%%".to_string(),
                    x => x.to_string(),
                }));
                i = end + 1;
                continue;
            }
            'y' | 'u' => out.push_str(if run == 2 { "%y" } else { "%Y" }),
            'M' => out.push_str("%m"),
            'd' => out.push_str("%d"),
            'H' => out.push_str("%H"),
            'm' => out.push_str("%M"),
            's' => out.push_str("%S"),
            'S' => out.push_str("%.f"),
            '%' => out.push_str("%%"),
            other => out.extend(std::iter::repeat_n(other, run)),
        }
        i += run;
    }
    out
}

/// How a partition's time is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireStrategy {
    /// From its values (`values-time`, Paimon's default).
    ValuesTime,
    /// The newest creation time of its files (`update-time`).
    UpdateTime,
}

/// Paimon's partition expiration settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionExpireOptions {
    /// `partition.expiration-time`: partitions whose time is older than now
    /// minus this expire.
    pub expiration_millis: i64,
    /// `partition.timestamp-formatter`.
    pub timestamp_formatter: Option<String>,
    /// `partition.timestamp-pattern` (`$dt $hour:00:00`).
    pub timestamp_pattern: Option<String>,
    /// `partition.expiration-strategy`.
    pub strategy: ExpireStrategy,
    /// `partition.expiration-max-num`: at most this many per run.
    pub max_expires: usize,
}

impl ExpireStrategy {
    pub fn parse(text: &str) -> Result<ExpireStrategy> {
        match text.trim().to_ascii_lowercase().as_str() {
            "values-time" => Ok(ExpireStrategy::ValuesTime),
            "update-time" => Ok(ExpireStrategy::UpdateTime),
            other => Err(EngineError::invalid(format!(
                "'{other}' is not a partition expiration strategy (values-time or update-time)"
            ))),
        }
    }
}

/// Paimon's default `partition.expiration-max-num`.
const DEFAULT_MAX_EXPIRES: usize = 100;
/// Paimon's default `partition.expiration-check-interval`.
const DEFAULT_CHECK_INTERVAL_MILLIS: i64 = 3_600_000;

impl PartitionExpireOptions {
    /// The table's `partition.*` expiration options; `None` when
    /// `partition.expiration-time` is not set.
    pub fn from_table(table: &Table) -> Result<Option<PartitionExpireOptions>> {
        let options = &table.layout.schema.options;
        let Some(time) = options.get("partition.expiration-time") else {
            return Ok(None);
        };
        let strategy = match options.get("partition.expiration-strategy") {
            Some(s) => ExpireStrategy::parse(s)?,
            None => ExpireStrategy::ValuesTime,
        };
        let max_expires = match options.get("partition.expiration-max-num") {
            Some(n) => n.trim().parse().map_err(|_| {
                EngineError::invalid(format!(
                    "partition.expiration-max-num: '{n}' is not a count"
                ))
            })?,
            None => DEFAULT_MAX_EXPIRES,
        };
        Ok(Some(PartitionExpireOptions {
            expiration_millis: parse_duration_millis(time)?,
            timestamp_formatter: options.get("partition.timestamp-formatter").cloned(),
            timestamp_pattern: options.get("partition.timestamp-pattern").cloned(),
            strategy,
            max_expires,
        }))
    }
}

/// When each table (by its root path) last checked for expired partitions
/// in this process.
static LAST_CHECK: Mutex<BTreeMap<String, i64>> = Mutex::new(BTreeMap::new());

/// After a commit: drops expired partitions when the table sets
/// `partition.expiration-time`, at most once per
/// `partition.expiration-check-interval` per process (the first commit of a
/// process checks). Failures are logged; the commit stands either way.
pub(crate) async fn expire_partitions_after_commit(table: &Table) {
    if table.partition_keys().is_empty() || table.options().write_only {
        return;
    }
    let options = match PartitionExpireOptions::from_table(table) {
        Ok(Some(o)) => o,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(table = %table.id, "partition expiration skipped: {e}");
            return;
        }
    };
    let interval = match table
        .layout
        .schema
        .options
        .get("partition.expiration-check-interval")
    {
        Some(text) => match parse_duration_millis(text) {
            Ok(ms) => ms,
            Err(e) => {
                tracing::warn!(table = %table.id, "partition expiration skipped: {e}");
                return;
            }
        },
        None => DEFAULT_CHECK_INTERVAL_MILLIS,
    };
    let now = chrono::Utc::now().timestamp_millis();
    {
        let Ok(mut checks) = LAST_CHECK.lock() else {
            return;
        };
        let key = table.paths().root.clone();
        if checks.get(&key).is_some_and(|last| now < last + interval) {
            return;
        }
        checks.insert(key, now);
    }
    match table.expire_partitions(&options, now).await {
        Ok(expired) if !expired.is_empty() => {
            tracing::info!(table = %table.id, partitions = expired.len(), "expired partitions dropped")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(table = %table.id, "partition expiration failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_times_parse_like_paimon() {
        let day = parse_partition_time("2026-11-01", None).unwrap();
        assert_eq!(day, 1_793_491_200_000);
        assert_eq!(
            parse_partition_time("2026-11-01 01:00:00", None),
            Some(day + 3_600_000)
        );
        assert_eq!(
            parse_partition_time("20261101", Some("yyyyMMdd")),
            Some(day)
        );
        assert_eq!(
            parse_partition_time("2026-11-01 01", Some("yyyy-MM-dd HH")),
            Some(day + 3_600_000)
        );
        assert_eq!(parse_partition_time("nope", None), None);
        assert_eq!(
            substitute(
                "$dt $hour:00:00",
                &["dt".into(), "hour".into()],
                &["2026-11-01".into(), "3".into()]
            ),
            "2026-11-01 3:00:00"
        );
    }
}
