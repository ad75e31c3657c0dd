//! The warehouse as a DataFusion catalog: databases are schemas, tables are
//! loaded lazily by name when a statement mentions them (so every statement
//! sees the latest schema and snapshot).
//!
//! Table names carry Paimon's `$` suffixes: `t$files` and the other system
//! tables, and time travel, which the lexer rewrites into names as well:
//! `t VERSION AS OF 3` → `t$snapshot_3`, `t VERSION AS OF 'nightly'` →
//! `t$tag_nightly`, `t FOR SYSTEM_TIME AS OF TIMESTAMP '...'` →
//! `t$timestamp_...` (also after a system table: `t$files$snapshot_3`).
//!
//! DataFusion asks for schema and table *names* synchronously; those come
//! from a listing cached at the last `refresh` (the session refreshes it on
//! `SHOW` and after DDL). Lookups by name never use the cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Word};
use tidelake_engine::{Catalog, EngineError, Identifier, Table};

use crate::error::SqlError;
use crate::extension::Extensions;
use crate::provider::{to_df, TidelakeTable};
use crate::system_tables::{load_system_table, SystemTable};

/// The suffix that selects a snapshot of a table.
pub const SNAPSHOT_SUFFIX: &str = "$snapshot_";
/// The suffix that selects the snapshot of a tag.
pub const TAG_SUFFIX: &str = "$tag_";
/// The suffix that selects the latest snapshot committed at or before a time.
pub const TIMESTAMP_SUFFIX: &str = "$timestamp_";
/// The suffix that selects a branch (Paimon's `t$branch_dev`); time travel
/// or a system table may follow (`t$branch_dev$snapshots`).
pub const BRANCH_SUFFIX: &str = "$branch_";

/// Which snapshot a name reads (time travel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TimeTravel {
    Snapshot(i64),
    Tag(String),
    /// The time as written (`2026-11-25 04:00:00`), read as UTC.
    Timestamp(String),
}

/// What a table name selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableRef<'a> {
    pub table: &'a str,
    /// A branch other than main.
    pub branch: Option<&'a str>,
    pub system: Option<SystemTable>,
    pub travel: Option<TimeTravel>,
}

impl<'a> TableRef<'a> {
    fn plain(table: &'a str) -> Self {
        TableRef {
            table,
            branch: None,
            system: None,
            travel: None,
        }
    }
}

fn parse_travel(name: &str, rest: &str) -> Result<Option<TimeTravel>, SqlError> {
    if let Some(id) = rest.strip_prefix(&SNAPSHOT_SUFFIX[1..]) {
        return match id.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Some(TimeTravel::Snapshot(id))),
            _ => Err(SqlError::InvalidParameter(format!(
                "'{name}': a snapshot id after '{SNAPSHOT_SUFFIX}' must be a positive integer"
            ))),
        };
    }
    if let Some(tag) = rest.strip_prefix(&TAG_SUFFIX[1..]) {
        if tag.is_empty() {
            return Err(SqlError::InvalidParameter(format!(
                "'{name}': a tag name must follow '{TAG_SUFFIX}'"
            )));
        }
        return Ok(Some(TimeTravel::Tag(tag.to_string())));
    }
    if let Some(time) = rest.strip_prefix(&TIMESTAMP_SUFFIX[1..]) {
        return Ok(Some(TimeTravel::Timestamp(time.to_string())));
    }
    Ok(None)
}

/// Splits `orders$files$snapshot_3` into its parts. A name whose part
/// before the first `$` is empty is taken as a plain name.
pub(crate) fn parse_table_name(name: &str) -> Result<TableRef<'_>, SqlError> {
    let Some((table, rest)) = name.split_once('$') else {
        return Ok(TableRef::plain(name));
    };
    if table.is_empty() {
        return Ok(TableRef::plain(name));
    }
    let (branch, rest) = match rest.strip_prefix(&BRANCH_SUFFIX[1..]) {
        Some(after) => {
            let (branch, rest) = match after.split_once('$') {
                Some((b, r)) => (b, Some(r)),
                None => (after, None),
            };
            if branch.is_empty() {
                return Err(SqlError::InvalidParameter(format!(
                    "'{name}': a branch name must follow '{BRANCH_SUFFIX}'"
                )));
            }
            (Some(branch), rest)
        }
        None => (None, Some(rest)),
    };
    let Some(rest) = rest else {
        return Ok(TableRef {
            table,
            branch,
            system: None,
            travel: None,
        });
    };
    // Time travel first: a tag name may itself contain '$'.
    if let Some(travel) = parse_travel(name, rest)? {
        return Ok(TableRef {
            table,
            branch,
            system: None,
            travel: Some(travel),
        });
    }
    let (system_name, travel_part) = match rest.split_once('$') {
        Some((s, t)) => (s, Some(t)),
        None => (rest, None),
    };
    let Some(system) = SystemTable::from_name(system_name) else {
        return Err(SqlError::UndefinedSystemTable {
            table: name.to_string(),
            suffix: system_name.to_string(),
            supported: SystemTable::supported_list(),
        });
    };
    let travel = match travel_part {
        None => None,
        Some(t) => Some(parse_travel(name, t)?.ok_or_else(|| {
            SqlError::InvalidParameter(format!(
                "'{name}': after '${system_name}' only '{SNAPSHOT_SUFFIX}N', '{TAG_SUFFIX}NAME' or '{TIMESTAMP_SUFFIX}TIME' may follow"
            ))
        })?),
    };
    if travel.is_some() && !system.supports_time_travel() {
        return Err(SqlError::Unsupported(format!(
            "'{name}': the system table '${system_name}' does not support time travel"
        )));
    }
    Ok(TableRef {
        table,
        branch,
        system: Some(system),
        travel,
    })
}

/// A time-travel clause after a table name, starting at token `i`: the
/// suffix that selects it and how many tokens it spans. Forms:
/// `VERSION AS OF 3`, `VERSION AS OF 'tag'` (a quoted number is a snapshot
/// id, as in Paimon's Spark integration: tag names are never numeric),
/// `FOR SYSTEM_TIME AS OF [TIMESTAMP] '...'` (Flink) and
/// `TIMESTAMP AS OF '...'` (Spark).
pub(crate) fn time_travel_clause(tokens: &[TokenWithSpan], i: usize) -> Option<(String, usize)> {
    let word = |j: usize, w: &str| {
        matches!(tokens.get(j).map(|t| &t.token),
            Some(Token::Word(x)) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
    };
    let string = |j: usize| match tokens.get(j).map(|t| &t.token) {
        Some(Token::SingleQuotedString(s)) => Some(s.clone()),
        _ => None,
    };
    if word(i, "VERSION") && word(i + 1, "AS") && word(i + 2, "OF") {
        return match tokens.get(i + 3).map(|t| &t.token) {
            Some(Token::Number(n, _)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
                Some((format!("{SNAPSHOT_SUFFIX}{n}"), 4))
            }
            Some(Token::SingleQuotedString(s)) if !s.is_empty() => {
                if s.chars().all(|c| c.is_ascii_digit()) {
                    Some((format!("{SNAPSHOT_SUFFIX}{s}"), 4))
                } else {
                    Some((format!("{TAG_SUFFIX}{s}"), 4))
                }
            }
            _ => None,
        };
    }
    if word(i, "FOR") && word(i + 1, "SYSTEM_TIME") && word(i + 2, "AS") && word(i + 3, "OF") {
        if word(i + 4, "TIMESTAMP") {
            return string(i + 5).map(|s| (format!("{TIMESTAMP_SUFFIX}{s}"), 6));
        }
        return string(i + 4).map(|s| (format!("{TIMESTAMP_SUFFIX}{s}"), 5));
    }
    if word(i, "TIMESTAMP") && word(i + 1, "AS") && word(i + 2, "OF") {
        return string(i + 3).map(|s| (format!("{TIMESTAMP_SUFFIX}{s}"), 4));
    }
    None
}

/// The identifier that names `table` with `suffix`, as SQL text: unquoted
/// when it can be, else double-quoted with the table part in the case
/// DataFusion would have given it unquoted.
pub(crate) fn suffixed_table_name(table: &Word, suffix: &str) -> String {
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
    };
    if table.quote_style.is_none() && plain(suffix) {
        return format!("{}{suffix}", table.value);
    }
    let quote = table.quote_style.unwrap_or('"');
    let base = match table.quote_style {
        Some(_) => table.value.clone(),
        None => table.value.to_ascii_lowercase(),
    };
    let name = format!("{base}{suffix}");
    let doubled = format!("{quote}{quote}");
    format!("{quote}{}{quote}", name.replace(quote, &doubled))
}

/// Loads a table, or one of its branches.
pub(crate) async fn load_table_ref(
    catalog: &Catalog,
    database: &str,
    table_ref: &TableRef<'_>,
) -> Result<Table, SqlError> {
    let id = Identifier::new(database, table_ref.table);
    let table = load_table(catalog, &id).await?;
    let Some(branch) = table_ref.branch else {
        return Ok(table);
    };
    if branch != tidelake_engine::MAIN_BRANCH && !table.branch_exists(branch).await? {
        // "table 'db.t$branch_dev' does not exist": the branch is missing.
        return Err(SqlError::UndefinedTable(format!(
            "{id}{BRANCH_SUFFIX}{branch}"
        )));
    }
    Ok(catalog.load_branch(&id, branch).await?)
}

async fn load_table(catalog: &Catalog, id: &Identifier) -> Result<Table, SqlError> {
    match catalog.load_table(id).await {
        Ok(t) => Ok(t),
        Err(EngineError::TableNotFound(_)) => {
            // Name the database when it is the part that is missing.
            if !catalog.database_exists(&id.database).await? {
                return Err(SqlError::UndefinedDatabase(id.database.clone()));
            }
            Err(SqlError::UndefinedTable(id.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A snapshot to read, resolved from a time-travel selector.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub snapshot_id: i64,
    /// Set when the snapshot is a tag's (read through the tag file).
    pub tag: Option<String>,
}

/// Finds the snapshot a time-travel selector names; errors name the table
/// and the snapshot, tag or time.
pub(crate) async fn resolve_travel(
    table: &Table,
    travel: &TimeTravel,
) -> Result<Resolved, SqlError> {
    let id = table.identifier();
    match travel {
        TimeTravel::Snapshot(snapshot_id) => {
            if table.snapshots().snapshot(*snapshot_id).await?.is_none() {
                return Err(SqlError::InvalidParameter(format!(
                    "snapshot {snapshot_id} of table '{id}' does not exist (or has expired)"
                )));
            }
            Ok(Resolved {
                snapshot_id: *snapshot_id,
                tag: None,
            })
        }
        TimeTravel::Tag(name) => match table.tag(name).await {
            Ok(Some(snapshot)) => Ok(Resolved {
                snapshot_id: snapshot.id,
                tag: Some(name.clone()),
            }),
            Ok(None) => Err(SqlError::InvalidParameter(format!(
                "tag '{name}' of table '{id}' does not exist"
            ))),
            Err(EngineError::InvalidInput(m)) => {
                Err(SqlError::InvalidParameter(format!("table '{id}': {m}")))
            }
            Err(e) => Err(e.into()),
        },
        TimeTravel::Timestamp(text) => {
            let millis = parse_timestamp_millis(text).ok_or_else(|| {
                SqlError::InvalidValue(format!(
                    "'{text}' is not a timestamp (time travel on table '{id}' expects 'YYYY-MM-DD[ HH:MM:SS[.fff]]')"
                ))
            })?;
            let reader = table.snapshots();
            let ids = reader.list_snapshot_ids().await?;
            let mut earliest = None;
            // Newest first: commit times grow with snapshot ids.
            for snapshot_id in ids.iter().rev() {
                let Some(s) = reader.snapshot(*snapshot_id).await? else {
                    continue;
                };
                if s.time_millis <= millis {
                    return Ok(Resolved {
                        snapshot_id: s.id,
                        tag: None,
                    });
                }
                earliest = Some(s);
            }
            Err(SqlError::InvalidParameter(match earliest {
                Some(s) => format!(
                    "table '{id}' has no snapshot committed at or before '{text}' (its earliest snapshot, {}, was committed at {})",
                    s.id,
                    format_millis(s.time_millis)
                ),
                None => format!("table '{id}' has no snapshot committed at or before '{text}' (it has no snapshot)"),
            }))
        }
    }
}

/// A timestamp literal without a zone, read as UTC (as `commit_time` in
/// `$snapshots` shows commit times).
/// Parses at millisecond resolution: through nanoseconds, dates after 2262
/// would overflow.
fn parse_timestamp_millis(text: &str) -> Option<i64> {
    use datafusion::arrow::compute::kernels::cast_utils::string_to_datetime;
    string_to_datetime(&chrono::Utc, text.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

fn format_millis(millis: i64) -> String {
    use datafusion::arrow::array::{Array, TimestampMillisecondArray};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let array = TimestampMillisecondArray::from(vec![millis]);
    let options = FormatOptions::default();
    let text = match ArrayFormatter::try_new(&array as &dyn Array, &options) {
        Ok(f) => f.value(0).to_string(),
        Err(_) => format!("{millis} ms"),
    };
    text
}

/// Loads a table (optionally as of a snapshot or tag) as our provider.
pub(crate) async fn load_provider(
    catalog: &Catalog,
    database: &str,
    name: &str,
) -> Result<TidelakeTable, SqlError> {
    let table_ref = parse_table_name(name)?;
    if table_ref.system.is_some() {
        return Err(SqlError::Unsupported(format!(
            "'{name}' is a system table: it can only be queried"
        )));
    }
    let table = load_table_ref(catalog, database, &table_ref).await?;
    travel_provider(table, table_ref.travel.as_ref()).await
}

/// The table as of a time-travel selector (the latest snapshot without one).
pub(crate) async fn travel_provider(
    table: Table,
    travel: Option<&TimeTravel>,
) -> Result<TidelakeTable, SqlError> {
    let Some(travel) = travel else {
        return Ok(TidelakeTable::new(table, None));
    };
    let resolved = resolve_travel(&table, travel).await?;
    let provider = TidelakeTable::new(table, Some(resolved.snapshot_id));
    Ok(match resolved.tag {
        Some(tag) => provider.with_tag(tag),
        None => provider,
    })
}

/// Any name DataFusion may ask for: a table, a past snapshot of one, or a
/// system table.
pub(crate) async fn load_any(
    catalog: &Catalog,
    database: &str,
    name: &str,
) -> Result<Arc<dyn TableProvider>, SqlError> {
    let table_ref = parse_table_name(name)?;
    if let Some(system) = table_ref.system {
        let table = load_table_ref(catalog, database, &table_ref).await?;
        return load_system_table(table, system, table_ref.travel.as_ref()).await;
    }
    Ok(Arc::new(load_provider(catalog, database, name).await?))
}

/// All databases of a warehouse.
pub struct TidelakeCatalog {
    catalog: Catalog,
    /// How deeply nested in views the statements using it are planned.
    view_depth: usize,
    databases: RwLock<Vec<String>>,
    providers: RwLock<HashMap<String, Arc<TidelakeDatabase>>>,
    extensions: Extensions,
}

impl std::fmt::Debug for TidelakeCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TidelakeCatalog")
            .field("warehouse", &self.catalog.warehouse_uri())
            .finish()
    }
}

impl TidelakeCatalog {
    pub fn new(catalog: Catalog) -> Self {
        Self::nested(catalog, 0)
    }

    /// A catalog whose databases also serve the tables `extensions` serve.
    pub fn with_extensions(catalog: Catalog, extensions: Extensions) -> Self {
        TidelakeCatalog {
            extensions,
            ..Self::nested(catalog, 0)
        }
    }

    /// The catalog a view's query is planned with, `view_depth` views deep.
    pub(crate) fn nested(catalog: Catalog, view_depth: usize) -> Self {
        TidelakeCatalog {
            catalog,
            view_depth,
            databases: RwLock::new(Vec::new()),
            providers: RwLock::new(HashMap::new()),
            extensions: Extensions::default(),
        }
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The provider of one database (kept, so its cached table list lives on).
    pub fn database(&self, name: &str) -> Arc<TidelakeDatabase> {
        if let Some(found) = self
            .providers
            .read()
            .ok()
            .and_then(|p| p.get(name).cloned())
        {
            return found;
        }
        let created = Arc::new(TidelakeDatabase {
            catalog: self.catalog.clone(),
            name: name.to_string(),
            view_depth: self.view_depth,
            extensions: self.extensions.clone(),
            tables: RwLock::new(Vec::new()),
            views: RwLock::new(Vec::new()),
        });
        match self.providers.write() {
            Ok(mut providers) => providers.entry(name.to_string()).or_insert(created).clone(),
            Err(_) => created,
        }
    }

    /// Re-reads the list of databases behind `schema_names`.
    pub async fn refresh(&self) -> Result<Vec<String>, SqlError> {
        let names = self.catalog.list_databases().await?;
        if let Ok(mut cached) = self.databases.write() {
            cached.clone_from(&names);
        }
        Ok(names)
    }
}

impl CatalogProvider for TidelakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.databases.read().map(|d| d.clone()).unwrap_or_default()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        // Existence is checked when a table is loaded, so that the error
        // can say which database is missing.
        Some(self.database(name))
    }
}

/// One database of the warehouse.
pub struct TidelakeDatabase {
    catalog: Catalog,
    name: String,
    view_depth: usize,
    extensions: Extensions,
    tables: RwLock<Vec<String>>,
    views: RwLock<Vec<String>>,
}

impl std::fmt::Debug for TidelakeDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TidelakeDatabase")
            .field("name", &self.name)
            .finish()
    }
}

impl TidelakeDatabase {
    /// Re-reads the lists of tables and views behind `table_names`;
    /// returns the tables.
    pub async fn refresh(&self) -> Result<Vec<String>, SqlError> {
        let names = self.catalog.list_tables(&self.name).await?;
        let views = self.catalog.views().list(&self.name).await?;
        if let Ok(mut cached) = self.tables.write() {
            cached.clone_from(&names);
        }
        if let Ok(mut cached) = self.views.write() {
            *cached = views;
        }
        Ok(names)
    }

    /// A table or, when no table has the name, a view.
    async fn table_or_view(&self, name: &str) -> Result<Arc<dyn TableProvider>, SqlError> {
        for extension in self.extensions.iter() {
            if let Some(provider) = extension.table(&self.catalog, &self.name, name).await? {
                return Ok(provider);
            }
        }
        match load_any(&self.catalog, &self.name, name).await {
            Err(SqlError::UndefinedTable(missing)) if !name.contains('$') => {
                let id = Identifier::new(self.name.clone(), name);
                match self.catalog.views().get(&id).await? {
                    Some(spec) => {
                        crate::views::view_provider(&self.catalog, &id, &spec, self.view_depth)
                            .await
                    }
                    None => Err(SqlError::UndefinedTable(missing)),
                }
            }
            other => other,
        }
    }
}

#[async_trait]
impl SchemaProvider for TidelakeDatabase {
    /// Tables, then views (information_schema lists both).
    fn table_names(&self) -> Vec<String> {
        let mut names = self.tables.read().map(|t| t.clone()).unwrap_or_default();
        names.extend(self.views.read().map(|v| v.clone()).unwrap_or_default());
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>, DataFusionError> {
        // A missing table (and view) is None, as DataFusion expects: the
        // name may be a table function's (see `builtins`).
        match self.table_or_view(name).await {
            Ok(provider) => Ok(Some(provider)),
            Err(SqlError::UndefinedTable(_)) => Ok(None),
            Err(e) => Err(to_df(e)),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        let table = parse_table_name(name).map_or(name, |r| r.table);
        let has = |list: &RwLock<Vec<String>>| {
            list.read()
                .map(|t| t.iter().any(|n| n == table))
                .unwrap_or(false)
        };
        has(&self.tables) || has(&self.views)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::split_statements;

    fn travel(name: &str) -> Option<TimeTravel> {
        parse_table_name(name).unwrap().travel
    }

    #[test]
    fn suffixes_parse() {
        assert_eq!(
            parse_table_name("orders").unwrap(),
            TableRef::plain("orders")
        );
        assert_eq!(travel("orders$snapshot_12"), Some(TimeTravel::Snapshot(12)));
        let r = parse_table_name("orders$snapshots").unwrap();
        assert_eq!(
            (r.table, r.system),
            ("orders", Some(SystemTable::Snapshots))
        );
        assert_eq!(
            parse_table_name("$snapshots").unwrap(),
            TableRef::plain("$snapshots")
        );
        assert_eq!(
            parse_table_name("orders$snapshot_x").unwrap_err().code(),
            "22023"
        );
        assert_eq!(
            parse_table_name("orders$snapshot_0").unwrap_err().code(),
            "22023"
        );
        assert_eq!(travel("t$tag_a$b c"), Some(TimeTravel::Tag("a$b c".into())));
        assert_eq!(
            travel("t$timestamp_2026-01-01 10:00:00"),
            Some(TimeTravel::Timestamp("2026-01-01 10:00:00".into()))
        );
        let r = parse_table_name("t$files$snapshot_2").unwrap();
        assert_eq!(
            (r.table, r.system, r.travel),
            ("t", Some(SystemTable::Files), Some(TimeTravel::Snapshot(2)))
        );
        let unknown = parse_table_name("t$nope").unwrap_err();
        assert_eq!(unknown.code(), "42P01");
        assert!(unknown.to_string().contains("$files"), "{unknown}");
        assert_eq!(
            parse_table_name("t$options$snapshot_1").unwrap_err().code(),
            "0A000"
        );
        assert_eq!(
            parse_table_name("t$files$junk").unwrap_err().code(),
            "22023"
        );
    }

    fn rewritten(sql: &str) -> String {
        split_statements(sql).unwrap()[0].text_for_datafusion()
    }

    #[test]
    fn time_travel_clauses_become_names() {
        assert_eq!(
            rewritten("SELECT * FROM T VERSION AS OF 'Nightly-1' x"),
            "SELECT * FROM \"t$tag_Nightly-1\" x"
        );
        assert_eq!(
            rewritten("SELECT * FROM t VERSION AS OF '7'"),
            "SELECT * FROM t$snapshot_7"
        );
        assert_eq!(
            rewritten("SELECT * FROM t FOR SYSTEM_TIME AS OF TIMESTAMP '2026-01-01 10:00:00'"),
            "SELECT * FROM \"t$timestamp_2026-01-01 10:00:00\""
        );
        assert_eq!(
            rewritten("SELECT * FROM \"My\" TIMESTAMP AS OF '2026-01-01'"),
            "SELECT * FROM \"My$timestamp_2026-01-01\""
        );
        assert_eq!(
            rewritten("SELECT * FROM t$files VERSION AS OF 2"),
            "SELECT * FROM t$files$snapshot_2"
        );
    }

    #[test]
    fn timestamps_parse_as_utc() {
        assert_eq!(parse_timestamp_millis("1970-01-01 00:00:01"), Some(1000));
        assert_eq!(parse_timestamp_millis("1970-01-01T00:00:00.250"), Some(250));
        assert_eq!(parse_timestamp_millis("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_timestamp_millis("yesterday"), None);
        assert_eq!(format_millis(1000), "1970-01-01T00:00:01");
    }
}
