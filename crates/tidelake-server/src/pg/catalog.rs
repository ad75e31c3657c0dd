//! Answers to the catalog queries PostgreSQL clients send (psql's `\l`,
//! `\dn`, `\dt`, `\d t`; `version()`, `current_schema()`, ...), from the
//! warehouse as the session sees it.
//!
//! A Tidelake database is both a PostgreSQL database and a schema (`\l`
//! and `\dn` list the same names; `search_path` and the connection's
//! database choose the current one). Each table gets an OID for the life
//! of the connection. A catalog query is answered from a small model of
//! `pg_database`, `pg_namespace`, `pg_class` and `pg_attribute`: the rows
//! come from the warehouse (filtered by the OID, name patterns, relkinds and
//! visibility the query states) and each item of the SELECT list is
//! evaluated by what it names; other catalogs (`pg_index`, `pg_policy`,
//! `pg_inherits`, ...) have no rows, with the columns the query asks for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use regex::Regex;
use tidelake_sql::{QueryHandler, SqlError, StatementResult};

use super::types::pg_type;

/// The OID of the first table, as PostgreSQL numbers user objects.
const FIRST_OID: i64 = 16_384;

/// Catalogs that describe what Tidelake tables do not have.
const EMPTY_CATALOGS: &[&str] = &[
    "pg_index",
    "pg_inherits",
    "pg_policy",
    "pg_statistic_ext",
    "pg_publication",
    "pg_trigger",
    "pg_constraint",
    "pg_rewrite",
    "pg_foreign_table",
    "pg_partitioned_table",
    "pg_event_trigger",
    "pg_extension",
    "pg_description",
];

/// A table as (database, table).
type TableName = (String, String);

/// Table OIDs of one connection: by name, and names in OID order.
#[derive(Default)]
pub struct Oids {
    tables: Mutex<(HashMap<TableName, i64>, Vec<TableName>)>,
}

impl Oids {
    fn oid(&self, database: &str, table: &str) -> i64 {
        let mut guard = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let (by_name, names) = &mut *guard;
        let key = (database.to_string(), table.to_string());
        if let Some(oid) = by_name.get(&key) {
            return *oid;
        }
        let oid = FIRST_OID + names.len() as i64;
        names.push(key.clone());
        by_name.insert(key, oid);
        oid
    }

    fn table(&self, oid: i64) -> Option<(String, String)> {
        let guard = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        usize::try_from(oid - FIRST_OID)
            .ok()
            .and_then(|i| guard.1.get(i).cloned())
    }
}

/// What a connection's catalog answers need.
pub struct Context<'a> {
    pub session: &'a Arc<dyn QueryHandler>,
    pub oids: &'a Oids,
    pub user: &'a str,
    pub version: &'a str,
}

/// A value of an answer.
#[derive(Clone, Debug)]
enum Value {
    Text(String),
    Bool(bool),
    Int(i64),
    Null,
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// Whether `sql` is a catalog query this module answers.
pub fn is_catalog_query(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let relation = relation_names(&lower);
    if !relation.is_empty() {
        return true;
    }
    !has_from(&lower) && {
        let items = select_items(&lower);
        !items.is_empty()
            && items
                .iter()
                .all(|i| function_value(&i.expr, "", "", "").is_some())
    }
}

/// The catalog relations a query names (`pg_class`, `information_schema.tables`).
fn relation_names(lower: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"\b(?:pg_catalog\.)?(pg_[a-z_]+)\b|\binformation_schema\.([a-z_]+)")
            .expect("a valid regex")
    });
    let mut names: Vec<String> = re
        .captures_iter(lower)
        .filter_map(|c| {
            let m = c.get(1).or(c.get(2))?;
            // A function call (pg_get_userbyid(...)) is not a relation, nor
            // is a schema qualifier (pg_catalog.version()).
            let after = lower[m.end()..].trim_start();
            (!after.starts_with('(') && !after.starts_with('.')).then(|| m.as_str().to_string())
        })
        .collect();
    // A set-returning catalog function in FROM (DBeaver's keyword list).
    if lower.contains("pg_get_keywords(") {
        names.push("pg_get_keywords".into());
    }
    names
}

fn has_from(lower: &str) -> bool {
    top_level_keyword(lower, "from").is_some()
}

/// `CAST('r' AS VARCHAR)` and `CAST(16384 AS BIGINT)` (bound parameters)
/// as their literals, for the filters to read.
fn uncast(sql: &str) -> std::borrow::Cow<'_, str> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r"(?i)cast\(\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?)\s+as\s+[a-z_ ]+(?:\(\d+(?:,\s*\d+)?\))?\s*\)",
        )
        .expect("a valid regex")
    });
    re.replace_all(sql, "$1")
}

/// Answers a catalog query.
pub async fn answer(sql: &str, cx: &Context<'_>) -> Result<RecordBatch, SqlError> {
    let sql = &*uncast(sql);
    let lower = sql.to_ascii_lowercase();
    let relations = relation_names(&lower);
    let main = main_relation(&lower)
        .or_else(|| relations.first().cloned())
        .unwrap_or_default();
    let items = expand_stars(select_items(sql), &main);
    let rows: Vec<Vec<Value>> = if relations.is_empty() || !has_from(&lower) {
        let database = cx.session.current_database();
        vec![items
            .iter()
            .map(|i| {
                function_value(&i.expr.to_ascii_lowercase(), &database, cx.user, cx.version)
                    .unwrap_or(Value::Null)
            })
            .collect()]
    } else if joins_an_empty_catalog(&lower) {
        Vec::new()
    } else {
        let mut records = records(&main, sql, &lower, cx).await?;
        if main == "pg_class" && selects_columns(&items) {
            records = table_columns(records, cx).await?;
        }
        records
            .iter()
            .map(|r| items.iter().map(|i| r.value(i, cx.user)).collect())
            .collect()
    };
    batch(&items, rows)
}

/// The columns `x.*` (or `*`) stands for in a query over `relation`
/// (DBeaver selects `n.*`, `db.*`, `c.*`, `t.*`).
fn expand_stars(items: Vec<Item>, relation: &str) -> Vec<Item> {
    let columns: &[&str] = match relation {
        "pg_namespace" => &["nspname", "nspowner", "nspacl"],
        "pg_database" => &[
            "datname",
            "datdba",
            "encoding",
            "datlocprovider",
            "datistemplate",
            "datallowconn",
            "datconnlimit",
            "datcollate",
            "datctype",
            "datacl",
        ],
        "pg_class" => &[
            "relname",
            "relnamespace",
            "reltype",
            "relowner",
            "relam",
            "relkind",
            "relpersistence",
            "relnatts",
            "relchecks",
            "relhasindex",
            "relhasrules",
            "relhastriggers",
            "relhassubclass",
            "relrowsecurity",
            "relispartition",
            "reloptions",
        ],
        "pg_attribute" => &[
            "attrelid",
            "attname",
            "atttypid",
            "attlen",
            "attnum",
            "atttypmod",
            "attnotnull",
            "atthasdef",
            "attidentity",
            "attgenerated",
            "attisdropped",
        ],
        "pg_type" => &[
            "typname",
            "typnamespace",
            "typowner",
            "typlen",
            "typbyval",
            "typtype",
            "typcategory",
            "typisdefined",
            "typdelim",
            "typrelid",
            "typelem",
            "typarray",
            "typinput",
            "typoutput",
            "typnotnull",
            "typbasetype",
            "typtypmod",
            "typndims",
            "typcollation",
            "typdefault",
        ],
        _ => &[],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let expr = item.expr.trim();
        let is_star = expr == "*" || expr.ends_with(".*");
        if !is_star || columns.is_empty() || item.alias.is_some() {
            out.push(item);
            continue;
        }
        let prefix = &expr[..expr.len() - 1];
        if expr == "*" {
            out.push(Item {
                expr: "oid".into(),
                alias: None,
            });
        }
        out.extend(columns.iter().map(|c| Item {
            expr: format!("{prefix}{c}"),
            alias: None,
        }));
    }
    out
}

/// Whether the query's rows come from a catalog without rows: one named at
/// the top level (the FROM list, an inner join), not in a LEFT JOIN or a
/// subquery, which keep the other rows.
fn joins_an_empty_catalog(lower: &str) -> bool {
    let top: std::collections::HashSet<usize> = top_level_offsets(lower).into_iter().collect();
    // The FROM clause: from the top-level FROM to WHERE, GROUP, ORDER or LIMIT.
    let Some(from) = top_level_keyword(lower, "from") else {
        return false;
    };
    let end = ["where", "group", "order", "limit"]
        .iter()
        .filter_map(|k| top_level_keyword(&lower[from..], k))
        .min()
        .map_or(lower.len(), |p| from + p);
    EMPTY_CATALOGS.iter().any(|name| {
        lower.match_indices(name).any(|(at, _)| {
            let word_end = lower[at + name.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            let before = lower[..at].trim_end_matches("pg_catalog.").trim_end();
            let left_join = before.ends_with("left join") || before.ends_with("left outer join");
            // Only where a relation is named: after FROM, JOIN or a comma
            // of the FROM list (not `ON pg_description.objoid = ...`).
            let named =
                before.ends_with("from") || before.ends_with("join") || before.ends_with(',');
            let in_from = at > from && at < end;
            word_end && in_from && top.contains(&at) && named && !left_join
        })
    })
}

/// Whether a query over `pg_class` selects `pg_attribute`'s columns (a join:
/// SQLAlchemy's `get_columns`), so that its rows are the tables' columns.
fn selects_columns(items: &[Item]) -> bool {
    items
        .iter()
        .any(|i| i.expr.to_ascii_lowercase().trim().ends_with("attname"))
}

/// The columns of each table record, in order.
async fn table_columns(tables: Vec<Record>, cx: &Context<'_>) -> Result<Vec<Record>, SqlError> {
    let mut out = Vec::new();
    for record in tables {
        if let Record::Table {
            database, table, ..
        } = record
        {
            out.extend(columns_of(&database, &table, cx).await?);
        }
    }
    Ok(out)
}

/// The relation after the top-level FROM.
fn main_relation(lower: &str) -> Option<String> {
    let from = top_level_keyword(lower, "from")?;
    let rest = lower[from + 4..].trim_start();
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    Some(name.rsplit('.').next().unwrap_or_default().to_string())
}

/// One row of a catalog relation.
enum Record {
    Database {
        name: String,
        oid: i64,
    },
    Table {
        database: String,
        table: String,
        oid: i64,
    },
    Type {
        oid: i64,
        name: &'static str,
        len: i64,
        category: &'static str,
        array: i64,
    },
    Column {
        table: String,
        name: String,
        data_type: DataType,
        nullable: bool,
        number: i64,
    },
}

impl Record {
    fn value(&self, item: &Item, user: &str) -> Value {
        let alias = item.alias.as_deref().unwrap_or("").to_ascii_lowercase();
        let expr = item.expr.to_ascii_lowercase();
        let has = |k: &str| expr.contains(k) || alias == k;
        match self {
            Record::Database { name, oid } => {
                if alias == "name" || has("datname") || has("nspname") {
                    text(name)
                } else if alias == "owner" || has("get_userbyid") {
                    text(user)
                } else if expr.rsplit('.').next() == Some("encoding") {
                    Value::Int(6) // UTF8's number, as pg_database.encoding holds it
                } else if alias == "encoding" || has("encoding") {
                    text("UTF8")
                } else if has("collate") || has("ctype") {
                    text("C")
                } else if alias == "locale provider" || has("locprovider") {
                    text("libc")
                } else if has("oid") {
                    Value::Int(*oid)
                } else {
                    Value::Null
                }
            }
            Record::Table {
                database,
                table,
                oid,
            } => table_value(&alias, &expr, database, table, *oid, user),
            Record::Type {
                oid,
                name,
                len,
                category,
                array,
            } => type_value(&expr, &alias, (*oid, name, *len, category, *array)),
            Record::Column {
                table,
                name,
                data_type,
                nullable,
                number,
            } => {
                if has("pg_get_expr")
                    || has("adbin")
                    || has("collname")
                    || has("json_build_object")
                    || has("description")
                    || alias == "comment"
                {
                    // Defaults, collations, identity, comments: Tidelake
                    // columns have none.
                    Value::Null
                } else if has("relname") {
                    text(table)
                } else if has("attname") {
                    text(name)
                } else if has("format_type") {
                    text(format_type(data_type))
                } else if has("atttypid") {
                    Value::Int(i64::from(pg_type(data_type).oid()))
                } else if has("attisdropped") || has("atthasdef") {
                    Value::Bool(false)
                } else if has("attnotnull") {
                    Value::Bool(!nullable)
                } else if has("attnum") {
                    Value::Int(*number)
                } else if has("attidentity") || has("attgenerated") || has("attcompression") {
                    text("")
                } else if has("attstorage") {
                    text("x")
                } else if has("attstattarget") {
                    Value::Int(-1)
                } else {
                    Value::Null
                }
            }
        }
    }
}

fn table_value(
    alias: &str,
    expr: &str,
    database: &str,
    table: &str,
    oid: i64,
    user: &str,
) -> Value {
    let has = |k: &str| expr.contains(k);
    match alias {
        "schema" => return text(database),
        "name" => return text(table),
        "type" => return text("table"),
        "owner" => return text(user),
        "persistence" => return text("permanent"),
        "access method" => return text("paimon"),
        "size" | "description" => return Value::Null,
        _ => {}
    }
    if has("case") && has("relkind") {
        text("table")
    } else if has("relname") {
        text(table)
    } else if has("nspname") {
        text(database)
    } else if has("relchecks") || has("reltablespace") {
        Value::Int(0)
    } else if has("relkind") {
        text("r")
    } else if has("relhas")
        || has("relrowsecurity")
        || has("relforcerowsecurity")
        || has("relispartition")
    {
        Value::Bool(false)
    } else if has("reloptions") || has("reloftype") {
        text("")
    } else if has("relpersistence") {
        text("p")
    } else if has("relreplident") {
        text("d")
    } else if has("amname") {
        text("paimon")
    } else if has("get_userbyid") {
        text(user)
    } else if has("oid") {
        Value::Int(oid)
    } else {
        Value::Null
    }
}

/// `format_type` of a column: PostgreSQL's name of its type.
fn format_type(t: &DataType) -> String {
    match t {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({p},{s})"),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone".into(),
        other => {
            let t = pg_type(other);
            match t.name() {
                "int2" => "smallint".into(),
                "int4" => "integer".into(),
                "int8" => "bigint".into(),
                "float4" => "real".into(),
                "float8" => "double precision".into(),
                "bool" => "boolean".into(),
                name => name.to_string(),
            }
        }
    }
}

fn function_value(expr: &str, database: &str, user: &str, version: &str) -> Option<Value> {
    let e = expr.trim();
    Some(if e.contains("version(") {
        text(version)
    } else if e.contains("current_database(") || e.contains("current_schema(") {
        text(database)
    } else if e.contains("current_schemas(") {
        text(format!("{{{database}}}"))
    } else if matches!(e, "current_user" | "session_user" | "user" | "current_role")
        || e.contains("current_user")
    {
        text(user)
    } else {
        return None;
    })
}

/// The rows of a catalog relation that the query's filters keep.
async fn records(
    relation: &str,
    sql: &str,
    lower: &str,
    cx: &Context<'_>,
) -> Result<Vec<Record>, SqlError> {
    let databases = names(cx.session, "SHOW DATABASES").await?;
    match relation {
        "pg_database" | "pg_namespace" | "schemata" => {
            let pattern = pattern(lower, &["datname", "nspname", "schema_name"])?;
            let named =
                name_list(lower, sql, "datname").or_else(|| name_list(lower, sql, "nspname"));
            Ok(databases
                .into_iter()
                .enumerate()
                .filter(|(_, d)| pattern.as_ref().is_none_or(|p| p.is_match(d)))
                .filter(|(_, d)| named.as_ref().is_none_or(|n| n.contains(d)))
                .map(|(i, name)| Record::Database {
                    name,
                    oid: 1 + i as i64,
                })
                .collect())
        }
        "pg_class" | "tables" => {
            if let Some(kinds) = relkinds(lower) {
                if !kinds.contains(&'r') {
                    return Ok(Vec::new());
                }
            }
            let only_oid = oid_filter(lower);
            let namespace = number_after(lower, "relnamespace");
            let table_pattern = pattern(lower, &["relname"])?;
            let table_names = name_list(lower, sql, "relname");
            let schema_pattern = pattern(lower, &["nspname"])?;
            let visible_only = lower.contains("pg_table_is_visible") && schema_pattern.is_none();
            let current = cx.session.current_database();
            let mut out = Vec::new();
            for (i, database) in databases.into_iter().enumerate() {
                if visible_only && database != current {
                    continue;
                }
                // Databases are numbered from 1 as pg_namespace lists them.
                if namespace.is_some_and(|n| n != 1 + i as i64) {
                    continue;
                }
                if schema_pattern
                    .as_ref()
                    .is_some_and(|p| !p.is_match(&database))
                {
                    continue;
                }
                let tables = names(
                    cx.session,
                    &format!("SHOW TABLES IN {}", quote_ident(&database)),
                )
                .await?;
                for table in tables {
                    let oid = cx.oids.oid(&database, &table);
                    let keep = only_oid.is_none_or(|o| o == oid)
                        && table_pattern.as_ref().is_none_or(|p| p.is_match(&table))
                        && table_names.as_ref().is_none_or(|n| n.contains(&table));
                    if keep {
                        out.push(Record::Table {
                            database: database.clone(),
                            table,
                            oid,
                        });
                    }
                }
            }
            Ok(out)
        }
        "pg_type" => Ok(type_records(sql, lower)),
        "pg_attribute" => {
            let Some((database, table)) = oid_filter(lower).and_then(|o| cx.oids.table(o)) else {
                return Ok(Vec::new());
            };
            columns_of(&database, &table, cx).await
        }
        _ => Ok(Vec::new()),
    }
}

/// PostgreSQL's base types that Tidelake's columns map to: (oid, name,
/// length, category, array type).
const BASE_TYPES: &[(i64, &str, i64, &str, i64)] = &[
    (16, "bool", 1, "B", 1000),
    (17, "bytea", -1, "U", 1001),
    (18, "char", 1, "S", 1002),
    (19, "name", 64, "S", 1003),
    (20, "int8", 8, "N", 1016),
    (21, "int2", 2, "N", 1005),
    (23, "int4", 4, "N", 1007),
    (25, "text", -1, "S", 1009),
    (26, "oid", 4, "N", 1028),
    (114, "json", -1, "U", 199),
    (700, "float4", 4, "N", 1021),
    (701, "float8", 8, "N", 1022),
    (1043, "varchar", -1, "S", 1015),
    (1082, "date", 4, "D", 1182),
    (1083, "time", 8, "D", 1183),
    (1114, "timestamp", 8, "D", 1115),
    (1184, "timestamptz", 8, "D", 1185),
    (1700, "numeric", -1, "N", 1231),
];

/// `pg_type` rows: the base types, by OID, name and kind when asked.
fn type_records(sql: &str, lower: &str) -> Vec<Record> {
    static KIND: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let kind = KIND.get_or_init(|| Regex::new(r"typtype\s*=\s*'(.)'").expect("a valid regex"));
    // Only base types exist: no domains, enums, composites, ranges.
    if kind
        .captures(lower)
        .and_then(|c| c.get(1))
        .is_some_and(|k| k.as_str() != "b")
    {
        return Vec::new();
    }
    static REGTYPE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let regtype = REGTYPE.get_or_init(|| {
        Regex::new(r"to_regtype\(\s*'([^']*)'|'([^']*)'\s*::\s*regtype").expect("a valid regex")
    });
    // psycopg's TypeInfo.fetch: `WHERE t.oid = to_regtype('hstore')`.
    let by_regtype = regtype.captures(lower).and_then(|c| {
        let name = c.get(1).or(c.get(2))?.as_str();
        Some(vec![name
            .rsplit('.')
            .next()
            .unwrap_or(name)
            .trim_matches('"')
            .to_string()])
    });
    let only_oid = if by_regtype.is_some() {
        None
    } else {
        oid_filter(lower)
    };
    let named = by_regtype.or_else(|| name_list(lower, sql, "typname"));
    BASE_TYPES
        .iter()
        .filter(|(oid, name, ..)| {
            only_oid.is_none_or(|o| o == *oid)
                && named.as_ref().is_none_or(|n| n.iter().any(|x| x == name))
        })
        .map(|&(oid, name, len, category, array)| Record::Type {
            oid,
            name,
            len,
            category,
            array,
        })
        .collect()
}

/// A `pg_type` row's value for a SELECT item.
fn type_value(expr: &str, alias: &str, t: (i64, &str, i64, &str, i64)) -> Value {
    let (oid, name, len, category, array) = t;
    let has = |k: &str| expr.contains(k) || alias == k;
    if has("::regtype") || alias == "regtype" {
        text(name)
    } else if has("current_schemas") {
        // `nspname = ANY(current_schemas(true))`: pg_catalog always is.
        Value::Bool(true)
    } else if has("typname") {
        text(name)
    } else if has("typtype") {
        text("b")
    } else if has("typcategory") {
        text(category)
    } else if has("typlen") {
        Value::Int(len)
    } else if has("typnamespace") {
        Value::Int(PG_CATALOG_OID)
    } else if has("typarray") {
        Value::Int(array)
    } else if has("typbyval") {
        Value::Bool(len > 0 && len <= 8)
    } else if has("typnotnull") {
        Value::Bool(false)
    } else if has("typisdefined") {
        Value::Bool(true)
    } else if has("typdelim") {
        text(",")
    } else if has("typinput") && has("array_in") {
        Value::Bool(false)
    } else if has("typinput") {
        text(format!("{name}in"))
    } else if has("typoutput") {
        text(format!("{name}out"))
    } else if has("typrelid")
        || has("typelem")
        || has("typbasetype")
        || has("typcollation")
        || has("typndims")
    {
        Value::Int(0)
    } else if has("typtypmod") {
        Value::Int(-1)
    } else if has("nspname") {
        text("pg_catalog")
    } else if has("oid") {
        Value::Int(oid)
    } else {
        Value::Null
    }
}

/// `pg_catalog`'s OID in PostgreSQL.
const PG_CATALOG_OID: i64 = 11;

/// The columns of one table, as `pg_attribute` rows.
async fn columns_of(
    database: &str,
    table: &str,
    cx: &Context<'_>,
) -> Result<Vec<Record>, SqlError> {
    let sql = format!(
        "SELECT * FROM {}.{} LIMIT 0",
        quote_ident(database),
        quote_ident(table)
    );
    let schema = match cx.session.execute_stream(&sql).await? {
        tidelake_sql::StreamingResult::Rows(q) => q.schema,
        tidelake_sql::StreamingResult::Status(_) => return Ok(Vec::new()),
    };
    Ok(schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Record::Column {
            table: table.to_string(),
            name: f.name().clone(),
            data_type: f.data_type().clone(),
            nullable: f.is_nullable(),
            number: i as i64 + 1,
        })
        .collect())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The first column of a statement's rows, as text.
async fn names(session: &Arc<dyn QueryHandler>, sql: &str) -> Result<Vec<String>, SqlError> {
    let mut out = Vec::new();
    if let StatementResult::Rows { batches, .. } =
        session.execute_stream(sql).await?.collect().await?
    {
        for batch in batches {
            if let Some(column) = batch.columns().first() {
                for row in 0..batch.num_rows() {
                    out.push(crate::values::pg_text(column, row));
                }
            }
        }
    }
    Ok(out)
}

/// `column = N` (or `'N'`): N.
fn number_after(lower: &str, column: &str) -> Option<i64> {
    let re = Regex::new(&format!(r"\b{column}\s*=\s*'?(\d+)'?")).ok()?;
    re.captures(lower)?.get(1)?.as_str().parse().ok()
}

/// `x.oid = '16385'` or `attrelid = '16385'`.
fn oid_filter(lower: &str) -> Option<i64> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE
        .get_or_init(|| Regex::new(r"(?:\boid|attrelid)\s*=\s*'?(\d+)'?").expect("a valid regex"));
    re.captures(lower)?.get(1)?.as_str().parse().ok()
}

/// `relkind IN ('r','p','')`, `relkind = ANY (ARRAY['r'::VARCHAR, ...])`,
/// `relkind = 'r'`: the kinds asked for (`NOT IN`: all others).
fn relkinds(lower: &str) -> Option<Vec<char>> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r"relkind\s*(not\s+in|in|=\s*any)\s*\(\s*(?:array\s*\[([^\]]*)\]|([^)]*))\)|relkind\s*=\s*('[a-z]')",
        )
        .expect("a valid regex")
    });
    let captures = re.captures(lower)?;
    let list = captures
        .get(2)
        .or(captures.get(3))
        .or(captures.get(4))?
        .as_str();
    let kinds: Vec<char> = list
        .split(',')
        .filter_map(|k| {
            let k = k.trim();
            let k = k.split("::").next().unwrap_or(k).trim();
            k.strip_prefix('\'')?.chars().next().filter(|c| *c != '\'')
        })
        .collect();
    let negated = captures
        .get(1)
        .is_some_and(|m| m.as_str().starts_with("not"));
    if negated {
        return Some(
            ['r', 'p', 'v', 'm', 'f', 'i', 'S', 'c', 't']
                .into_iter()
                .filter(|k| !kinds.contains(k))
                .collect(),
        );
    }
    Some(kinds)
}

/// `column = 'x'` or `column IN ('x', 'y')` (with casts): the names asked for.
fn name_list(lower: &str, sql: &str, column: &str) -> Option<Vec<String>> {
    let re = Regex::new(&format!(
        r"\b{column}\s*(?:=\s*('(?:[^']|'')*')|in\s*\(([^)]*)\))"
    ))
    .ok()?;
    let captures = re.captures(lower)?;
    let m = captures.get(1).or(captures.get(2))?;
    // The names keep their case: read them from the original text.
    let list = sql.get(m.start()..m.end())?;
    let mut names = Vec::new();
    for part in list.split(',') {
        let part = part.trim();
        let part = part.split("::").next().unwrap_or(part).trim();
        if let Some(inner) = part.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')) {
            names.push(inner.replace("''", "'"));
        }
    }
    Some(names)
}

/// A name pattern psql states as `column OPERATOR(pg_catalog.~) '^(t)$'`.
fn pattern(lower: &str, columns: &[&str]) -> Result<Option<Regex>, SqlError> {
    for column in columns {
        let re = Regex::new(&format!(
            r"{column}\s+(?:operator\(pg_catalog\.~\)|~)\s+(?:e)?'((?:[^']|'')*)'"
        ))
        .map_err(|e| SqlError::Internal(e.to_string()))?;
        if let Some(m) = re.captures(lower).and_then(|c| c.get(1)) {
            let source = m.as_str().replace("''", "'");
            return Regex::new(&source)
                .map(Some)
                .map_err(|e| SqlError::InvalidParameter(format!("invalid name pattern: {e}")));
        }
    }
    Ok(None)
}

/// One item of a SELECT list.
struct Item {
    expr: String,
    alias: Option<String>,
}

impl Item {
    /// The column name PostgreSQL would give it.
    fn name(&self) -> String {
        if let Some(alias) = &self.alias {
            return alias.clone();
        }
        let e = self.expr.trim();
        let head = e.split('(').next().unwrap_or(e);
        let last = head.rsplit('.').next().unwrap_or(head).trim();
        if !last.is_empty() && last.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            last.to_ascii_lowercase()
        } else {
            "?column?".into()
        }
    }
}

/// Byte offsets at parenthesis depth 0 outside quotes.
fn top_level_offsets(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let (mut depth, mut i, mut out) = (0i32, 0, Vec::new());
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ if depth == 0 => out.push(i),
            _ => {}
        }
        i += 1;
    }
    out
}

/// Byte offset of a keyword at parenthesis depth 0, outside quotes.
fn top_level_keyword(lower: &str, keyword: &str) -> Option<usize> {
    let b = lower.as_bytes();
    let is_word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    top_level_offsets(lower).into_iter().find(|&i| {
        lower[i..].starts_with(keyword)
            && (i == 0 || !is_word(&b[i - 1]))
            && b.get(i + keyword.len()).is_none_or(|c| !is_word(c))
    })
}

/// The items of the outermost SELECT list.
fn select_items(sql: &str) -> Vec<Item> {
    let lower = sql.to_ascii_lowercase();
    let Some(start) = top_level_keyword(&lower, "select") else {
        return Vec::new();
    };
    let body_start = start + "select".len();
    let end = top_level_keyword(&lower[body_start..], "from")
        .map(|p| body_start + p)
        .or_else(|| {
            ["where", "order", "limit", ";"]
                .iter()
                .filter_map(|k| top_level_keyword(&lower[body_start..], k))
                .min()
                .map(|p| body_start + p)
        })
        .unwrap_or(sql.len());
    let list = &sql[body_start..end];
    split_top_level(list)
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let lower = s.to_ascii_lowercase();
            match top_level_keyword(&lower, "as") {
                Some(p) => Item {
                    expr: s[..p].trim().to_string(),
                    alias: Some(s[p + 2..].trim().trim_matches('"').to_string()),
                },
                None => Item {
                    expr: s.trim().to_string(),
                    alias: None,
                },
            }
        })
        .collect()
}

fn split_top_level(list: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in top_level_offsets(list) {
        if list.as_bytes()[i] == b',' {
            out.push(&list[start..i]);
            start = i + 1;
        }
    }
    out.push(&list[start..]);
    out
}

/// The answer as a batch: each column typed by its first non-null value.
fn batch(items: &[Item], rows: Vec<Vec<Value>>) -> Result<RecordBatch, SqlError> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let values: Vec<&Value> = rows.iter().map(|r| &r[i]).collect();
        let kind = values.iter().find(|v| !matches!(v, Value::Null));
        let column: ArrayRef = match kind {
            Some(Value::Bool(_)) => {
                Arc::new(BooleanArray::from_iter(values.iter().map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })))
            }
            Some(Value::Int(_)) => {
                Arc::new(Int64Array::from_iter(values.iter().map(|v| match v {
                    Value::Int(n) => Some(*n),
                    _ => None,
                })))
            }
            _ => Arc::new(StringArray::from_iter(values.iter().map(|v| match v {
                Value::Text(s) => Some(s.clone()),
                Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_string()),
                Value::Int(n) => Some(n.to_string()),
                Value::Null => None,
            }))),
        };
        fields.push(Field::new(item.name(), column.data_type().clone(), true));
        columns.push(column);
    }
    if columns.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| SqlError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_lists_split_at_the_top_level() {
        let items = select_items(
            "SELECT n.nspname as \"Schema\", c.relname, pg_catalog.format_type(a.atttypid, a.atttypmod), \
             CASE c.relkind WHEN 'r' THEN 'table' END as \"Type\" FROM pg_catalog.pg_class c",
        );
        let names: Vec<String> = items.iter().map(Item::name).collect();
        assert_eq!(names, ["Schema", "relname", "format_type", "Type"]);
    }

    #[test]
    fn catalog_queries_are_recognised() {
        assert!(is_catalog_query("SELECT pg_catalog.version()"));
        assert!(relation_names("select pg_catalog.version()").is_empty());
        assert!(is_catalog_query("select current_schema()"));
        assert!(is_catalog_query(
            "SELECT d.datname FROM pg_catalog.pg_database d"
        ));
        assert!(!is_catalog_query("SELECT * FROM orders"));
        assert!(!is_catalog_query("SELECT 1"));
    }

    #[test]
    fn psql_patterns_and_filters() {
        let q = "where c.relname operator(pg_catalog.~) '^(t)$' collate pg_catalog.default and c.oid = '16385'";
        assert!(pattern(q, &["relname"]).unwrap().unwrap().is_match("t"));
        assert_eq!(oid_filter(q), Some(16385));
        assert_eq!(relkinds("c.relkind in ('r','p','')"), Some(vec!['r', 'p']));
    }
}
