//! What a pipeline does with the source's tables, as Paimon's CDC actions
//! take it: which tables (Java-style regexes matched against the whole
//! name, exclude wins), how they are named, keyed, partitioned, typed and
//! which columns are added.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use tidelake_format::types::{DataType, DataTypeKind, MAX_LENGTH};

use super::computed::ComputedColumn;
use crate::error::{CdcError, Result};
use crate::event::SourceTableId;

/// `--type-mapping` options (Paimon's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeMapping {
    /// `to-nullable`: every column but the key is nullable.
    pub to_nullable: bool,
    /// `to-string`: every column is STRING.
    pub to_string: bool,
    /// `char-to-string`: CHAR and VARCHAR become STRING.
    pub char_to_string: bool,
}

impl TypeMapping {
    /// Parses `to-nullable,char-to-string,...`; options Paimon has that we
    /// do not apply (they concern MySQL types) are refused by name.
    pub fn parse(text: &str) -> Result<TypeMapping> {
        let mut mapping = TypeMapping::default();
        for option in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            match option.to_ascii_lowercase().as_str() {
                "to-nullable" => mapping.to_nullable = true,
                "to-string" => mapping.to_string = true,
                "char-to-string" => mapping.char_to_string = true,
                other => {
                    return Err(CdcError::config(format!(
                        "--type-mapping '{other}' is not supported (use to-nullable, to-string or char-to-string)"
                    )))
                }
            }
        }
        Ok(mapping)
    }

    /// The Paimon type of a source column under these options.
    pub fn apply(&self, data_type: &DataType, is_key: bool) -> DataType {
        let string = DataTypeKind::VarChar(MAX_LENGTH);
        let mut mapped = match &data_type.kind {
            _ if self.to_string => DataType::new(string, data_type.nullable),
            DataTypeKind::Char(_) | DataTypeKind::VarChar(_) if self.char_to_string => {
                DataType::new(string, data_type.nullable)
            }
            _ => data_type.clone(),
        };
        if self.to_nullable && !is_key {
            mapped = mapped.with_nullable(true);
        }
        mapped
    }
}

/// `--metadata-column` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataColumn {
    TableName,
    DatabaseName,
    OpTs,
}

impl MetadataColumn {
    pub fn parse(text: &str) -> Result<Vec<MetadataColumn>> {
        text.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| match c.to_ascii_lowercase().as_str() {
                "table_name" => Ok(MetadataColumn::TableName),
                "database_name" | "schema_name" => Ok(MetadataColumn::DatabaseName),
                "op_ts" => Ok(MetadataColumn::OpTs),
                other => Err(CdcError::config(format!(
                    "--metadata-column '{other}' is not known (use table_name, database_name or op_ts)"
                ))),
            })
            .collect()
    }

    pub fn name(&self) -> &'static str {
        match self {
            MetadataColumn::TableName => "table_name",
            MetadataColumn::DatabaseName => "database_name",
            MetadataColumn::OpTs => "op_ts",
        }
    }

    pub fn data_type(&self) -> DataType {
        match self {
            MetadataColumn::TableName | MetadataColumn::DatabaseName => DataType::string(),
            MetadataColumn::OpTs => DataType::new(DataTypeKind::TimestampLtz(3), true),
        }
    }
}

/// Which source tables a pipeline takes: Paimon's `--including-tables` and
/// `--excluding-tables`, matched against the whole table name (as Java's
/// `Matcher.matches`), the exclusion winning.
#[derive(Clone, Debug)]
pub struct TableFilter {
    including: Option<Regex>,
    excluding: Option<Regex>,
}

impl TableFilter {
    pub fn new(including: Option<&str>, excluding: Option<&str>) -> Result<TableFilter> {
        let compile = |what: &str, pattern: Option<&str>| -> Result<Option<Regex>> {
            pattern
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                        CdcError::config(format!("{what} '{p}' is not a valid regex: {e}"))
                    })
                })
                .transpose()
        };
        Ok(TableFilter {
            including: compile("--including-tables", including)?,
            excluding: compile("--excluding-tables", excluding)?,
        })
    }

    /// Takes every table.
    pub fn all() -> TableFilter {
        TableFilter {
            including: None,
            excluding: None,
        }
    }

    /// Whether `table` is synced. A pattern is matched against the table
    /// name and against `database.table`.
    pub fn accepts(&self, table: &SourceTableId) -> bool {
        let qualified = table.to_string();
        let matches = |r: &Regex| r.is_match(&table.table) || r.is_match(&qualified);
        self.including.as_ref().is_none_or(matches) && !self.excluding.as_ref().is_some_and(matches)
    }
}

/// Everything a pipeline is told.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    /// Names the progress owner `cdc.<pipeline>`: one instance per name.
    pub pipeline: String,
    /// The Paimon database the tables go to (created if missing).
    pub database: String,
    pub table_prefix: String,
    pub table_suffix: String,
    pub filter: TableFilter,
    /// `--primary-keys`: used instead of the source's key (tables created
    /// by the pipeline only).
    pub primary_keys: Vec<String>,
    pub partition_keys: Vec<String>,
    /// `--table-conf`: options of the tables the pipeline creates.
    pub table_conf: BTreeMap<String, String>,
    pub type_mapping: TypeMapping,
    pub metadata_columns: Vec<MetadataColumn>,
    pub computed_columns: Vec<ComputedColumn>,
    /// A commit is made at the first source transaction end after this
    /// much time since the previous one.
    pub commit_interval: Duration,
    /// Tables the pipeline did not write for this long get a commit that
    /// records the position only, so that the source can release its log.
    pub idle_progress_interval: Duration,
    /// Skip (log) incompatible schema changes instead of stopping the table.
    pub ignore_incompatible: bool,
    /// Rows of one table held in memory before they are handed to the
    /// table's writer (which writes uncommitted files past its
    /// `write-buffer-size`): bounds memory in large transactions.
    pub max_buffered_rows: usize,
    /// Keys per table whose latest image (kept while a group is open, for
    /// unchanged TOAST values) stays in memory; the images of further keys
    /// go to a temporary file (`--spill-after`).
    pub images_in_memory: usize,
    /// Where that file is made (`--spill-dir`; the OS temporary directory
    /// when `None`).
    pub spill_dir: Option<std::path::PathBuf>,
}

impl SinkConfig {
    /// A configuration with Paimon's defaults for everything but the names.
    pub fn new(pipeline: impl Into<String>, database: impl Into<String>) -> SinkConfig {
        SinkConfig {
            pipeline: pipeline.into(),
            database: database.into(),
            table_prefix: String::new(),
            table_suffix: String::new(),
            filter: TableFilter::all(),
            primary_keys: Vec::new(),
            partition_keys: Vec::new(),
            table_conf: BTreeMap::new(),
            type_mapping: TypeMapping::default(),
            metadata_columns: Vec::new(),
            computed_columns: Vec::new(),
            commit_interval: Duration::from_secs(1),
            idle_progress_interval: Duration::from_secs(10),
            ignore_incompatible: false,
            max_buffered_rows: 20_000,
            images_in_memory: 50_000,
            spill_dir: None,
        }
    }

    /// The Paimon table name of a source table: prefix, name, suffix, in
    /// lower case (Paimon's catalog is case-insensitive).
    pub fn table_name(&self, table: &SourceTableId) -> String {
        format!("{}{}{}", self.table_prefix, table.table, self.table_suffix).to_ascii_lowercase()
    }

    /// Parses `k=v` pairs of `--table-conf`.
    pub fn parse_table_conf(pairs: &[String]) -> Result<BTreeMap<String, String>> {
        pairs
            .iter()
            .map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| {
                        CdcError::config(format!("--table-conf '{pair}': expected key=value"))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_whole_names_and_exclusion_wins() {
        let f = TableFilter::new(Some("orders|cust.*"), Some("customers_tmp")).unwrap();
        let t = |n: &str| SourceTableId::new("public", n);
        assert!(f.accepts(&t("orders")));
        assert!(!f.accepts(&t("orders2")), "the whole name must match");
        assert!(f.accepts(&t("customers")));
        assert!(!f.accepts(&t("customers_tmp")));
        assert!(TableFilter::new(Some("public\\.orders"), None)
            .unwrap()
            .accepts(&t("orders")));
        assert!(TableFilter::new(Some("("), None).is_err());
    }

    #[test]
    fn type_mappings_follow_paimon() {
        let m = TypeMapping::parse("to-nullable,char-to-string").unwrap();
        let v = DataType::new(DataTypeKind::VarChar(10), false);
        assert_eq!(m.apply(&v, false), DataType::string());
        assert!(!m.apply(&v, true).is_nullable());
        assert!(TypeMapping::parse("tinyint1-not-bool").is_err());
        let s = TypeMapping::parse("to-string").unwrap();
        let i = DataType::new(DataTypeKind::Int, true);
        assert_eq!(s.apply(&i, false), DataType::string());
    }
}
