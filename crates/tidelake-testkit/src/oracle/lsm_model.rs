//! The model of the LSM interop tests (`interop_lsm` of the `tidelake` crate): typed cells
//! with their SQL and canonical encodings, and Paimon's merge semantics
//! implemented directly from the table options, version by version.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{sql_string, Json};

// ---------------------------------------------------------------- values

/// A cell of the model: enough types to aggregate and order.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Null,
    Int(i64),
    /// DECIMAL(12, 2) in hundredths.
    Dec(i64),
    Str(String),
    /// TIMESTAMP(3) in minutes after 2026-11-01 00:00.
    Ts(i64),
    /// ARRAY<T>: its elements.
    Arr(Vec<V>),
    /// MAP<K, V>: its entries, keys unique.
    Map(Vec<(V, V)>),
}

pub fn s(text: &str) -> V {
    V::Str(text.to_string())
}

impl V {
    pub fn is_null(&self) -> bool {
        *self == V::Null
    }

    pub fn decimal_text(hundredths: i64) -> String {
        let sign = if hundredths < 0 { "-" } else { "" };
        let abs = hundredths.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }

    pub fn timestamp_text(minutes: i64, separator: char) -> String {
        let (day, rest) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
        assert!(
            (0..28).contains(&day),
            "model timestamps stay in November 2026"
        );
        format!(
            "2026-11-{:02}{separator}{:02}:{:02}:00.000",
            1 + day,
            rest / 60,
            rest % 60
        )
    }

    pub fn sql(&self, sql_type: &str) -> String {
        match self {
            V::Null => "NULL".into(),
            V::Int(i) => format!("CAST({i} AS {sql_type})"),
            V::Dec(d) => format!("CAST('{}' AS {sql_type})", V::decimal_text(*d)),
            V::Str(text) => sql_string(text),
            V::Ts(m) => format!("TIMESTAMP '{}'", V::timestamp_text(*m, ' ')),
            V::Arr(elements) => {
                let element = type_arguments(sql_type, "ARRAY");
                let cells: Vec<String> = elements.iter().map(|e| e.sql(&element[0])).collect();
                format!("make_array({})", cells.join(", "))
            }
            V::Map(entries) => {
                let kv = type_arguments(sql_type, "MAP");
                let keys: Vec<String> = entries.iter().map(|(k, _)| k.sql(&kv[0])).collect();
                let values: Vec<String> = entries.iter().map(|(_, v)| v.sql(&kv[1])).collect();
                format!(
                    "map(make_array({}), make_array({}))",
                    keys.join(", "),
                    values.join(", ")
                )
            }
        }
    }

    /// The canonical encoding (also what the oracle's writer takes).
    pub fn json(&self) -> Json {
        match self {
            V::Null => Json::Null,
            V::Int(i) => Json::Int((*i).into()),
            V::Dec(d) => Json::Str(V::decimal_text(*d)),
            V::Str(text) => Json::str(text.as_str()),
            V::Ts(m) => Json::Str(format!("{}000", V::timestamp_text(*m, 'T'))),
            V::Arr(elements) => Json::Arr(elements.iter().map(V::json).collect()),
            // Entries as [key, value] pairs; the oracle orders them by key.
            V::Map(entries) => Json::Arr(
                entries
                    .iter()
                    .map(|(k, v)| Json::Arr(vec![k.json(), v.json()]))
                    .collect(),
            ),
        }
    }

    /// Order for `sequence.field`, min and max (NULL first).
    pub fn compare(&self, other: &V) -> Ordering {
        match (self, other) {
            (V::Null, V::Null) => Ordering::Equal,
            (V::Null, _) => Ordering::Less,
            (_, V::Null) => Ordering::Greater,
            (V::Int(a), V::Int(b)) | (V::Dec(a), V::Dec(b)) | (V::Ts(a), V::Ts(b)) => a.cmp(b),
            (V::Str(a), V::Str(b)) => a.cmp(b),
            (a, b) => panic!("model compares {a:?} with {b:?}"),
        }
    }

    pub fn sum(&self, other: &V) -> V {
        match (self, other) {
            (V::Null, x) | (x, V::Null) => x.clone(),
            (V::Int(a), V::Int(b)) => V::Int(a + b),
            (V::Dec(a), V::Dec(b)) => V::Dec(a + b),
            (a, b) => panic!("model sums {a:?} and {b:?}"),
        }
    }
}

/// The type arguments of `ARRAY<T>` or `MAP<K, V>` (without NOT NULL).
fn type_arguments(sql_type: &str, outer: &str) -> Vec<String> {
    let inner = sql_type
        .trim()
        .strip_prefix(outer)
        .and_then(|t| t.trim().strip_prefix('<'))
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or_else(|| panic!("{sql_type} is not an {outer} type"));
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(
                    inner[start..i]
                        .trim()
                        .trim_end_matches(" NOT NULL")
                        .to_string(),
                );
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(
        inner[start..]
            .trim()
            .trim_end_matches(" NOT NULL")
            .to_string(),
    );
    parts
}

/// Paimon's `collect`: concatenation, or every value once in order of
/// first appearance; NULL inputs add nothing.
fn collect(old: &V, new: &V, distinct: bool) -> V {
    let (old, new) = match (old, new) {
        (V::Null, V::Null) => return V::Null,
        (x, V::Null) | (V::Null, x) if !distinct => return x.clone(),
        (old, new) => (old, new),
    };
    let mut all = Vec::new();
    for v in [old, new] {
        match v {
            V::Null => {}
            V::Arr(elements) => all.extend(elements.iter().cloned()),
            other => panic!("model collects {other:?}"),
        }
    }
    if distinct {
        let mut unique: Vec<V> = Vec::new();
        for e in all {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        all = unique;
    }
    V::Arr(all)
}

/// Paimon's `merge_map`: later entries replace those with equal keys.
fn merge_map(old: &V, new: &V) -> V {
    match (old, new) {
        (x, V::Null) | (V::Null, x) => x.clone(),
        (V::Map(a), V::Map(b)) => {
            let mut merged = a.clone();
            for (k, v) in b {
                match merged.iter_mut().find(|(mk, _)| mk == k) {
                    Some(entry) => entry.1 = v.clone(),
                    None => merged.push((k.clone(), v.clone())),
                }
            }
            V::Map(merged)
        }
        (a, b) => panic!("model merges maps {a:?} and {b:?}"),
    }
}

/// A deterministic string of `len` hex digits: incompressible enough that
/// file sizes grow with row counts, which universal compaction looks at.
pub fn noise(seed: i64, len: usize) -> String {
    let mut x = seed as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = String::with_capacity(len);
    while out.len() < len {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out += &format!("{:016x}", z ^ (z >> 31));
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------- model

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Agg {
    Sum,
    Max,
    Min,
    LastValue,
    LastNonNull,
    FirstNonNull,
    /// `collect`, with `fields.<f>.distinct`.
    Collect(bool),
    MergeMap,
}

#[derive(Clone, Debug)]
pub enum Engine {
    Deduplicate,
    FirstRow,
    PartialUpdate,
    Aggregation(Vec<Agg>),
}

/// One version of a key, as written.
pub struct Version {
    arrival: u64,
    add: bool,
    row: Vec<V>,
}

/// The rows a primary-key table must hold: every version of every key,
/// merged on demand the way the table's options say.
pub struct Model {
    key: Vec<usize>,
    sequence: Vec<usize>,
    engine: Engine,
    versions: BTreeMap<String, Vec<Version>>,
    arrivals: u64,
}

impl Model {
    /// The model of a table with these columns, key and options.
    pub fn new(columns: &[(&str, &str)], primary_key: &[&str], options: &[(&str, &str)]) -> Model {
        let index = |name: &str| {
            columns
                .iter()
                .position(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let option = |key: &str| options.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let sequence: Vec<usize> = option("sequence.field")
            .map(|fields| fields.split(',').map(index).collect())
            .unwrap_or_default();
        let engine = match option("merge-engine").unwrap_or("deduplicate") {
            "deduplicate" => Engine::Deduplicate,
            "first-row" => Engine::FirstRow,
            "partial-update" => Engine::PartialUpdate,
            "aggregation" => Engine::Aggregation(
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _))| {
                        if sequence.contains(&i) {
                            return Agg::LastValue;
                        }
                        let key = format!("fields.{name}.aggregate-function");
                        match option(&key).unwrap_or("last_non_null_value") {
                            "sum" => Agg::Sum,
                            "max" => Agg::Max,
                            "min" => Agg::Min,
                            "last_value" => Agg::LastValue,
                            "last_non_null_value" => Agg::LastNonNull,
                            "first_non_null_value" => Agg::FirstNonNull,
                            "collect" => Agg::Collect(
                                option(&format!("fields.{name}.distinct")) == Some("true"),
                            ),
                            "merge_map" => Agg::MergeMap,
                            other => panic!("the model has no aggregate function {other}"),
                        }
                    })
                    .collect(),
            ),
            other => panic!("the model has no merge engine {other}"),
        };
        Model {
            key: primary_key.iter().map(|k| index(k)).collect(),
            sequence,
            engine,
            versions: BTreeMap::new(),
            arrivals: 0,
        }
    }

    pub fn key_of(&self, row: &[V]) -> String {
        format!(
            "{:?}",
            self.key.iter().map(|&i| &row[i]).collect::<Vec<_>>()
        )
    }

    pub fn write(&mut self, row: Vec<V>, add: bool) {
        self.arrivals += 1;
        let version = Version {
            arrival: self.arrivals,
            add,
            row,
        };
        self.versions
            .entry(self.key_of(&version.row))
            .or_default()
            .push(version);
    }

    /// A key's versions in merge order: `sequence.field` first, then the
    /// order of writing (Paimon's sequence number).
    pub fn ordered<'a>(&self, versions: &'a [Version]) -> Vec<&'a Version> {
        let mut ordered: Vec<&Version> = versions.iter().collect();
        ordered.sort_by(|a, b| {
            self.sequence
                .iter()
                .map(|&i| a.row[i].compare(&b.row[i]))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
                .then(a.arrival.cmp(&b.arrival))
        });
        ordered
    }

    pub fn merge(&self, versions: &[Version]) -> Option<Vec<V>> {
        let ordered = self.ordered(versions);
        match &self.engine {
            Engine::Deduplicate => ordered.last().filter(|v| v.add).map(|v| v.row.clone()),
            Engine::FirstRow => {
                assert!(ordered.iter().all(|v| v.add), "first-row takes no deletes");
                ordered.first().map(|v| v.row.clone())
            }
            Engine::PartialUpdate => {
                assert!(
                    ordered.iter().all(|v| v.add),
                    "partial-update takes no deletes here"
                );
                let mut merged = ordered.first()?.row.clone();
                for version in &ordered[1..] {
                    for (cell, new) in merged.iter_mut().zip(&version.row) {
                        if !new.is_null() {
                            *cell = new.clone();
                        }
                    }
                }
                Some(merged)
            }
            Engine::Aggregation(functions) => {
                assert!(
                    ordered.iter().all(|v| v.add),
                    "no retractions in the aggregation model"
                );
                let mut merged = ordered.first()?.row.clone();
                for version in &ordered[1..] {
                    for (i, new) in version.row.iter().enumerate() {
                        if self.key.contains(&i) {
                            continue;
                        }
                        let old = &merged[i];
                        merged[i] = match functions[i] {
                            Agg::Sum => old.sum(new),
                            Agg::Max if new.is_null() => old.clone(),
                            Agg::Max if old.is_null() || new.compare(old).is_gt() => new.clone(),
                            Agg::Min if new.is_null() => old.clone(),
                            Agg::Min if old.is_null() || new.compare(old).is_lt() => new.clone(),
                            Agg::Max | Agg::Min => old.clone(),
                            Agg::LastValue => new.clone(),
                            Agg::LastNonNull if new.is_null() => old.clone(),
                            Agg::LastNonNull => new.clone(),
                            Agg::FirstNonNull if old.is_null() => new.clone(),
                            Agg::FirstNonNull => old.clone(),
                            Agg::Collect(distinct) => collect(old, new, distinct),
                            Agg::MergeMap => merge_map(old, new),
                        };
                    }
                }
                Some(merged)
            }
        }
    }

    pub fn rows(&self) -> Vec<Vec<V>> {
        self.versions
            .values()
            .filter_map(|versions| self.merge(versions))
            .collect()
    }

    /// A full compaction merges every key into one row and drops deleted
    /// keys (retractions are dropped at the bottom level): a delete no
    /// longer hides later writes with a lower `sequence.field`.
    pub fn compact_fully(&mut self) {
        let merged: Vec<(String, Vec<V>)> = self
            .versions
            .iter()
            .filter_map(|(key, versions)| Some((key.clone(), self.merge(versions)?)))
            .collect();
        self.versions.clear();
        for (key, row) in merged {
            self.arrivals += 1;
            let version = Version {
                arrival: self.arrivals,
                add: true,
                row,
            };
            self.versions.insert(key, vec![version]);
        }
    }

    /// The visible rows whose first column is one of `ids`.
    pub fn rows_with_ids(&self, ids: &[i64]) -> Vec<Vec<V>> {
        self.rows()
            .into_iter()
            .filter(|row| matches!(row[0], V::Int(id) if ids.contains(&id)))
            .collect()
    }
}
