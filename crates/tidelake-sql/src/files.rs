//! Files outside the warehouse as tables: Parquet, CSV and newline-delimited
//! JSON under a local path, `file://`, `s3://` (or `memory://` when the
//! warehouse is in memory), named by a path, a folder or a glob.
//!
//! This is what `read_parquet`/`read_csv`/`read_json`, `FROM 'path'` and
//! `COPY ... FROM` read through. Files are listed here rather than by
//! DataFusion's listing table because globs must see hive folders
//! (`data/*/*.parquet` over `data/dt=2026-11-01/x.parquet`, as in DuckDB),
//! and COPY needs each file on its own to say where a bad row is.
//!
//! Object stores come from [`FileStores`], DataFusion's registry for the
//! session: `file://` is DataFusion's; an `s3://bucket` store is made on
//! first use with the warehouse's S3 settings (see
//! `tidelake_store::WarehouseStore::store_for_bucket`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::{
    DefaultObjectStoreRegistry, ObjectStoreRegistry, ObjectStoreUrl,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::object_store::path::Path as StorePath;
use datafusion::object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use tidelake_engine::Catalog;

use crate::error::{Result, SqlError};

/// The formats files can be read and written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Parquet,
    Csv,
    Json,
}

impl Format {
    /// `parquet`, `csv`, `json` (and `ndjson`, `jsonl`), any case.
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "parquet" => Some(Format::Parquet),
            "csv" | "tsv" => Some(Format::Csv),
            "json" | "ndjson" | "jsonl" => Some(Format::Json),
            _ => None,
        }
    }

    /// The format a file name's extension says, if any.
    pub fn from_path(path: &str) -> Option<Format> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let (_, extension) = name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "parquet" | "parq" => Some(Format::Parquet),
            "csv" | "tsv" => Some(Format::Csv),
            "json" | "jsonl" | "ndjson" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }

    /// The read function for this format.
    pub fn function(self) -> &'static str {
        match self {
            Format::Parquet => "read_parquet",
            Format::Csv => "read_csv",
            Format::Json => "read_json",
        }
    }

    /// Extensions a folder's files must have to be read in this format.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Format::Parquet => &[".parquet", ".parq"],
            Format::Csv => &[".csv", ".tsv"],
            Format::Json => &[".json", ".jsonl", ".ndjson"],
        }
    }
}

/// CSV settings (DuckDB's names: header, delim, quote, escape).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CsvSettings {
    pub header: Option<bool>,
    pub delimiter: Option<u8>,
    pub quote: Option<u8>,
    pub escape: Option<u8>,
}

/// What to read: paths (each a file, a folder or a glob) in one format.
#[derive(Clone, Debug)]
pub(crate) struct FileRequest {
    pub paths: Vec<String>,
    pub format: Format,
    pub csv: CsvSettings,
    /// Hive folders (`k=v`) as columns: None detects them.
    pub hive: Option<bool>,
}

impl FileRequest {
    pub fn new(paths: Vec<String>, format: Format) -> Self {
        FileRequest {
            paths,
            format,
            csv: CsvSettings::default(),
            hive: None,
        }
    }

    /// DataFusion's reader of this format with these settings. A `.tsv`
    /// file is tab-separated unless a delimiter is given.
    pub fn file_format(&self) -> Arc<dyn FileFormat> {
        match self.format {
            Format::Parquet => Arc::new(ParquetFormat::default()),
            Format::Json => Arc::new(JsonFormat::default()),
            Format::Csv => {
                let tsv = self
                    .paths
                    .iter()
                    .all(|p| p.to_ascii_lowercase().ends_with(".tsv"));
                let default_delimiter = if tsv { b'\t' } else { b',' };
                let mut format = CsvFormat::default()
                    .with_has_header(self.csv.header.unwrap_or(true))
                    .with_delimiter(self.csv.delimiter.unwrap_or(default_delimiter))
                    .with_newlines_in_values(true);
                if let Some(q) = self.csv.quote {
                    format = format.with_quote(q);
                }
                if let Some(e) = self.csv.escape {
                    format = format.with_escape(Some(e));
                }
                Arc::new(format)
            }
        }
    }
}

/// Where a path points: a store and a key (a file, a folder or a glob's base).
pub(crate) struct Location {
    pub store_url: ObjectStoreUrl,
    pub store: Arc<dyn ObjectStore>,
    /// The key without any glob: a file or a folder.
    pub key: String,
    /// The glob that keys below `key` must match (relative to it).
    pub glob: Option<glob::Pattern>,
    /// The path as the user wrote it, for messages.
    pub shown: String,
}

const GLOB_CHARS: [char; 3] = ['*', '?', '['];

/// Splits `s3://bucket/key`, `file:///abs` and local paths into the store
/// URL and the key in that store.
fn split_path(path: &str) -> Result<(String, String)> {
    if let Some((scheme, rest)) = path.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        return match scheme.as_str() {
            "file" => {
                let local = rest.strip_prefix("localhost").unwrap_or(rest);
                if !local.starts_with('/') {
                    return Err(SqlError::InvalidParameter(format!(
                        "'{path}': file URLs hold an absolute path (file:///abs/path)"
                    )));
                }
                Ok(("file://".into(), local.trim_start_matches('/').to_string()))
            }
            "s3" | "memory" => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if scheme == "s3" && bucket.is_empty() {
                    return Err(SqlError::InvalidParameter(format!(
                        "'{path}': the bucket is missing (s3://bucket/key)"
                    )));
                }
                Ok((format!("{scheme}://{bucket}"), key.to_string()))
            }
            other => Err(SqlError::Unsupported(format!(
                "'{path}': the scheme '{other}://' is not supported (use a local path, file://, s3://, or memory:// on an in-memory warehouse)"
            ))),
        };
    }
    let absolute = std::path::absolute(path).map_err(|e| {
        SqlError::InvalidParameter(format!("'{path}' is not a usable local path: {e}"))
    })?;
    let text = absolute.to_string_lossy().to_string();
    let keep_slash = path.ends_with('/') && !text.ends_with('/');
    let key = text.trim_start_matches('/').to_string() + if keep_slash { "/" } else { "" };
    Ok(("file://".into(), key))
}

/// Resolves a path to its store, key and glob.
pub(crate) fn locate(state: &SessionState, path: &str) -> Result<Location> {
    let (store, key) = split_path(path)?;
    let store_url = ObjectStoreUrl::parse(&store)?;
    let object_store = state.runtime_env().object_store(&store_url)?;
    let (key, glob) = match key.find(GLOB_CHARS) {
        None => (key, None),
        Some(first) => {
            let base_end = key[..first].rfind('/').map_or(0, |i| i + 1);
            let pattern = glob::Pattern::new(&key[base_end..]).map_err(|e| {
                SqlError::InvalidParameter(format!("'{path}' is not a valid glob: {e}"))
            })?;
            (key[..base_end].to_string(), Some(pattern))
        }
    };
    Ok(Location {
        store_url,
        store: object_store,
        key,
        glob,
        shown: path.to_string(),
    })
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

fn store_error(path: &str, e: datafusion::object_store::Error) -> SqlError {
    match e {
        datafusion::object_store::Error::NotFound { .. } => {
            SqlError::UndefinedFile(format!("no file matches '{path}'"))
        }
        other => SqlError::Io(format!("cannot list '{path}': {other}")),
    }
}

/// The files a location names, sorted by path: the file itself, every file
/// of the format below a folder, or every file matching a glob.
pub(crate) async fn list(location: &Location, format: Format) -> Result<Vec<ObjectMeta>> {
    let key = location.key.trim_end_matches('/');
    if location.glob.is_none() && !location.key.ends_with('/') && !key.is_empty() {
        match location.store.head(&StorePath::from(key)).await {
            Ok(meta) => return Ok(vec![meta]),
            Err(datafusion::object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_error(&location.shown, e)),
        }
    }
    let prefix = StorePath::from(key);
    let listed: Vec<ObjectMeta> = match location.store.list(Some(&prefix)).try_collect().await {
        Ok(listed) => listed,
        Err(datafusion::object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(store_error(&location.shown, e)),
    };
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut files: Vec<ObjectMeta> = listed
        .into_iter()
        .filter(|meta| {
            let full = meta.location.as_ref();
            let relative = full
                .strip_prefix(prefix.as_ref())
                .unwrap_or(full)
                .trim_start_matches('/');
            if relative.split('/').any(is_hidden) {
                return false;
            }
            match &location.glob {
                Some(glob) => glob.matches_with(relative, options),
                None => format.extensions().iter().any(|e| full.ends_with(e)),
            }
        })
        .collect();
    files.sort_by(|a, b| a.location.cmp(&b.location));
    if files.is_empty() {
        return Err(SqlError::UndefinedFile(format!(
            "no {} file matches '{}'",
            format.name(),
            location.shown
        )));
    }
    Ok(files)
}

/// The `k=v` folders in a file's path, outermost first.
fn hive_pairs(location: &StorePath) -> Vec<(String, String)> {
    let text = location.as_ref();
    let folders = text.rsplit_once('/').map_or("", |(dirs, _)| dirs);
    folders
        .split('/')
        .filter_map(|segment| {
            let (k, v) = segment.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_string(), percent_decode(v)))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Hive's marker of a NULL partition value.
const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// The hive columns of `files` with their types (BIGINT if every value is
/// an integer, DATE if every value is a date, else STRING) and each file's
/// values; `explicit` says hive partitioning was asked for by name.
fn hive_columns(
    files: &[ObjectMeta],
    shown: &str,
    explicit: bool,
) -> Result<(Vec<FieldRef>, Vec<Vec<ScalarValue>>)> {
    let pairs: Vec<Vec<(String, String)>> = files.iter().map(|f| hive_pairs(&f.location)).collect();
    let names: Vec<String> = pairs
        .first()
        .map(|p| p.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    for (file, p) in files.iter().zip(&pairs) {
        let these: Vec<&String> = p.iter().map(|(k, _)| k).collect();
        if these
            .iter()
            .map(|s| s.as_str())
            .ne(names.iter().map(String::as_str))
        {
            if !explicit {
                return Ok((Vec::new(), vec![Vec::new(); files.len()]));
            }
            return Err(SqlError::InvalidParameter(format!(
                "the files of '{shown}' are in different hive folders ('{}' has {:?}, others {names:?})",
                file.location, these
            )));
        }
    }
    let mut fields = Vec::new();
    let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::new(); files.len()];
    for (i, name) in names.iter().enumerate() {
        let values: Vec<Option<&str>> = pairs
            .iter()
            .map(|p| Some(p[i].1.as_str()).filter(|v| !v.is_empty() && *v != HIVE_NULL))
            .collect();
        let all = |f: &dyn Fn(&str) -> bool| values.iter().flatten().all(|v| f(v));
        let data_type = if all(&|v| v.parse::<i64>().is_ok()) {
            ArrowType::Int64
        } else if all(&|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()) {
            ArrowType::Date32
        } else {
            ArrowType::Utf8
        };
        for (file, value) in values.iter().enumerate() {
            let text = ScalarValue::Utf8(value.map(str::to_string));
            columns[file].push(text.cast_to(&data_type)?);
        }
        fields.push(Arc::new(Field::new(name, data_type, true)));
    }
    Ok((fields, columns))
}

/// Files as a table: their merged schema, then hive columns.
pub(crate) struct FileTable {
    format: Arc<dyn FileFormat>,
    store_url: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    schema: SchemaRef,
    shown: String,
}

impl fmt::Debug for FileTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTable")
            .field("path", &self.shown)
            .field("files", &self.files.len())
            .finish()
    }
}

impl FileTable {
    /// Lists and reads the schema of what `request` names.
    pub async fn open(state: &SessionState, request: &FileRequest) -> Result<FileTable> {
        let shown = request.paths.join(", ");
        let mut store_url = None;
        let mut store = None;
        let mut metas = Vec::new();
        for path in &request.paths {
            let location = locate(state, path)?;
            if store_url.as_ref().is_some_and(|u| u != &location.store_url) {
                return Err(SqlError::Unsupported(format!(
                    "'{shown}': the files of one scan must be in one store"
                )));
            }
            metas.extend(list(&location, request.format).await?);
            store_url = Some(location.store_url);
            store = Some(location.store);
        }
        let (Some(store_url), Some(store)) = (store_url, store) else {
            return Err(SqlError::InvalidParameter(
                "a file function needs at least one path".into(),
            ));
        };
        let format = request.file_format();
        let file_schema = infer_schema(state, &*format, &store, &metas, &shown).await?;
        Self::with_schema(request, store_url, metas, file_schema)
    }

    /// Files read with a schema given by the caller (no inference).
    pub fn with_schema(
        request: &FileRequest,
        store_url: ObjectStoreUrl,
        metas: Vec<ObjectMeta>,
        file_schema: SchemaRef,
    ) -> Result<FileTable> {
        let shown = request.paths.join(", ");
        let (mut partition_fields, mut values) = match request.hive {
            Some(false) => (Vec::new(), vec![Vec::new(); metas.len()]),
            asked => hive_columns(&metas, &shown, asked == Some(true))?,
        };
        // A column the files have wins over a folder of the same name.
        let clashes: Vec<usize> = partition_fields
            .iter()
            .enumerate()
            .filter(|(_, f)| file_schema.field_with_name(f.name()).is_ok())
            .map(|(i, _)| i)
            .collect();
        for i in clashes.into_iter().rev() {
            partition_fields.remove(i);
            for v in &mut values {
                v.remove(i);
            }
        }
        let mut fields: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        fields.extend(partition_fields.iter().cloned());
        let files = metas
            .into_iter()
            .zip(values)
            .map(|(meta, v)| PartitionedFile::new_from_meta(meta).with_partition_values(v))
            .collect();
        Ok(FileTable {
            format: request.file_format(),
            store_url,
            files,
            file_schema,
            partition_fields,
            schema: Arc::new(Schema::new(fields)),
            shown,
        })
    }
}

/// The schema of `files` as `format` infers it, merged across files.
pub(crate) async fn infer_schema(
    state: &SessionState,
    format: &dyn FileFormat,
    store: &Arc<dyn ObjectStore>,
    files: &[ObjectMeta],
    shown: &str,
) -> Result<SchemaRef> {
    let non_empty: Vec<ObjectMeta> = files.iter().filter(|f| f.size > 0).cloned().collect();
    if non_empty.is_empty() {
        return Err(SqlError::InvalidParameter(format!(
            "every file of '{shown}' is empty: there is no schema to read"
        )));
    }
    format
        .infer_schema(state, store, &non_empty)
        .await
        .map_err(|e| {
            let inner = SqlError::from(e);
            SqlError::InvalidValue(format!("cannot read the schema of '{shown}': {inner}"))
        })
}

#[async_trait]
impl TableProvider for FileTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let groups_wanted = state
            .config()
            .target_partitions()
            .clamp(1, self.files.len());
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); groups_wanted];
        for (i, file) in self.files.iter().enumerate() {
            groups[i % groups_wanted].push(file.clone());
        }
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let source = self.format.file_source(table_schema);
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        self.format.create_physical_plan(state, config).await
    }
}

/// The session's object stores: DataFusion's (`file://` and any registered
/// one), and stores made on first use from the warehouse's configuration.
pub(crate) struct FileStores {
    registered: DefaultObjectStoreRegistry,
    catalog: Catalog,
}

impl fmt::Debug for FileStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStores")
            .field("registered", &self.registered)
            .finish()
    }
}

impl FileStores {
    pub fn new(catalog: Catalog) -> Self {
        FileStores {
            registered: DefaultObjectStoreRegistry::new(),
            catalog,
        }
    }
}

impl ObjectStoreRegistry for FileStores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.registered.register_store(url, store)
    }

    fn deregister_store(&self, url: &url::Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.registered.deregister_store(url)
    }

    fn get_store(&self, url: &url::Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.registered.get_store(url) {
            return Ok(store);
        }
        let bucket = url.host_str().unwrap_or_default();
        let made = self
            .catalog
            .store()
            .store_for_bucket(url.scheme(), bucket)
            .map_err(|e| SqlError::Io(e.to_string()).into_datafusion())?;
        match made {
            Some(store) => {
                tracing::debug!(%url, "object store made for files outside the warehouse");
                self.registered.register_store(url, store.clone());
                Ok(store)
            }
            None => Err(DataFusionError::External(Box::new(SqlError::Unsupported(
                format!(
                    "no object store for '{url}': files are read from local paths, file://, s3://, or memory:// on an in-memory warehouse"
                ),
            )))),
        }
    }
}

/// Named settings of the file functions and COPY, as written.
pub(crate) type Settings = BTreeMap<String, SettingValue>;

/// A setting's value: text, a number or a boolean.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SettingValue {
    Text(String),
    Bool(bool),
}

impl SettingValue {
    pub fn as_bool(&self, name: &str) -> Result<bool> {
        match self {
            SettingValue::Bool(b) => Ok(*b),
            SettingValue::Text(t) => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" => Ok(true),
                "false" | "0" | "off" => Ok(false),
                _ => Err(SqlError::InvalidParameter(format!(
                    "option '{name}' takes true or false, not '{t}'"
                ))),
            },
        }
    }

    /// One character (`'\t'` written as backslash-t is a tab, as in DuckDB).
    pub fn as_char(&self, name: &str) -> Result<u8> {
        let text = match self {
            SettingValue::Text(t) => t.as_str(),
            SettingValue::Bool(_) => "",
        };
        match text {
            "\\t" => Ok(b'\t'),
            t if t.len() == 1 && t.is_ascii() => Ok(t.as_bytes()[0]),
            _ => Err(SqlError::InvalidParameter(format!(
                "option '{name}' takes one ASCII character, not '{text}'"
            ))),
        }
    }

    pub fn as_text(&self) -> String {
        match self {
            SettingValue::Text(t) => t.clone(),
            SettingValue::Bool(b) => b.to_string(),
        }
    }
}

/// Applies a CSV setting; false if `name` is not one.
pub(crate) fn apply_csv_setting(
    csv: &mut CsvSettings,
    name: &str,
    value: &SettingValue,
) -> Result<bool> {
    match name {
        "header" => csv.header = Some(value.as_bool(name)?),
        "delim" | "delimiter" | "sep" | "separator" => csv.delimiter = Some(value.as_char(name)?),
        "quote" => csv.quote = Some(value.as_char(name)?),
        "escape" => csv.escape = Some(value.as_char(name)?),
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(Format::from_path("a/b.PARQUET"), Some(Format::Parquet));
        assert_eq!(Format::from_path("s3://b/x.tsv"), Some(Format::Csv));
        assert_eq!(Format::from_path("x.ndjson"), Some(Format::Json));
        assert_eq!(Format::from_path("dir.d/file"), None);
    }

    #[test]
    fn paths_split_into_store_and_key() {
        assert_eq!(
            split_path("s3://bucket/a/b.csv").unwrap(),
            ("s3://bucket".into(), "a/b.csv".into())
        );
        assert_eq!(
            split_path("file:///tmp/x.csv").unwrap(),
            ("file://".into(), "tmp/x.csv".into())
        );
        assert_eq!(
            split_path("/tmp/dir/").unwrap(),
            ("file://".into(), "tmp/dir/".into())
        );
        assert_eq!(split_path("hdfs://x/y").unwrap_err().code(), "0A000");
    }

    #[test]
    fn hive_folders_become_typed_columns() {
        let meta = |p: &str| ObjectMeta {
            location: StorePath::from(p),
            last_modified: chrono::Utc::now(),
            size: 1,
            e_tag: None,
            version: None,
        };
        let files = [
            meta("d/dt=2026-11-01/n=1/a.parquet"),
            meta("d/dt=2026-11-02/n=__HIVE_DEFAULT_PARTITION__/b.parquet"),
        ];
        let (fields, values) = hive_columns(&files, "d", false).unwrap();
        assert_eq!(fields[0].data_type(), &ArrowType::Date32);
        assert_eq!(fields[1].data_type(), &ArrowType::Int64);
        assert_eq!(values[1][1], ScalarValue::Int64(None));
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
    }
}
