//! Partitions in SQL, with Paimon's semantics: `SHOW PARTITIONS t [PARTITION
//! (k = v)]`, `ALTER TABLE t DROP [IF EXISTS] PARTITION (k = v) [, PARTITION
//! (...)]` (one OVERWRITE commit deleting the partitions' files),
//! `ALTER TABLE t ADD [IF NOT EXISTS] PARTITION (...)` (checked, then a no-op:
//! in Paimon's filesystem catalog a partition exists through its files),
//! `TRUNCATE TABLE t`, `INSERT {INTO | OVERWRITE} t PARTITION (k = v) SELECT`
//! (static partition values, not in the SELECT list; an OVERWRITE replaces
//! exactly the partitions the spec names) and the partition procedures.
//!
//! A spec may name some partition columns only: it then stands for every
//! partition with those values (Paimon and Spark do the same).

use std::collections::BTreeMap;

use datafusion::common::ScalarValue;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::logical_expr::{lit, Expr, LogicalPlan};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{Insert, Statement as SqlStatement, TableObject};
use datafusion::sql::sqlparser::tokenizer::Token;
use tidelake_engine::introspect::{value_text, ValueText};
use tidelake_engine::{Catalog, Identifier, OverwriteScope, PartitionInfo, RowKind, Table};

use crate::ddl::{Parser, TableName};
use crate::error::{Result, SqlError};
use crate::lexer::RawStatement;
use crate::provider::{write_rows, TidelakeTable};

/// `k = v` pairs of a `PARTITION (...)` clause, values as written.
pub(crate) type Spec = Vec<(String, String)>;

/// A partition statement of ours.
#[derive(Debug, PartialEq)]
pub(crate) enum PartitionStatement {
    Show {
        table: TableName,
        spec: Option<Spec>,
    },
    Drop {
        table: TableName,
        if_exists: bool,
        specs: Vec<Spec>,
    },
    Add {
        table: TableName,
        if_not_exists: bool,
        specs: Vec<Spec>,
    },
}

fn word(token: Option<&Token>) -> Option<String> {
    match token {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// Whether the statement is `SHOW PARTITIONS ...` or `ALTER TABLE name
/// {ADD | DROP} [IF [NOT] EXISTS] PARTITION ...` (checked before the DDL
/// parser, which owns the other `ALTER TABLE` forms).
pub(crate) fn is_partition_statement(statement: &RawStatement) -> bool {
    let tokens: Vec<&Token> = statement.tokens.iter().map(|t| &t.token).collect();
    let at = |i: usize| word(tokens.get(i).copied());
    match (at(0).as_deref(), at(1).as_deref()) {
        (Some("SHOW"), Some("PARTITIONS")) => true,
        (Some("ALTER"), Some("TABLE")) => {
            // The name: `t` or `db.t`.
            let mut i = 3;
            if tokens.get(i) == Some(&&Token::Period) {
                i += 2;
            }
            if !matches!(at(i).as_deref(), Some("ADD" | "DROP")) {
                return false;
            }
            i += 1;
            while matches!(at(i).as_deref(), Some("IF" | "NOT" | "EXISTS")) {
                i += 1;
            }
            at(i).as_deref() == Some("PARTITION")
        }
        _ => false,
    }
}

/// `PARTITION (k = v, ...)`, after the keyword.
fn spec(p: &mut Parser) -> Result<Spec> {
    if !p.consume(&Token::LParen) {
        return Err(p.error("'(' after PARTITION"));
    }
    let mut spec = Vec::new();
    loop {
        let key = p.identifier("a partition column")?;
        if !p.consume(&Token::Eq) {
            return Err(p.error(&format!(
                "'=' and a value after '{key}' (every column of a PARTITION spec needs a value; in an INSERT, leave the columns that come from the query out of it)"
            )));
        }
        let negative = p.consume(&Token::Minus);
        let value = match p.peek() {
            Some(Token::SingleQuotedString(s)) if !negative => s.clone(),
            Some(Token::Number(n, _)) if negative => format!("-{n}"),
            Some(Token::Number(n, _)) => n.clone(),
            Some(Token::Word(w)) if w.quote_style.is_none() && !negative => w.value.clone(),
            _ => return Err(p.error(&format!("a value for partition column '{key}'"))),
        };
        p.pos += 1;
        spec.push((key, value));
        if p.consume(&Token::RParen) {
            return Ok(spec);
        }
        if !p.consume(&Token::Comma) {
            return Err(p.error("',' or ')' in the PARTITION spec"));
        }
    }
}

/// Parses a statement for which [`is_partition_statement`] holds.
pub(crate) fn parse_partition_statement(statement: &RawStatement) -> Result<PartitionStatement> {
    let mut p = Parser::new(statement);
    let parsed = if p.parse_keyword("SHOW") {
        p.expect_keyword("PARTITIONS")?;
        let table = p.table_name()?;
        let spec = if p.parse_keyword("PARTITION") {
            Some(spec(&mut p)?)
        } else {
            None
        };
        PartitionStatement::Show { table, spec }
    } else {
        p.expect_keyword("ALTER")?;
        p.expect_keyword("TABLE")?;
        let table = p.table_name()?;
        if p.parse_keyword("ADD") {
            let if_not_exists = p.if_not_exists()?;
            let mut specs = Vec::new();
            // Spark separates the specs of ADD with spaces, those of DROP with commas.
            while p.parse_keyword("PARTITION") {
                specs.push(spec(&mut p)?);
                p.consume(&Token::Comma);
            }
            PartitionStatement::Add {
                table,
                if_not_exists,
                specs,
            }
        } else {
            p.expect_keyword("DROP")?;
            let if_exists = p.if_exists()?;
            let mut specs = Vec::new();
            while p.parse_keyword("PARTITION") {
                specs.push(spec(&mut p)?);
                if !p.consume(&Token::Comma) {
                    break;
                }
            }
            PartitionStatement::Drop {
                table,
                if_exists,
                specs,
            }
        }
    };
    p.expect_end()?;
    Ok(parsed)
}

/// Runs a partition statement against the table it names.
pub(crate) async fn run_partition_statement(
    catalog: &Catalog,
    current_database: &str,
    statement: PartitionStatement,
) -> Result<crate::session::StatementResult> {
    let id = |name: &TableName| {
        Identifier::new(
            name.database
                .clone()
                .unwrap_or_else(|| current_database.to_string()),
            name.table.clone(),
        )
    };
    let status = |c| {
        Ok(crate::session::StatementResult::Status(
            crate::session::CommandStatus::new(c),
        ))
    };
    match statement {
        PartitionStatement::Show { table, spec } => {
            let table = catalog.load_table(&id(&table)).await?;
            let partitions =
                matching(&table, spec.as_deref().unwrap_or(&[]), "SHOW PARTITIONS").await?;
            let names: Vec<String> = partitions.into_iter().map(|p| p.name).collect();
            let batch = crate::describe::names_batch("partition", &names)?;
            Ok(crate::session::StatementResult::Rows {
                schema: batch.schema(),
                batches: vec![batch],
            })
        }
        PartitionStatement::Drop {
            table,
            if_exists,
            specs,
        } => {
            let table = catalog.load_table(&id(&table)).await?;
            drop_specs(&table, &specs, if_exists).await?;
            status("ALTER TABLE")
        }
        PartitionStatement::Add { table, specs, .. } => {
            let table = catalog.load_table(&id(&table)).await?;
            for spec in &specs {
                // Checked like any spec; nothing is written (see the module doc).
                typed_spec(&table, spec, "ALTER TABLE ... ADD PARTITION")?;
            }
            status("ALTER TABLE")
        }
    }
}

/// Drops the partitions every spec names in one commit; refuses (nothing
/// committed) when a spec names no live partition, unless `if_exists`.
/// Returns the partitions dropped.
pub(crate) async fn drop_specs(
    table: &Table,
    specs: &[Spec],
    if_exists: bool,
) -> Result<Vec<PartitionInfo>> {
    if specs.is_empty() {
        return Err(SqlError::syntax(
            "DROP PARTITION needs a PARTITION (...) spec",
            None,
        ));
    }
    let live = matching(table, &[], "DROP PARTITION").await?;
    let mut dropped: BTreeMap<Vec<u8>, PartitionInfo> = BTreeMap::new();
    for spec in specs {
        let typed = typed_spec(table, spec, "DROP PARTITION")?;
        let found: Vec<&Partition> = live.iter().filter(|p| matches_spec(p, &typed)).collect();
        if found.is_empty() && !if_exists {
            return Err(SqlError::InvalidParameter(format!(
                "table '{}' has no partition {}: nothing was dropped (use DROP IF EXISTS PARTITION to ignore missing partitions)",
                table.identifier(),
                spec_text(spec)
            )));
        }
        for p in found {
            dropped.insert(p.partition.clone(), p.info.clone());
        }
    }
    table
        .drop_partitions(dropped.keys().cloned().collect(), BTreeMap::new())
        .await?;
    Ok(dropped.into_values().collect())
}

/// A spec with each value as the column's text form (`value_text`), so that
/// `'2026-11-01'` and a DATE value compare equal; checked against the table.
struct TypedSpec {
    /// (index among the partition columns, value text).
    values: Vec<(usize, Option<String>)>,
}

fn typed_spec(table: &Table, spec: &[(String, String)], what: &str) -> Result<TypedSpec> {
    let keys = table.partition_keys();
    if keys.is_empty() {
        return Err(SqlError::Unsupported(format!(
            "{what} is not allowed on table '{}': it is not partitioned",
            table.identifier()
        )));
    }
    let schema = table.schema();
    let mut values = Vec::new();
    for (key, value) in spec {
        let Some(index) = keys.iter().position(|k| k == key) else {
            return Err(SqlError::UndefinedColumn(format!(
                "'{key}' is not a partition column of table '{}' (its partition columns: {})",
                table.identifier(),
                keys.join(", ")
            )));
        };
        if values.iter().any(|(i, _)| *i == index) {
            return Err(SqlError::DuplicateColumn(format!(
                "partition column '{key}' is given twice"
            )));
        }
        let field = schema
            .field(key)
            .ok_or_else(|| SqlError::UndefinedColumn(key.clone()))?;
        let text = if value == &table.options().partition_default_name {
            None
        } else {
            let datum = crate::procedures::datum_from_text(value, &field.data_type)?;
            value_text(&datum, &field.data_type, ValueText::Sql)
        };
        values.push((index, text));
    }
    Ok(TypedSpec { values })
}

fn matches_spec(partition: &Partition, spec: &TypedSpec) -> bool {
    matches_spec_texts(&partition.texts, spec)
}

/// A live partition, its values as text and its `k=v/...` name.
struct Partition {
    info: PartitionInfo,
    texts: Vec<Option<String>>,
    name: String,
}

impl std::ops::Deref for Partition {
    type Target = PartitionInfo;
    fn deref(&self) -> &PartitionInfo {
        &self.info
    }
}

/// The live partitions matching `spec` (all for an empty one), by name.
async fn matching(table: &Table, spec: &[(String, String)], what: &str) -> Result<Vec<Partition>> {
    let typed = typed_spec(table, spec, what)?;
    let mut out: Vec<Partition> = table
        .list_partitions()
        .await?
        .into_iter()
        .map(|info| described(table, info))
        .filter(|p| matches_spec_texts(&p.texts, &typed))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn matches_spec_texts(texts: &[Option<String>], spec: &TypedSpec) -> bool {
    spec.values
        .iter()
        .all(|(i, text)| texts.get(*i) == Some(text))
}

/// A partition with its values as text and its name: `dt=2026-11-01/hr=3`,
/// NULL values as `partition.default-name` (Spark's and Paimon's form).
fn described(table: &Table, info: PartitionInfo) -> Partition {
    let types: Vec<_> = table
        .partition_keys()
        .iter()
        .filter_map(|k| table.schema().field(k).map(|f| f.data_type.clone()))
        .collect();
    let texts: Vec<Option<String>> = info
        .values
        .iter()
        .zip(&types)
        .map(|(v, t)| value_text(v, t, ValueText::Sql))
        .collect();
    let default = &table.options().partition_default_name;
    let name = table
        .partition_keys()
        .iter()
        .zip(&texts)
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or(default)))
        .collect::<Vec<_>>()
        .join("/");
    Partition { info, texts, name }
}

fn spec_text(spec: &[(String, String)]) -> String {
    let parts: Vec<String> = spec.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
    format!("({})", parts.join(", "))
}

/// Paimon's `partitions` procedure argument, `k1=v1,k2=v2;k1=v3`, as specs.
pub(crate) fn specs_from_argument(text: &str) -> Result<Vec<Spec>> {
    let mut specs = Vec::new();
    for partition in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let mut spec = Vec::new();
        for pair in partition.split(',') {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                SqlError::InvalidParameter(format!("partitions: '{pair}' is not key=value"))
            })?;
            spec.push((k.trim().to_string(), v.trim().to_string()));
        }
        specs.push(spec);
    }
    if specs.is_empty() {
        return Err(SqlError::InvalidParameter(
            "partitions: no partition was given".into(),
        ));
    }
    Ok(specs)
}

/// The names (`dt=...`) of dropped or expired partitions.
pub(crate) fn partition_names(table: &Table, partitions: &[PartitionInfo]) -> Vec<String> {
    partitions
        .iter()
        .map(|info| described(table, info.clone()).name)
        .collect()
}

/// `INSERT {INTO | OVERWRITE} [TABLE] name PARTITION (k = v, ...) ...`: the
/// text without its PARTITION clause (which PostgreSQL's grammar would take
/// for a table alias) and the clause's spec; `None` for other statements.
pub(crate) fn strip_insert_partition(text: &str) -> Result<Option<(String, Spec)>> {
    let Some(statement) = crate::lexer::split_statements(text)?.into_iter().next() else {
        return Ok(None);
    };
    let mut p = Parser::new(&statement);
    if !p.parse_keyword("INSERT") || !(p.parse_keyword("INTO") || p.parse_keyword("OVERWRITE")) {
        return Ok(None);
    }
    p.parse_keyword("TABLE");
    if p.table_name().is_err() || !p.parse_keyword("PARTITION") {
        return Ok(None);
    }
    let first = p.pos - 1;
    let spec = spec(&mut p)?;
    let tokens = &statement.tokens;
    let lines = crate::lexer::LineIndex::new(&statement.text);
    let (Some(from), Some(to)) = (
        lines.offset(tokens[first].span.start),
        lines.offset(tokens[p.pos - 1].span.end),
    ) else {
        return Err(SqlError::Internal(
            "a PARTITION clause has no place in the text".into(),
        ));
    };
    let text = &statement.text;
    Ok(Some((format!("{} {}", &text[..from], &text[to..]), spec)))
}

/// Runs an INSERT whose `PARTITION (...)` clause [`strip_insert_partition`]
/// took out as `spec`; returns the rows written.
pub(crate) async fn run_partitioned_insert(
    ctx: &SessionContext,
    state: &SessionState,
    statement: &DfStatement,
    spec: Spec,
) -> Result<u64> {
    let insert = match statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            SqlStatement::Insert(insert) => insert,
            _ => {
                return Err(SqlError::Internal(
                    "a PARTITION clause outside an INSERT".into(),
                ))
            }
        },
        _ => {
            return Err(SqlError::Internal(
                "a PARTITION clause outside an INSERT".into(),
            ))
        }
    };
    let TableObject::TableName(name) = &insert.table else {
        return Err(SqlError::Unsupported(
            "INSERT into a table function is not supported".into(),
        ));
    };
    let table_ref = object_name_to_table_reference(name.clone(), true)?;
    let provider = ctx.table_provider(table_ref).await?;
    let Some(ours) = provider.downcast_ref::<TidelakeTable>() else {
        return Err(SqlError::Unsupported(format!(
            "'{name}' is a system table: it can only be queried"
        )));
    };
    if let Some(snapshot) = ours.snapshot() {
        return Err(SqlError::Unsupported(format!(
            "table '{}' as of snapshot {snapshot} is read-only",
            ours.table().identifier()
        )));
    }
    let table = ours.table().clone();
    let typed = typed_spec(&table, &spec, "INSERT ... PARTITION")?;
    let plan = plan_with_static_values(state, insert, &table, &spec).await?;
    let mut writer = table.writer();
    if insert.overwrite {
        let replaced = matching(&table, &spec, "INSERT OVERWRITE ... PARTITION").await?;
        debug_assert!(replaced.iter().all(|p| matches_spec(p, &typed)));
        writer.set_overwrite_scope(OverwriteScope::Partitions(
            replaced.iter().map(|p| p.partition.clone()).collect(),
        ));
    }
    let physical = state.create_physical_plan(&plan).await?;
    let properties = crate::retry::commit_properties(state.config());
    write_rows(
        &table,
        writer,
        physical,
        state.task_ctx(),
        RowKind::Insert,
        properties,
    )
    .await
}

/// The query of the INSERT, planned on its own, with the static values
/// added: the target's columns in order, static ones from the spec, the
/// others from the query's columns by position (or the listed ones).
async fn plan_with_static_values(
    state: &SessionState,
    insert: &Insert,
    table: &Table,
    spec: &Spec,
) -> Result<LogicalPlan> {
    let Some(source) = &insert.source else {
        return Err(SqlError::syntax(
            "INSERT ... PARTITION needs a query or VALUES",
            None,
        ));
    };
    let target = table.arrow_schema();
    let is_static = |name: &str| spec.iter().any(|(k, _)| k == name);
    let filled: Vec<usize> = if insert.columns.is_empty() {
        (0..target.fields().len())
            .filter(|i| !is_static(target.field(*i).name()))
            .collect()
    } else {
        let mut positions = Vec::new();
        for column in &insert.columns {
            let name = column.to_string().trim_matches('"').to_lowercase();
            let index = target.index_of(&name).map_err(|_| {
                SqlError::UndefinedColumn(format!("column '{name}' does not exist"))
            })?;
            if is_static(&name) {
                return Err(SqlError::Plan(format!(
                    "column '{name}' has a static value in the PARTITION clause; leave it out of the column list"
                )));
            }
            positions.push(index);
        }
        positions
    };
    let query = DfStatement::Statement(Box::new(SqlStatement::Query(source.clone())));
    let source_plan = state.statement_to_plan(query).await?;
    let source_schema = source_plan.schema().clone();
    if source_schema.fields().len() != filled.len() {
        return Err(SqlError::syntax(
            format!(
                "the query gives {} columns, but the INSERT fills {} (the PARTITION clause gives the values of {})",
                source_schema.fields().len(),
                filled.len(),
                spec.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
            ),
            None,
        ));
    }
    let fixed: Vec<(usize, Expr)> = spec
        .iter()
        .filter_map(|(k, v)| {
            let index = target.index_of(k).ok()?;
            Some((index, lit(ScalarValue::Utf8(Some(v.clone())))))
        })
        .collect();
    crate::insert::onto_target(&target, &filled, &fixed, source_plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::split_statements;

    fn parse(sql: &str) -> Result<PartitionStatement> {
        let statement = split_statements(sql).unwrap().remove(0);
        assert!(is_partition_statement(&statement), "{sql}");
        parse_partition_statement(&statement)
    }

    #[test]
    fn partition_statements_parse() {
        assert_eq!(
            parse("SHOW PARTITIONS db.t PARTITION (dt = '2026-11-01')").unwrap(),
            PartitionStatement::Show {
                table: TableName {
                    database: Some("db".into()),
                    table: "t".into()
                },
                spec: Some(vec![("dt".into(), "2026-11-01".into())]),
            }
        );
        let PartitionStatement::Drop {
            specs, if_exists, ..
        } = parse("ALTER TABLE t DROP IF EXISTS PARTITION (dt='a', hr=3), PARTITION (dt='b')")
            .unwrap()
        else {
            panic!("not a drop");
        };
        assert!(if_exists);
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0][1], ("hr".into(), "3".into()));
        assert!(parse("ALTER TABLE t ADD PARTITION (dt='a') PARTITION (dt='b')").is_ok());
        assert!(parse("ALTER TABLE t DROP PARTITION (dt)").is_err());
        let statement = split_statements("ALTER TABLE t DROP COLUMN c")
            .unwrap()
            .remove(0);
        assert!(!is_partition_statement(&statement));
    }

    #[test]
    fn procedure_partitions_split_into_specs() {
        let specs = specs_from_argument("dt=a,hr=1; dt=b").unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[1], vec![("dt".to_string(), "b".to_string())]);
        assert!(specs_from_argument(" ; ").is_err());
        assert!(specs_from_argument("dt").is_err());
    }
}
