//! `COPY`, as DuckDB and PostgreSQL write it:
//!
//! * `COPY t FROM 'path' [(FORMAT csv|json|parquet, HEADER true, DELIMITER ',')]`
//!   loads files (a file, a folder or a glob; format from the option or the
//!   extension) into a table through the table's INSERT path: one commit,
//!   primary-key tables upsert. CSV columns map to the table's by position,
//!   JSON and Parquet by name (hive folders such as `dt=2026-11-01/` fill
//!   columns the files lack; any other missing one is NULL). Every value is cast
//!   to its column's type and NOT NULL is checked before anything is
//!   written; the first bad row fails the statement, naming the file, the
//!   line (CSV: counting the header; JSON: the line of the object) or the
//!   row (Parquet, from 1) and the column, and nothing is committed. A CSV
//!   file has a header if HEADER says so or, without HEADER, if its first
//!   line is the table's column names.
//! * `COPY t TO 'path' (...)` and `COPY (query) TO 'path' (...)` are
//!   DataFusion's COPY: the options are translated to DataFusion's
//!   (`STORED AS`, `OPTIONS`), and DataFusion's own syntax also works.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::object_store::{ObjectMeta, ObjectStoreExt};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, SendableRecordBatchStream,
};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};
use futures::stream::BoxStream;
use futures::StreamExt;
use tidelake_engine::{Catalog, Table};

use crate::describe::{quote_string, sql_type};
use crate::error::{Result, SqlError};
use crate::files::{
    apply_csv_setting, infer_schema, list, locate, CsvSettings, FileRequest, FileTable, Format,
    Location, SettingValue, Settings,
};
use crate::lexer::{tokenize, LineIndex, RawStatement};
use crate::provider::to_df;

/// Whether the statement is a COPY.
pub(crate) fn is_copy(statement: &RawStatement) -> bool {
    matches!(statement.tokens.first().map(|t| &t.token),
        Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("COPY"))
}

/// A COPY statement, parsed.
#[derive(Debug)]
pub(crate) enum Copy {
    /// COPY ... TO, as DataFusion's COPY text.
    To(String),
    From(CopyFrom),
    /// A COPY in DataFusion's own syntax (`STORED AS`, `OPTIONS`).
    DataFusion,
}

/// `COPY table FROM 'path' (options)`.
#[derive(Debug)]
pub(crate) struct CopyFrom {
    pub database: Option<String>,
    pub table: String,
    pub path: String,
    pub settings: Settings,
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<TokenWithSpan>,
    pos: usize,
    lines: LineIndex<'a>,
}

fn syntax(message: impl Into<String>) -> SqlError {
    SqlError::syntax(message, None)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|t| &t.token)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.peek().cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        let found = matches!(self.peek(),
            Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
        if found {
            self.pos += 1;
        }
        found
    }

    fn offset(&self, i: usize, end: bool) -> Option<usize> {
        let span = self.tokens.get(i)?.span;
        self.lines.offset(if end { span.end } else { span.start })
    }

    /// `( ... )` with nesting: the text inside.
    fn parenthesized(&mut self) -> Result<String> {
        let open = self.pos;
        let mut depth = 0usize;
        while let Some(t) = self.next() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        let start = self.offset(open, true);
                        let end = self.offset(self.pos - 1, false);
                        if let (Some(s), Some(e)) = (start, end) {
                            return Ok(self.text[s..e].to_string());
                        }
                        return Err(SqlError::Internal("a COPY query has no text".into()));
                    }
                }
                _ => {}
            }
        }
        Err(syntax("COPY: a '(' is not closed"))
    }

    /// A dotted name: its parts, unquoted ones in lower case.
    fn name(&mut self) -> Result<Vec<String>> {
        let mut parts = Vec::new();
        loop {
            match self.next() {
                Some(Token::Word(w)) => parts.push(match w.quote_style {
                    Some(_) => w.value,
                    None => w.value.to_lowercase(),
                }),
                other => {
                    return Err(syntax(format!(
                        "COPY: expected a table name, found {}",
                        shown(other.as_ref())
                    )))
                }
            }
            if self.peek() != Some(&Token::Period) {
                return Ok(parts);
            }
            self.pos += 1;
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        match self.next() {
            Some(Token::SingleQuotedString(s)) => Ok(s),
            other => Err(syntax(format!(
                "COPY: expected {what} as a quoted string, found {}",
                shown(other.as_ref())
            ))),
        }
    }

    /// `[WITH] (name [value], ...)`; None when something else follows.
    fn options(&mut self) -> Result<Option<Settings>> {
        let mut settings = Settings::new();
        let save = self.pos;
        let with = self.keyword("WITH");
        if self.peek() != Some(&Token::LParen) {
            if with {
                return Err(syntax("COPY: expected '(' after WITH"));
            }
            self.pos = save;
            return Ok(self.peek().is_none().then_some(settings));
        }
        self.pos += 1;
        loop {
            let name = match self.next() {
                Some(Token::Word(w)) => w.value.to_ascii_lowercase(),
                other => {
                    return Err(syntax(format!(
                        "COPY: expected an option name, found {}",
                        shown(other.as_ref())
                    )))
                }
            };
            let value = match self.peek().cloned() {
                Some(Token::Comma | Token::RParen) => SettingValue::Bool(true),
                Some(Token::LParen) => SettingValue::Text(self.parenthesized()?),
                Some(Token::SingleQuotedString(s)) | Some(Token::Number(s, _)) => {
                    self.pos += 1;
                    SettingValue::Text(s)
                }
                Some(Token::Word(w)) => {
                    self.pos += 1;
                    match w.value.to_ascii_lowercase().as_str() {
                        "true" => SettingValue::Bool(true),
                        "false" => SettingValue::Bool(false),
                        _ => SettingValue::Text(w.value),
                    }
                }
                other => {
                    return Err(syntax(format!(
                        "COPY: option '{name}' has no usable value (found {})",
                        shown(other.as_ref())
                    )))
                }
            };
            settings.insert(name, value);
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::RParen) => break,
                other => {
                    return Err(syntax(format!(
                        "COPY: expected ',' or ')' in the options, found {}",
                        shown(other.as_ref())
                    )))
                }
            }
        }
        Ok(self.peek().is_none().then_some(settings))
    }
}

fn shown(token: Option<&Token>) -> String {
    match token {
        Some(t) => format!("'{t}'"),
        None => "the end of the statement".to_string(),
    }
}

/// Parses a COPY statement.
pub(crate) fn parse(statement: &RawStatement) -> Result<Copy> {
    let text = statement.text_for_datafusion();
    let tokens = tokenize(&text)?
        .into_iter()
        .filter(|t| {
            !matches!(
                t.token,
                Token::Whitespace(_) | Token::EOF | Token::SemiColon
            )
        })
        .collect();
    let mut p = Parser {
        text: &text,
        tokens,
        pos: 0,
        lines: LineIndex::new(&text),
    };
    p.keyword("COPY");
    enum Source {
        Query(String),
        Name(Vec<String>),
        Path(String),
    }
    let source = match p.peek() {
        Some(Token::LParen) => Source::Query(p.parenthesized()?),
        Some(Token::SingleQuotedString(_)) => Source::Path(p.string("a path")?),
        _ => Source::Name(p.name()?),
    };
    if p.peek() == Some(&Token::LParen) {
        return Err(SqlError::Unsupported(
            "COPY with a column list is not supported: CSV columns map to the table's by position, JSON and Parquet columns by name".into(),
        ));
    }
    let to = if p.keyword("TO") {
        true
    } else if p.keyword("FROM") {
        false
    } else {
        return Err(syntax(format!(
            "COPY: expected FROM or TO, found {}",
            shown(p.peek())
        )));
    };
    let path = p.string("the path")?;
    let Some(settings) = p.options()? else {
        if to {
            return Ok(Copy::DataFusion);
        }
        return Err(syntax(format!(
            "COPY ... FROM: unexpected {} (options go in parentheses: (FORMAT csv, HEADER true))",
            shown(p.peek())
        )));
    };
    if to {
        let source = match source {
            Source::Query(q) => format!("({q})"),
            Source::Path(path) => format!("(SELECT * FROM {})", quote_string(&path)),
            Source::Name(parts) => parts
                .iter()
                .map(|p| crate::describe::quote_identifier(p))
                .collect::<Vec<_>>()
                .join("."),
        };
        return copy_to_text(&source, &path, &settings).map(Copy::To);
    }
    let mut parts = match source {
        Source::Name(parts) if parts.len() <= 2 => parts,
        Source::Name(_) => {
            return Err(SqlError::InvalidParameter(
                "COPY FROM: the table is named 'table' or 'database.table'".into(),
            ))
        }
        _ => {
            return Err(SqlError::Unsupported(
                "COPY ... FROM loads into a table: COPY table FROM 'path'".into(),
            ))
        }
    };
    let table = parts.pop().unwrap_or_default();
    Ok(Copy::From(CopyFrom {
        database: parts.pop(),
        table,
        path,
        settings,
    }))
}

/// DataFusion's COPY text for `COPY source TO 'path' (settings)`.
fn copy_to_text(source: &str, path: &str, settings: &Settings) -> Result<String> {
    let mut format = Format::from_path(path);
    let mut options: Vec<(&str, String)> = Vec::new();
    let mut partition_by = None;
    for (name, value) in settings {
        match name.as_str() {
            "format" => {
                let text = value.as_text();
                format = Some(Format::from_name(&text).ok_or_else(|| {
                    SqlError::InvalidParameter(format!(
                        "COPY: unknown FORMAT '{text}' (parquet, csv or json)"
                    ))
                })?)
            }
            "header" => options.push(("format.has_header", value.as_bool(name)?.to_string())),
            "delimiter" | "delim" | "sep" => options.push((
                "format.delimiter",
                char::from(value.as_char(name)?).to_string(),
            )),
            "quote" => options.push(("format.quote", char::from(value.as_char(name)?).to_string())),
            "compression" | "codec" => options.push(("format.compression", value.as_text())),
            "partition_by" => partition_by = Some(value.as_text()),
            _ => {
                return Err(SqlError::InvalidParameter(format!(
                    "COPY TO: unknown option '{name}' (supported: FORMAT, HEADER, DELIMITER, QUOTE, COMPRESSION, PARTITION_BY)"
                )))
            }
        }
    }
    let format = format.ok_or_else(|| {
        SqlError::InvalidParameter(format!(
            "COPY TO '{path}': the path's extension does not tell the format; add (FORMAT parquet), (FORMAT csv) or (FORMAT json)"
        ))
    })?;
    let mut sql = format!(
        "COPY {source} TO {} STORED AS {}",
        quote_string(path),
        format.name().to_ascii_uppercase()
    );
    if let Some(columns) = partition_by {
        sql.push_str(&format!(" PARTITIONED BY ({columns})"));
    }
    if !options.is_empty() {
        let list: Vec<String> = options
            .iter()
            .map(|(k, v)| format!("{} {}", quote_string(k), quote_string(v)))
            .collect();
        sql.push_str(&format!(" OPTIONS ({})", list.join(", ")));
    }
    Ok(sql)
}

/// What COPY FROM reads, from its options.
struct FromOptions {
    format: Format,
    csv: CsvSettings,
}

fn from_options(copy: &CopyFrom) -> Result<FromOptions> {
    let mut format = None;
    let mut csv = CsvSettings::default();
    for (name, value) in &copy.settings {
        if name == "format" {
            let text = value.as_text();
            format = Some(Format::from_name(&text).ok_or_else(|| {
                SqlError::InvalidParameter(format!(
                    "COPY: unknown FORMAT '{text}' (parquet, csv or json)"
                ))
            })?);
        } else if !apply_csv_setting(&mut csv, name, value)? {
            return Err(SqlError::InvalidParameter(format!(
                "COPY FROM: unknown option '{name}' (supported: FORMAT, HEADER, DELIMITER, QUOTE, ESCAPE)"
            )));
        }
    }
    let format = format
        .or_else(|| Format::from_path(copy.path.trim_end_matches('/')))
        .ok_or_else(|| {
            SqlError::InvalidParameter(format!(
                "COPY FROM '{}': the path's extension does not tell the format; add (FORMAT parquet), (FORMAT csv) or (FORMAT json)",
                copy.path
            ))
        })?;
    if format != Format::Csv && csv != CsvSettings::default() {
        return Err(SqlError::InvalidParameter(format!(
            "COPY FROM: HEADER, DELIMITER, QUOTE and ESCAPE apply to CSV, not {}",
            format.name()
        )));
    }
    Ok(FromOptions { format, csv })
}

/// Runs COPY FROM; returns how many rows were loaded.
pub(crate) async fn copy_from(
    state: &SessionState,
    catalog: &Catalog,
    current_database: &str,
    copy: CopyFrom,
) -> Result<u64> {
    let database = copy
        .database
        .clone()
        .unwrap_or_else(|| current_database.to_string());
    let provider = crate::catalog::load_provider(catalog, &database, &copy.table).await?;
    let options = from_options(&copy)?;
    let location = locate(state, &copy.path)?;
    let metas = list(&location, options.format).await?;
    let table = provider.table().clone();
    let target = provider.schema();
    let mut files = Vec::new();
    for meta in metas.into_iter().filter(|m| m.size > 0) {
        files.push(open_file(state, &location, meta, &options, &table, &target).await?);
    }
    let source = CopySource {
        schema: target.clone(),
        files,
    };
    let input = StreamingTableExec::try_new(
        target,
        vec![Arc::new(source)],
        None,
        Vec::new(),
        false,
        None,
    )?;
    let insert = provider
        .insert_into(state, Arc::new(input), InsertOp::Append)
        .await?;
    let batches = datafusion::physical_plan::collect(insert, state.task_ctx()).await?;
    let mut rows = 0;
    for batch in &batches {
        if let Some(counts) = batch.columns().first().and_then(|c| {
            c.as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
        }) {
            rows += counts.iter().flatten().sum::<u64>();
        }
    }
    Ok(rows)
}

/// The file's path as the user would write it.
fn display_path(location: &Location, meta: &ObjectMeta) -> String {
    let store = location.store_url.as_str().trim_end_matches('/');
    match store {
        "file://" | "file:" => format!("/{}", meta.location),
        _ => format!("{store}/{}", meta.location),
    }
}

async fn open_file(
    state: &SessionState,
    location: &Location,
    meta: ObjectMeta,
    options: &FromOptions,
    table: &Table,
    target: &SchemaRef,
) -> Result<CopyFile> {
    let path = display_path(location, &meta);
    let mut request = FileRequest::new(vec![path.clone()], options.format);
    request.csv = options.csv.clone();
    let (file_schema, first_line) = match options.format {
        Format::Csv => {
            let header = match options.csv.header {
                Some(h) => h,
                None => first_line_is_header(location, &meta, &options.csv, target).await?,
            };
            request.csv.header = Some(header);
            // Columns by position: no extra columns from hive folders.
            request.hive = Some(false);
            // Every field as text, so that a bad value is found by its row.
            let fields: Vec<Field> = target
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), ArrowType::Utf8, true))
                .collect();
            (Arc::new(Schema::new(fields)), if header { 2 } else { 1 })
        }
        Format::Json | Format::Parquet => {
            let format = request.file_format();
            let schema = infer_schema(
                state,
                &*format,
                &location.store,
                std::slice::from_ref(&meta),
                &path,
            )
            .await?;
            (schema, 1)
        }
    };
    let file_columns = file_schema.fields().len();
    let file = FileTable::with_schema(
        &request,
        location.store_url.clone(),
        vec![meta],
        file_schema,
    )?;
    let mapping = match options.format {
        Format::Csv => (0..file_columns).map(Some).collect(),
        // Hive folders (`dt=2026-11-01/`) fill columns the files lack.
        Format::Json | Format::Parquet => {
            map_by_name(&file.schema(), file_columns, target, &path, table)?
        }
    };
    let plan = file.scan(state, None, &[], None).await?;
    let types = table
        .schema()
        .fields
        .iter()
        .map(|f| sql_type(&f.data_type))
        .collect();
    Ok(CopyFile {
        plan,
        converter: Converter {
            file: path,
            format: options.format,
            first_line,
            rows_seen: 0,
            extra_lines: 0,
            mapping,
            target: target.clone(),
            table: table.identifier().to_string(),
            keys: table.primary_keys().to_vec(),
            types,
        },
    })
}

/// For each table column, the file column of the same name (exact, else
/// case-insensitive); a column of the file itself (the first
/// `file_columns`, before hive folders) that the table lacks is an error.
fn map_by_name(
    file: &Schema,
    file_columns: usize,
    target: &Schema,
    path: &str,
    table: &Table,
) -> Result<Vec<Option<usize>>> {
    let find = |name: &str| {
        file.index_of(name).ok().or_else(|| {
            file.fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(name))
        })
    };
    let mapping: Vec<Option<usize>> = target.fields().iter().map(|f| find(f.name())).collect();
    for (i, field) in file.fields().iter().enumerate().take(file_columns) {
        if !mapping.contains(&Some(i)) {
            return Err(SqlError::UndefinedColumn(format!(
                "file '{path}' has column '{}', which table '{}' does not have",
                field.name(),
                table.identifier()
            )));
        }
    }
    Ok(mapping)
}

/// Whether a CSV file's first line is the table's column names.
async fn first_line_is_header(
    location: &Location,
    meta: &ObjectMeta,
    csv: &CsvSettings,
    target: &Schema,
) -> Result<bool> {
    let end = meta.size.min(64 * 1024);
    let bytes = location
        .store
        .get_range(&meta.location, 0..end)
        .await
        .map_err(|e| SqlError::Io(format!("cannot read '{}': {e}", meta.location)))?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().next().unwrap_or_default();
    let delimiter = char::from(csv.delimiter.unwrap_or(b','));
    let quote = char::from(csv.quote.unwrap_or(b'"'));
    let names: Vec<String> = line
        .split(delimiter)
        .map(|f| f.trim().trim_matches(quote).to_lowercase())
        .collect();
    Ok(names.len() == target.fields().len()
        && names
            .iter()
            .zip(target.fields())
            .all(|(n, f)| *n == f.name().to_lowercase()))
}

/// One file to load: its scan and what turns its rows into the table's.
#[derive(Clone)]
struct CopyFile {
    plan: Arc<dyn ExecutionPlan>,
    converter: Converter,
}

/// Casts a file's batches to the table's types, checking NOT NULL, and
/// knows where each row is in the file.
#[derive(Clone)]
struct Converter {
    file: String,
    format: Format,
    /// The line of the first row (CSV: 2 after a header).
    first_line: u64,
    rows_seen: u64,
    /// Line breaks inside quoted CSV values so far.
    extra_lines: u64,
    /// For each table column, the file column it comes from.
    mapping: Vec<Option<usize>>,
    target: SchemaRef,
    table: String,
    keys: Vec<String>,
    /// The columns' SQL types, for messages.
    types: Vec<String>,
}

fn newlines(column: &ArrayRef, rows: std::ops::Range<usize>) -> u64 {
    let Some(strings) = column.as_any().downcast_ref::<StringArray>() else {
        return 0;
    };
    rows.filter(|&r| strings.is_valid(r))
        .map(|r| strings.value(r).bytes().filter(|b| *b == b'\n').count() as u64)
        .sum()
}

impl Converter {
    /// Where row `row` of `batch` is: "line N" or "row N".
    fn place(&self, batch: &RecordBatch, row: usize) -> String {
        let before = self.rows_seen + row as u64;
        match self.format {
            Format::Csv => {
                let inside: u64 = batch.columns().iter().map(|c| newlines(c, 0..row)).sum();
                format!(
                    "line {}",
                    self.first_line + before + self.extra_lines + inside
                )
            }
            Format::Json => format!("line {}", before + 1),
            Format::Parquet => format!("row {}", before + 1),
        }
    }

    fn convert(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns = Vec::with_capacity(self.target.fields().len());
        for (j, field) in self.target.fields().iter().enumerate() {
            let source = match self.mapping.get(j).copied().flatten() {
                Some(i) => batch.column(i).clone(),
                None => new_null_array(field.data_type(), rows),
            };
            let cast = if source.data_type() == field.data_type() {
                source.clone()
            } else {
                let lenient = CastOptions {
                    safe: true,
                    ..CastOptions::default()
                };
                cast_with_options(&source, field.data_type(), &lenient)?
            };
            let bad = (0..rows).find(|&r| source.is_valid(r) && cast.is_null(r));
            if let Some(row) = bad {
                return Err(self.bad_value(batch, row, j, &source));
            }
            if !field.is_nullable() && cast.null_count() > 0 {
                let row = (0..rows).find(|&r| cast.is_null(r)).unwrap_or(0);
                let key = if self.keys.iter().any(|k| k == field.name()) {
                    ", a primary key column"
                } else {
                    ""
                };
                return Err(SqlError::NotNull {
                    table: self.table.clone(),
                    column: field.name().clone(),
                    hint: format!(" (file '{}', {}{key})", self.file, self.place(batch, row)),
                });
            }
            columns.push(cast);
        }
        if self.format == Format::Csv {
            self.extra_lines += batch
                .columns()
                .iter()
                .map(|c| newlines(c, 0..rows))
                .sum::<u64>();
        }
        self.rows_seen += rows as u64;
        Ok(RecordBatch::try_new(self.target.clone(), columns)?)
    }

    fn bad_value(
        &self,
        batch: &RecordBatch,
        row: usize,
        column: usize,
        source: &ArrayRef,
    ) -> SqlError {
        let field = self.target.field(column);
        let value = ArrayFormatter::try_new(source.as_ref(), &FormatOptions::default())
            .map(|f| f.value(row).to_string())
            .unwrap_or_default();
        let strict = cast_with_options(
            &source.slice(row, 1),
            field.data_type(),
            &CastOptions::default(),
        );
        // Text that is a number but does not fit the column is out of range
        // (Arrow reports both as "cannot cast").
        let text = value.trim();
        let numeric_text = match field.data_type() {
            t if t.is_integer() => text.parse::<i128>().is_ok(),
            t => t.is_numeric() && text.parse::<f64>().is_ok(),
        };
        let out_of_range =
            numeric_text || matches!(strict.map_err(SqlError::from), Err(SqlError::OutOfRange(_)));
        let sql_type = self.types.get(column).cloned().unwrap_or_default();
        let message = format!(
            "'{value}' is not a valid {sql_type} for column '{}' of table '{}' (file '{}', {})",
            field.name(),
            self.table,
            self.file,
            self.place(batch, row)
        );
        if out_of_range {
            SqlError::OutOfRange(format!("value out of range: {message}"))
        } else {
            SqlError::InvalidValue(format!("invalid value: {message}"))
        }
    }
}

/// The files of a COPY FROM, read one after the other.
struct CopySource {
    schema: SchemaRef,
    files: Vec<CopyFile>,
}

impl fmt::Debug for CopySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopySource")
            .field("files", &self.files.len())
            .finish()
    }
}

impl PartitionStream for CopySource {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let files = self.files.clone();
        let stream =
            futures::stream::iter(files).flat_map(move |file| file_stream(file, ctx.clone()));
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

fn file_stream(
    file: CopyFile,
    ctx: Arc<TaskContext>,
) -> BoxStream<'static, datafusion::common::Result<RecordBatch>> {
    let partitions = file.plan.output_partitioning().partition_count();
    let plan = file.plan.clone();
    let name = file.converter.file.clone();
    let batches = futures::stream::iter(0..partitions).flat_map(move |p| {
        match plan.execute(p, ctx.clone()) {
            Ok(s) => s.boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    });
    let mut converter = file.converter;
    batches
        .map(move |batch| match batch {
            Ok(b) => converter.convert(&b).map_err(to_df),
            Err(e) => Err(to_df(in_file(&name, SqlError::from(e)))),
        })
        .boxed()
}

/// Names the file in an error from reading it.
fn in_file(file: &str, e: SqlError) -> SqlError {
    let context = |m: String| format!("file '{file}': {m}");
    match e {
        SqlError::Io(m) => SqlError::Io(context(m)),
        SqlError::InvalidValue(m) => SqlError::InvalidValue(context(m)),
        SqlError::OutOfRange(m) => SqlError::OutOfRange(context(m)),
        SqlError::Execution(m) => SqlError::InvalidValue(context(m)),
        SqlError::Corrupt(m) => SqlError::Corrupt(context(m)),
        SqlError::Internal(m) => SqlError::Internal(context(m)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::split_statements;

    fn parsed(sql: &str) -> Copy {
        parse(&split_statements(sql).unwrap().remove(0)).unwrap()
    }

    #[test]
    fn copy_to_becomes_datafusion_copy() {
        let Copy::To(sql) = parsed(
            "COPY (SELECT 1 AS a) TO '/tmp/x.out' (FORMAT csv, HEADER false, DELIMITER ';')",
        ) else {
            panic!("not a COPY TO");
        };
        assert_eq!(
            sql,
            "COPY (SELECT 1 AS a) TO '/tmp/x.out' STORED AS CSV OPTIONS ('format.delimiter' ';', 'format.has_header' 'false')"
        );
        let Copy::To(sql) = parsed("copy db.T to 's3://b/out.parquet'") else {
            panic!("not a COPY TO");
        };
        assert_eq!(sql, "COPY db.t TO 's3://b/out.parquet' STORED AS PARQUET");
        assert!(matches!(
            parsed("COPY t TO '/tmp/x' STORED AS PARQUET"),
            Copy::DataFusion
        ));
    }

    fn csv_converter() -> Converter {
        let target = Arc::new(Schema::new(vec![
            Field::new("n", ArrowType::Int32, false),
            Field::new("s", ArrowType::Utf8, true),
        ]));
        Converter {
            file: "f.csv".into(),
            format: Format::Csv,
            first_line: 2,
            rows_seen: 0,
            extra_lines: 0,
            mapping: vec![Some(0), Some(1)],
            target,
            table: "db.t".into(),
            keys: vec!["n".into()],
            types: vec!["INT".into(), "STRING".into()],
        }
    }

    fn text_batch(n: &[Option<&str>], s: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", ArrowType::Utf8, true),
            Field::new("s", ArrowType::Utf8, true),
        ]));
        let n: ArrayRef = Arc::new(StringArray::from(n.to_vec()));
        let s: ArrayRef = Arc::new(StringArray::from(s.to_vec()));
        RecordBatch::try_new(schema, vec![n, s]).unwrap()
    }

    #[test]
    fn bad_rows_are_placed_across_batches_and_quoted_line_breaks() {
        let mut c = csv_converter();
        // Lines 2-4 (a value spans two lines), then 5.
        let first = text_batch(&[Some("1"), Some("2")], &["a\nb", "c"]);
        assert_eq!(c.convert(&first).unwrap().num_rows(), 2);
        let second = text_batch(&[Some("3"), Some("x")], &["d", "e\nf"]);
        let e = c.convert(&second).unwrap_err();
        assert_eq!(e.code(), "22P02");
        assert!(e.to_string().contains("(file 'f.csv', line 6)"), "{e}");
        let mut c = csv_converter();
        let e = c
            .convert(&text_batch(&[Some("1"), None], &["a", "b"]))
            .unwrap_err();
        assert_eq!(e.code(), "23502");
        assert!(
            e.to_string().contains("line 3, a primary key column"),
            "{e}"
        );
        let e = csv_converter()
            .convert(&text_batch(&[Some("99999999999")], &["a"]))
            .unwrap_err();
        assert_eq!(e.code(), "22003", "{e}");
        let e = csv_converter()
            .convert(&text_batch(&[Some("1.5")], &["a"]))
            .unwrap_err();
        assert_eq!(e.code(), "22P02", "{e}");
    }

    #[test]
    fn copy_from_takes_options() {
        let Copy::From(from) =
            parsed("COPY shop.orders FROM 'data/*.csv' WITH (FORMAT csv, HEADER, DELIM '|')")
        else {
            panic!("not a COPY FROM");
        };
        assert_eq!(
            (from.database.as_deref(), from.table.as_str()),
            (Some("shop"), "orders")
        );
        assert_eq!(from.settings.get("header"), Some(&SettingValue::Bool(true)));
        assert_eq!(
            from.settings.get("delim"),
            Some(&SettingValue::Text("|".into()))
        );
        let e = parse(
            &split_statements("COPY t (a) FROM 'x.csv'")
                .unwrap()
                .remove(0),
        )
        .unwrap_err();
        assert_eq!(e.code(), "0A000");
    }
}
