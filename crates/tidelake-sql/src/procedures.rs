//! `CALL sys.<procedure>(...)`: Paimon's table maintenance procedures, with
//! Paimon's names and named arguments (`table => 'db.t'`), mapped onto the
//! engine's maintenance API. Positional arguments follow Paimon's order.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use tidelake_engine::{
    Catalog, CompactOptions, CompareOp, Datum, ExpireOptions, Identifier, OrphanOptions, Predicate,
    Table,
};

use crate::error::{Result, SqlError};
use crate::session::StatementResult;

/// Whether a statement is a `CALL` (our parser, not DataFusion's).
pub(crate) fn is_call(text: &str) -> bool {
    let head = text.trim_start();
    head.len() >= 4
        && head[..4].eq_ignore_ascii_case("call")
        && head[4..].starts_with(|c: char| c.is_whitespace())
}

/// A parsed `CALL`: the procedure name and its arguments by name.
#[derive(Debug, PartialEq)]
struct Call {
    procedure: String,
    args: BTreeMap<String, String>,
}

/// Each procedure's parameters, in Paimon's positional order.
fn parameters(procedure: &str) -> Option<&'static [&'static str]> {
    Some(match procedure {
        "compact" => &["table", "partitions", "compact_strategy"],
        "compact_manifest" => &["table"],
        "expire_snapshots" => &[
            "table",
            "retain_max",
            "retain_min",
            "older_than",
            "max_deletes",
        ],
        "create_tag" => &["table", "tag", "snapshot_id"],
        "delete_tag" => &["table", "tag"],
        "rollback_to" => &["table", "snapshot_id", "tag"],
        "remove_orphan_files" => &["table", "older_than", "dry_run"],
        "create_branch" => &["table", "branch", "tag"],
        "delete_branch" => &["table", "branch"],
        "fast_forward" => &["table", "branch"],
        "drop_partition" => &["table", "partitions"],
        "expire_partitions" => &[
            "table",
            "expiration_time",
            "timestamp_formatter",
            "timestamp_pattern",
            "expire_strategy",
            "max_expires",
        ],
        _ => return None,
    })
}

const PROCEDURES: &str = "compact, compact_manifest, expire_snapshots, create_tag, delete_tag, rollback_to, remove_orphan_files, create_branch, delete_branch, fast_forward, drop_partition, expire_partitions";

fn syntax(message: impl Into<String>) -> SqlError {
    SqlError::syntax(message.into(), None)
}

/// Parses `CALL [sys.]name(arg => value, ...)` or positional values.
fn parse_call(text: &str) -> Result<Call> {
    // The generic dialect also reads Flink's `table` => ... spelling.
    let dialect = GenericDialect {};
    let tokens: Vec<Token> = Tokenizer::new(&dialect, text)
        .tokenize()
        .map_err(|e| syntax(format!("in CALL: {e}")))?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let mut pos = 0;
    let word = |t: Option<&Token>| match t {
        Some(Token::Word(w)) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    };
    if word(tokens.first()).as_deref() != Some("call") {
        return Err(syntax("expected CALL"));
    }
    pos += 1;
    let mut procedure =
        word(tokens.get(pos)).ok_or_else(|| syntax("CALL needs a procedure name"))?;
    pos += 1;
    if tokens.get(pos) == Some(&Token::Period) {
        if procedure != "sys" {
            return Err(syntax(format!(
                "unknown procedure namespace '{procedure}' (use sys.<procedure>)"
            )));
        }
        procedure =
            word(tokens.get(pos + 1)).ok_or_else(|| syntax("CALL sys. needs a procedure name"))?;
        pos += 2;
    }
    let params = parameters(&procedure).ok_or_else(|| {
        SqlError::Unsupported(format!(
            "unknown procedure sys.{procedure} (known: {PROCEDURES})"
        ))
    })?;
    if tokens.get(pos) != Some(&Token::LParen) {
        return Err(syntax(format!("expected '(' after sys.{procedure}")));
    }
    pos += 1;
    let mut args = BTreeMap::new();
    let mut positional = 0usize;
    while tokens.get(pos) != Some(&Token::RParen) {
        let named = matches!(tokens.get(pos + 1), Some(Token::RArrow));
        let name = if named {
            let name =
                word(tokens.get(pos)).ok_or_else(|| syntax("an argument name must be a word"))?;
            pos += 2;
            name
        } else {
            let name = params.get(positional).ok_or_else(|| {
                syntax(format!(
                    "sys.{procedure} takes at most {} arguments",
                    params.len()
                ))
            })?;
            positional += 1;
            name.to_string()
        };
        if !params.contains(&name.as_str()) {
            return Err(SqlError::InvalidParameter(format!(
                "sys.{procedure} has no argument '{name}' (it takes {})",
                params.join(", ")
            )));
        }
        let value = match tokens.get(pos) {
            Some(Token::SingleQuotedString(s)) => s.clone(),
            Some(Token::Number(n, _)) => n.clone(),
            Some(Token::Word(w)) => w.value.clone(),
            other => {
                return Err(syntax(format!(
                    "argument '{name}' needs a value, found {other:?}"
                )))
            }
        };
        pos += 1;
        if args.insert(name.clone(), value).is_some() {
            return Err(SqlError::InvalidParameter(format!(
                "argument '{name}' is given twice"
            )));
        }
        match tokens.get(pos) {
            Some(Token::Comma) => pos += 1,
            Some(Token::RParen) => {}
            other => {
                return Err(syntax(format!(
                    "expected ',' or ')' in CALL, found {other:?}"
                )))
            }
        }
    }
    if tokens.len() > pos + 1
        && tokens[pos + 1..]
            .iter()
            .any(|t| !matches!(t, Token::SemiColon | Token::EOF))
    {
        return Err(syntax("unexpected text after the CALL's ')'"));
    }
    Ok(Call { procedure, args })
}

fn required<'a>(call: &'a Call, name: &str) -> Result<&'a str> {
    call.args.get(name).map(String::as_str).ok_or_else(|| {
        SqlError::InvalidParameter(format!(
            "sys.{} needs the argument '{name}'",
            call.procedure
        ))
    })
}

fn number<T: std::str::FromStr>(call: &Call, name: &str) -> Result<Option<T>> {
    call.args
        .get(name)
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                SqlError::InvalidParameter(format!(
                    "argument '{name}' of sys.{}: '{v}' is not a number",
                    call.procedure
                ))
            })
        })
        .transpose()
}

/// `older_than`: a timestamp `YYYY-MM-DD[ HH:MM:SS[.fff]]` (UTC) or epoch millis.
fn timestamp_millis(call: &Call, name: &str) -> Result<Option<i64>> {
    let Some(text) = call.args.get(name) else {
        return Ok(None);
    };
    if let Ok(millis) = text.trim().parse::<i64>() {
        return Ok(Some(millis));
    }
    let strings: ArrayRef = Arc::new(StringArray::from(vec![text.trim()]));
    let options = datafusion::arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let millis = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None);
    match datafusion::arrow::compute::cast_with_options(&strings, &millis, &options) {
        Ok(array) => match ScalarValue::try_from_array(array.as_ref(), 0)? {
            ScalarValue::TimestampMillisecond(Some(v), _) => Ok(Some(v)),
            _ => Err(bad_timestamp(call, name, text)),
        },
        Err(_) => Err(bad_timestamp(call, name, text)),
    }
}

fn bad_timestamp(call: &Call, name: &str, text: &str) -> SqlError {
    SqlError::InvalidParameter(format!(
        "argument '{name}' of sys.{}: '{text}' is not a timestamp (YYYY-MM-DD HH:MM:SS) or epoch milliseconds",
        call.procedure
    ))
}

/// Now, in epoch milliseconds.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn table_identifier(call: &Call, current_database: &str) -> Result<Identifier> {
    let name = required(call, "table")?;
    match name.split_once('.') {
        Some((db, table)) if !db.is_empty() && !table.is_empty() => Ok(Identifier::new(db, table)),
        None if !name.is_empty() => Ok(Identifier::new(current_database, name)),
        _ => Err(SqlError::InvalidParameter(format!(
            "'{name}' is not a table name (db.table)"
        ))),
    }
}

fn result_rows(columns: Vec<(&str, ArrayRef)>) -> Result<StatementResult> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?;
    Ok(StatementResult::Rows {
        schema,
        batches: vec![batch],
    })
}

fn count(n: u64) -> ArrayRef {
    Arc::new(Int64Array::from(vec![n as i64]))
}

fn text(s: impl Into<String>) -> ArrayRef {
    Arc::new(StringArray::from(vec![s.into()]))
}

/// Runs a `CALL` statement.
pub(crate) async fn run_call(
    catalog: &Catalog,
    current_database: &str,
    sql: &str,
) -> Result<StatementResult> {
    let call = parse_call(sql)?;
    let id = table_identifier(&call, current_database)?;
    let table = catalog.load_table(&id).await?;
    match call.procedure.as_str() {
        "compact" => compact(&call, &table).await,
        "compact_manifest" => {
            let done = table.compact_manifests(BTreeMap::new()).await?;
            result_rows(vec![
                (
                    "snapshot_id",
                    Arc::new(Int64Array::from(vec![done.snapshot_id])) as ArrayRef,
                ),
                ("manifests_before", count(done.manifests_before as u64)),
                ("manifests_after", count(done.manifests_after as u64)),
                ("live_files", count(done.live_files as u64)),
            ])
        }
        "expire_snapshots" => {
            let defaults = ExpireOptions::from_table(&table, now_millis());
            let options = ExpireOptions {
                retain_max: number(&call, "retain_max")?.unwrap_or(defaults.retain_max),
                retain_min: number(&call, "retain_min")?.unwrap_or(defaults.retain_min),
                older_than: timestamp_millis(&call, "older_than")?.or(defaults.older_than),
                max_deletes: number(&call, "max_deletes")?.unwrap_or(defaults.max_deletes),
            };
            let outcome = table.expire_snapshots(options).await?;
            result_rows(vec![
                ("deleted_snapshots", count(outcome.snapshots_deleted as u64)),
                ("deleted_files", count(outcome.files_deleted as u64)),
            ])
        }
        "create_tag" => {
            let tag = required(&call, "tag")?;
            let snapshot = table.create_tag(tag, number(&call, "snapshot_id")?).await?;
            result_rows(vec![
                ("tag", text(tag)),
                ("snapshot_id", count(snapshot.id as u64)),
            ])
        }
        "delete_tag" => {
            let tag = required(&call, "tag")?;
            table.delete_tag(tag).await?;
            result_rows(vec![("result", text("Success"))])
        }
        "create_branch" => {
            let branch = required(&call, "branch")?;
            let tag = call.args.get("tag").map(String::as_str);
            table.create_branch(branch, tag).await?;
            result_rows(vec![("result", text("Success"))])
        }
        "delete_branch" => {
            // Paimon's argument is a comma-separated list; each must exist
            // before any is deleted, so a typo deletes nothing.
            let names: Vec<&str> = required(&call, "branch")?
                .split(',')
                .map(str::trim)
                .collect();
            for name in &names {
                if *name == tidelake_engine::MAIN_BRANCH {
                    return Err(SqlError::InvalidParameter(
                        "the main branch cannot be deleted (drop the table instead); nothing was deleted".into(),
                    ));
                }
                if !table.branch_exists(name).await? {
                    return Err(SqlError::InvalidParameter(format!(
                        "branch '{name}' of table '{id}' does not exist; nothing was deleted"
                    )));
                }
            }
            for name in names {
                table.delete_branch(name).await?;
            }
            result_rows(vec![("result", text("Success"))])
        }
        "fast_forward" => {
            table.fast_forward(required(&call, "branch")?).await?;
            result_rows(vec![("result", text("Success"))])
        }
        "rollback_to" => {
            match (number::<i64>(&call, "snapshot_id")?, call.args.get("tag")) {
                (Some(id), None) => table.rollback_to_snapshot(id).await?,
                (None, Some(tag)) => table.rollback_to_tag(tag).await?,
                _ => {
                    return Err(SqlError::InvalidParameter(
                        "sys.rollback_to needs exactly one of 'snapshot_id' and 'tag'".into(),
                    ))
                }
            }
            result_rows(vec![("result", text("Success"))])
        }
        "remove_orphan_files" => {
            let day_ago = now_millis() - 24 * 3600 * 1000;
            let dry_run = match call.args.get("dry_run").map(|v| v.to_ascii_lowercase()) {
                None => false,
                Some(v) if v == "true" => true,
                Some(v) if v == "false" => false,
                Some(v) => {
                    return Err(SqlError::InvalidParameter(format!(
                        "dry_run: '{v}' is not true or false"
                    )))
                }
            };
            let options = OrphanOptions {
                older_than: timestamp_millis(&call, "older_than")?.unwrap_or(day_ago),
                dry_run,
            };
            let removed = table.remove_orphan_files_with(options).await?;
            let schema = Arc::new(Schema::new(vec![Field::new(
                "orphan_file",
                DataType::Utf8,
                false,
            )]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(removed)) as ArrayRef],
            )?;
            Ok(StatementResult::Rows {
                schema,
                batches: vec![batch],
            })
        }
        "drop_partition" => {
            let specs = crate::partitions::specs_from_argument(required(&call, "partitions")?)?;
            crate::partitions::drop_specs(&table, &specs, false).await?;
            result_rows(vec![("result", text("Success"))])
        }
        "expire_partitions" => expire_partitions(&call, &table).await,
        other => Err(SqlError::Unsupported(format!(
            "unknown procedure sys.{other}"
        ))),
    }
}

/// `sys.expire_partitions`: the arguments override the table's
/// `partition.*` options; `expiration_time` is needed from one of them.
async fn expire_partitions(call: &Call, table: &Table) -> Result<StatementResult> {
    let configured = tidelake_engine::PartitionExpireOptions::from_table(table)?;
    let expiration_millis = match (call.args.get("expiration_time"), &configured) {
        (Some(text), _) => tidelake_engine::options::parse_duration_millis(text)
            .map_err(|e| SqlError::InvalidParameter(format!("expiration_time: {e}")))?,
        (None, Some(c)) => c.expiration_millis,
        (None, None) => {
            return Err(SqlError::InvalidParameter(format!(
                "sys.expire_partitions needs 'expiration_time' (table '{}' sets no partition.expiration-time)",
                table.identifier()
            )))
        }
    };
    if table.partition_keys().is_empty() {
        return Err(SqlError::Unsupported(format!(
            "sys.expire_partitions is not allowed on table '{}': it is not partitioned",
            table.identifier()
        )));
    }
    let strategy = match call.args.get("expire_strategy") {
        Some(s) => tidelake_engine::ExpireStrategy::parse(s)?,
        None => configured
            .as_ref()
            .map_or(tidelake_engine::ExpireStrategy::ValuesTime, |c| c.strategy),
    };
    let options = tidelake_engine::PartitionExpireOptions {
        expiration_millis,
        timestamp_formatter: call.args.get("timestamp_formatter").cloned().or_else(|| {
            configured
                .as_ref()
                .and_then(|c| c.timestamp_formatter.clone())
        }),
        timestamp_pattern: call.args.get("timestamp_pattern").cloned().or_else(|| {
            configured
                .as_ref()
                .and_then(|c| c.timestamp_pattern.clone())
        }),
        strategy,
        max_expires: number(call, "max_expires")?
            .or(configured.as_ref().map(|c| c.max_expires))
            .unwrap_or(100),
    };
    let expired = table.expire_partitions(&options, now_millis()).await?;
    let mut names = crate::partitions::partition_names(table, &expired);
    if names.is_empty() {
        // Paimon's procedure answers so when nothing expired.
        names.push("No expired partitions.".to_string());
    }
    let batch = crate::describe::names_batch("expired_partitions", &names)?;
    Ok(StatementResult::Rows {
        schema: batch.schema(),
        batches: vec![batch],
    })
}

async fn compact(call: &Call, table: &Table) -> Result<StatementResult> {
    let full = match call
        .args
        .get("compact_strategy")
        .map(|s| s.to_ascii_lowercase())
    {
        None => !table.is_primary_key_table(),
        Some(s) if s == "full" => true,
        Some(s) if s == "minor" => false,
        Some(s) => {
            return Err(SqlError::InvalidParameter(format!(
                "compact_strategy: '{s}' is not full or minor"
            )))
        }
    };
    let partition = match call.args.get("partitions") {
        Some(spec) => Some(partition_spec_predicate(table, spec)?),
        None => None,
    };
    let outcome = table.compact(CompactOptions { full, partition }).await?;
    result_rows(vec![
        (
            "snapshot_id",
            Arc::new(Int64Array::from(vec![outcome.snapshot_id])) as ArrayRef,
        ),
        ("files_in", count(outcome.files_in as u64)),
        ("files_out", count(outcome.files_out as u64)),
        ("bytes_in", count(outcome.bytes_in)),
        ("bytes_out", count(outcome.bytes_out)),
    ])
}

/// Paimon's `partitions` argument, `k1=v1,k2=v2;k1=v3,...` (`;` between
/// partitions), as a predicate on the partition columns with typed values.
fn partition_spec_predicate(table: &Table, spec: &str) -> Result<Predicate> {
    let schema = table.schema();
    let mut alternatives = Vec::new();
    for partition in crate::partitions::specs_from_argument(spec)? {
        let mut conjuncts = Vec::new();
        for (key, value) in partition {
            if !table.partition_keys().contains(&key) {
                return Err(SqlError::InvalidParameter(format!(
                    "partitions: '{key}' is not a partition column of table '{}'",
                    table.identifier()
                )));
            }
            let field = schema
                .field(&key)
                .ok_or_else(|| SqlError::UndefinedColumn(key.clone()))?;
            conjuncts.push(Predicate::Compare {
                value: datum_from_text(&value, &field.data_type)?,
                column: key,
                op: CompareOp::Eq,
            });
        }
        alternatives.push(Predicate::And(conjuncts));
    }
    Ok(match alternatives.len() {
        1 => alternatives.remove(0),
        _ => Predicate::Or(alternatives),
    })
}

/// A value typed as the column, from its text (Arrow's cast rules).
pub(crate) fn datum_from_text(text: &str, ty: &tidelake_engine::DataType) -> Result<Datum> {
    let strings: ArrayRef = Arc::new(StringArray::from(vec![text]));
    let options = datafusion::arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let typed = datafusion::arrow::compute::cast_with_options(&strings, &ty.to_arrow(), &options)
        .map_err(|e| SqlError::InvalidValue(format!("'{text}' is not a {ty}: {e}")))?;
    let scalar = ScalarValue::try_from_array(typed.as_ref(), 0)?;
    crate::predicate::datum_for(&scalar, ty)
        .ok_or_else(|| SqlError::InvalidValue(format!("'{text}' is not a value of type {ty}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_parse_with_named_and_positional_arguments() {
        // Flink quotes the reserved word `table`; both spellings work.
        let call =
            parse_call("CALL sys.compact(`table` => 'db.t', compact_strategy => 'full')").unwrap();
        assert_eq!(call.args["table"], "db.t");
        let call =
            parse_call("CALL sys.compact(table => 'db.t', compact_strategy => 'full');").unwrap();
        assert_eq!(call.procedure, "compact");
        assert_eq!(call.args["table"], "db.t");
        assert_eq!(call.args["compact_strategy"], "full");
        let call = parse_call("call sys.expire_snapshots('db.t', 5)").unwrap();
        assert_eq!(call.args["table"], "db.t");
        assert_eq!(call.args["retain_max"], "5");
    }

    #[test]
    fn bad_calls_say_what_is_wrong() {
        let err = parse_call("CALL sys.nope(table => 't')")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sys.nope") && err.contains("compact"), "{err}");
        let err = parse_call("CALL sys.compact(tbl => 't')")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'tbl'"), "{err}");
        let err = parse_call("CALL sys.delete_tag('t', 'a', 'b')")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 2"), "{err}");
        let err = parse_call("CALL sys.create_tag(table => 't', table => 'u')")
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
        assert!(is_call("  CALL sys.compact('t')"));
        assert!(!is_call("CALLING"));
    }
}
