//! `CALL sys.create_vector_index('db.t', 'emb', 'ivf-flat', 'l2', 128 [, '{"nlist":"64"}'])`
//! and `CALL sys.drop_vector_index('db.t')`: the index options on an
//! existing table (one schema change). Segments are then built by the
//! table's next compactions (`CALL sys.compact('db.t')` builds them at
//! once); until then its rows are searched exactly.

use tidelake_engine::{Catalog, Identifier, SchemaChange};
use tidelake_sql::{CommandStatus, StatementResult};

use crate::error::{Result, VectorError};
use crate::spec::{
    dimension_key, metric_key, options_key, type_key, VectorIndexSpec, INDEX_COLUMNS,
};

/// A procedure this crate owns.
pub enum Procedure {
    Create,
    Drop,
}

/// The procedure `sql` calls, and its arguments (text or numbers as
/// written, quotes removed); `None` when `sql` calls none of ours.
pub fn parse(sql: &str) -> Option<Result<(Procedure, Vec<String>)>> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    let lower = trimmed.to_ascii_lowercase();
    let rest = lower.strip_prefix("call")?.trim_start();
    let (procedure, name_len) = if rest.starts_with("sys.create_vector_index") {
        (Procedure::Create, "sys.create_vector_index".len())
    } else if rest.starts_with("sys.drop_vector_index") {
        (Procedure::Drop, "sys.drop_vector_index".len())
    } else {
        return None;
    };
    let offset = trimmed.len() - rest.len() + name_len;
    let args = trimmed[offset..].trim();
    let Some(inner) = args.strip_prefix('(').and_then(|a| a.strip_suffix(')')) else {
        return Some(Err(VectorError::BadSearch(
            "a CALL takes its arguments in parentheses".into(),
        )));
    };
    Some(split_args(inner).map(|a| (procedure, a)))
}

/// Comma-separated arguments: 'text' (with '' for a quote) or bare words.
fn split_args(text: &str) -> Result<Vec<String>> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                current.push('\'');
                chars.next();
            }
            '\'' => quoted = !quoted,
            ',' if !quoted => args.push(std::mem::take(&mut current).trim().to_string()),
            c => current.push(c),
        }
    }
    if quoted {
        return Err(VectorError::BadSearch(
            "unterminated quote in CALL arguments".into(),
        ));
    }
    if !current.trim().is_empty() || !args.is_empty() {
        args.push(current.trim().to_string());
    }
    Ok(args)
}

fn identifier(name: &str, database: &str) -> Identifier {
    match name.split_once('.') {
        Some((db, t)) => Identifier::new(db, t),
        None => Identifier::new(database, name),
    }
}

/// Runs a procedure.
pub async fn run(
    catalog: &Catalog,
    database: &str,
    procedure: Procedure,
    args: Vec<String>,
) -> Result<StatementResult> {
    match procedure {
        Procedure::Create => create(catalog, database, args).await,
        Procedure::Drop => drop(catalog, database, args).await,
    }
}

async fn create(catalog: &Catalog, database: &str, args: Vec<String>) -> Result<StatementResult> {
    if !(5..=6).contains(&args.len()) {
        return Err(VectorError::BadSearch(
            "sys.create_vector_index takes ('db.table', 'column', 'index type', 'metric', dimension [, 'options JSON'])".into(),
        ));
    }
    let id = identifier(&args[0], database);
    let column = args[1].clone();
    let table = catalog.load_table(&id).await?;
    if table.schema().options.contains_key(INDEX_COLUMNS) {
        return Err(VectorError::definition(
            &id,
            "the table already has a vector index (drop it first)",
        ));
    }
    let mut options = vec![
        (INDEX_COLUMNS.to_string(), column.clone()),
        (type_key(&column), args[2].trim().to_ascii_lowercase()),
        (metric_key(&column), args[3].trim().to_ascii_lowercase()),
        (dimension_key(&column), args[4].trim().to_string()),
    ];
    if let Some(json) = args.get(5) {
        options.push((options_key(&column), json.clone()));
    }
    // Checked here too, so a catalog without the hooks refuses it as well.
    let mut schema = table.schema().clone();
    schema.options.extend(options.iter().cloned());
    VectorIndexSpec::from_schema(&id.to_string(), &schema)?;
    let changes = options
        .into_iter()
        .map(|(key, value)| SchemaChange::SetOption { key, value })
        .collect();
    catalog.alter_table(&id, changes).await?;
    Ok(StatementResult::Status(CommandStatus::new("CALL")))
}

async fn drop(catalog: &Catalog, database: &str, args: Vec<String>) -> Result<StatementResult> {
    let [name] = args.as_slice() else {
        return Err(VectorError::BadSearch(
            "sys.drop_vector_index takes ('db.table')".into(),
        ));
    };
    let id = identifier(name, database);
    let table = catalog.load_table(&id).await?;
    let Some(column) = table.schema().options.get(INDEX_COLUMNS).cloned() else {
        return Err(VectorError::definition(
            &id,
            "the table has no vector index",
        ));
    };
    let changes = [
        INDEX_COLUMNS.to_string(),
        type_key(&column),
        metric_key(&column),
        options_key(&column),
    ]
    .into_iter()
    .filter(|k| table.schema().options.contains_key(k))
    .map(|key| SchemaChange::RemoveOption { key })
    .collect();
    catalog.alter_table(&id, changes).await?;
    Ok(StatementResult::Status(CommandStatus::new("CALL")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_parsed_with_quoted_arguments() {
        let (p, args) = parse("CALL sys.create_vector_index('db.t', 'emb', 'ivf-flat', 'l2', 4, '{\"nlist\":\"2\"}');")
            .unwrap()
            .unwrap();
        assert!(matches!(p, Procedure::Create));
        assert_eq!(
            args,
            vec!["db.t", "emb", "ivf-flat", "l2", "4", "{\"nlist\":\"2\"}"]
        );
        assert!(parse("CALL sys.compact('db.t')").is_none());
        let (_, args) = parse("call sys.drop_vector_index('it''s')")
            .unwrap()
            .unwrap();
        assert_eq!(args, vec!["it's"]);
    }
}
