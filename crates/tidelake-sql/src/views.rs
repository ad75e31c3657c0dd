//! Views: `CREATE [OR REPLACE] VIEW [IF NOT EXISTS] [db.]v [COMMENT '...']
//! AS query`, `DROP VIEW [IF EXISTS] [db.]v` and `SHOW VIEWS [IN db]`.
//!
//! A view is stored in the warehouse (see `tidelake_engine::views`: Paimon's
//! filesystem catalog has none, so Tidelake keeps Paimon's view document in
//! `{db}.db/.view/{name}.json`) with the query as written. Queries see it
//! through the catalog as a DataFusion `ViewTable` (table type `VIEW`),
//! planned afresh each time it is named, so it follows its tables' schemas.
//! Unqualified names in a view's query name tables of the view's database,
//! whichever database the session is in.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::ViewTable;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};
use tidelake_engine::views::{ViewSpec, VIEW_DIALECT};
use tidelake_engine::{Catalog, DataField, DataType, Identifier};

use crate::catalog::TidelakeCatalog;
use crate::describe::names_batch;
use crate::error::{Result, SqlError};
use crate::lexer::{split_statements, LineIndex, RawStatement};
use crate::session::{sql_config, StatementResult, CATALOG_NAME};

/// How deeply views may name views: a view that names itself (through
/// `OR REPLACE`) would otherwise be planned forever.
const MAX_VIEW_DEPTH: usize = 16;

/// A view statement, parsed.
#[derive(Debug, PartialEq)]
enum ViewStatement {
    Create {
        database: Option<String>,
        name: String,
        or_replace: bool,
        if_not_exists: bool,
        comment: Option<String>,
        query: String,
    },
    Drop {
        database: Option<String>,
        name: String,
        if_exists: bool,
    },
    Show {
        database: Option<String>,
    },
}

fn is_word(tokens: &[TokenWithSpan], i: usize, word: &str) -> bool {
    matches!(tokens.get(i).map(|t| &t.token),
        Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Whether the word at `i` is `TEMP` or `TEMPORARY`.
fn is_temporary(tokens: &[TokenWithSpan], i: usize) -> bool {
    is_word(tokens, i, "TEMP") || is_word(tokens, i, "TEMPORARY")
}

/// Where `VIEW` is after `CREATE [OR REPLACE] [TEMP[ORARY]]`, if it is.
fn view_keyword_at(tokens: &[TokenWithSpan]) -> Option<usize> {
    let mut i = 1;
    if is_word(tokens, i, "OR") {
        i += 2;
    }
    if is_temporary(tokens, i) {
        i += 1;
    }
    is_word(tokens, i, "VIEW").then_some(i)
}

/// Whether a statement is one this module runs (by its first words).
pub(crate) fn is_view_statement(statement: &RawStatement) -> bool {
    let t = &statement.tokens;
    (is_word(t, 0, "CREATE") && view_keyword_at(t).is_some())
        || (is_word(t, 0, "DROP") && is_word(t, 1, "VIEW"))
        || (is_word(t, 0, "SHOW") && is_word(t, 1, "VIEWS"))
}

fn syntax(message: impl Into<String>) -> SqlError {
    SqlError::syntax(message.into(), None)
}

/// An identifier as DataFusion resolves it: unquoted ones folded to lower case.
fn ident(tokens: &[TokenWithSpan], i: usize) -> Option<String> {
    match tokens.get(i).map(|t| &t.token) {
        Some(Token::Word(w)) if w.quote_style.is_some() => Some(w.value.clone()),
        Some(Token::Word(w)) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// `[db.]name` at `*i`; advances past it.
fn object_name(tokens: &[TokenWithSpan], i: &mut usize) -> Result<(Option<String>, String)> {
    let first = ident(tokens, *i).ok_or_else(|| syntax("expected a view name"))?;
    *i += 1;
    if tokens.get(*i).map(|t| &t.token) == Some(&Token::Period) {
        let second =
            ident(tokens, *i + 1).ok_or_else(|| syntax("expected a view name after '.'"))?;
        *i += 2;
        return Ok((Some(first), second));
    }
    Ok((None, first))
}

fn parse(statement: &RawStatement) -> Result<ViewStatement> {
    let t = &statement.tokens;
    let end = |i: usize| -> Result<()> {
        match t.get(i) {
            None => Ok(()),
            Some(tok) => Err(syntax(format!(
                "unexpected '{}' at the end of the statement",
                tok.token
            ))),
        }
    };
    if is_word(t, 0, "SHOW") {
        let database = if is_word(t, 2, "IN") || is_word(t, 2, "FROM") {
            Some(ident(t, 3).ok_or_else(|| syntax("expected a database name"))?)
        } else {
            None
        };
        end(if database.is_some() { 4 } else { 2 })?;
        return Ok(ViewStatement::Show { database });
    }
    if is_word(t, 0, "DROP") {
        let mut i = 2;
        let if_exists = is_word(t, i, "IF") && is_word(t, i + 1, "EXISTS");
        if if_exists {
            i += 2;
        }
        let (database, name) = object_name(t, &mut i)?;
        end(i)?;
        return Ok(ViewStatement::Drop {
            database,
            name,
            if_exists,
        });
    }
    let view_at = view_keyword_at(t).ok_or_else(|| syntax("expected CREATE VIEW"))?;
    if is_temporary(t, view_at - 1) {
        return Err(SqlError::Unsupported(
            "temporary views are not supported: a view is stored in the warehouse (CREATE VIEW)"
                .into(),
        ));
    }
    let or_replace = is_word(t, 1, "OR");
    if or_replace && !is_word(t, 2, "REPLACE") {
        return Err(syntax("expected CREATE OR REPLACE VIEW"));
    }
    let mut i = if or_replace { 4 } else { 2 };
    let if_not_exists =
        is_word(t, i, "IF") && is_word(t, i + 1, "NOT") && is_word(t, i + 2, "EXISTS");
    if if_not_exists {
        i += 3;
    }
    if or_replace && if_not_exists {
        return Err(syntax(
            "CREATE OR REPLACE VIEW and IF NOT EXISTS contradict each other; use one",
        ));
    }
    let (database, name) = object_name(t, &mut i)?;
    if t.get(i).map(|t| &t.token) == Some(&Token::LParen) {
        return Err(SqlError::Unsupported(
            "a column list after the view name is not supported: name the columns in the query (AS aliases)".into(),
        ));
    }
    let mut comment = None;
    if is_word(t, i, "COMMENT") {
        match t.get(i + 1).map(|t| &t.token) {
            Some(Token::SingleQuotedString(c)) => comment = Some(c.clone()),
            _ => return Err(syntax("COMMENT needs a quoted string")),
        }
        i += 2;
    }
    if !is_word(t, i, "AS") {
        return Err(syntax("expected AS followed by the view's query"));
    }
    let start = t
        .get(i + 1)
        .and_then(|q| LineIndex::new(&statement.text).offset(q.span.start))
        .ok_or_else(|| syntax("expected the view's query after AS"))?;
    Ok(ViewStatement::Create {
        database,
        name,
        or_replace,
        if_not_exists,
        comment,
        query: statement.text[start..].trim().to_string(),
    })
}

/// The query text as DataFusion must see it (time travel, backquotes and
/// branch hints rewritten), checked to be one statement.
fn query_for_datafusion(query: &str) -> Result<String> {
    let mut statements = split_statements(query)?;
    if statements.len() != 1 {
        return Err(syntax(format!(
            "a view holds one query, found {} statements",
            statements.len()
        )));
    }
    let text = statements.remove(0).text_for_datafusion();
    Ok(crate::hints::apply_branch_hints(&text)?.unwrap_or(text))
}

/// Plans a view's query with `database` as the default database.
async fn plan_query(state: &SessionState, query: &str) -> Result<LogicalPlan> {
    let plan = state
        .create_logical_plan(&query_for_datafusion(query)?)
        .await
        .map_err(|e| match SqlError::from(e) {
            // Named as in the session's statements: `db.t`.
            SqlError::UndefinedTable(name) => SqlError::UndefinedTable(
                name.strip_prefix(&format!("{CATALOG_NAME}."))
                    .map_or(name.clone(), str::to_string),
            ),
            other => other,
        })?;
    match plan {
        LogicalPlan::Dml(_)
        | LogicalPlan::Ddl(_)
        | LogicalPlan::Statement(_)
        | LogicalPlan::Copy(_)
        | LogicalPlan::Explain(_) => Err(SqlError::Unsupported(
            "a view's body must be a query (SELECT, VALUES or WITH ... SELECT)".into(),
        )),
        plan => Ok(plan),
    }
}

/// The view's columns as Paimon fields.
fn view_fields(plan: &LogicalPlan, id: &Identifier) -> Result<Vec<DataField>> {
    let mut fields = Vec::new();
    for (i, f) in plan.schema().fields().iter().enumerate() {
        if fields.iter().any(|d: &DataField| d.name == *f.name()) {
            return Err(SqlError::DuplicateColumn(format!(
                "view '{id}' would have two columns named '{}'; give them distinct names with AS",
                f.name()
            )));
        }
        let data_type = DataType::from_arrow(f.data_type(), f.is_nullable()).map_err(|e| {
            SqlError::Unsupported(format!(
                "column '{}' of view '{id}' has type {}, which a Paimon view cannot record: {e}",
                f.name(),
                f.data_type()
            ))
        })?;
        fields.push(DataField {
            id: i as i32,
            name: f.name().clone(),
            data_type,
            description: None,
        });
    }
    Ok(fields)
}

/// The view's name in its database, which must exist.
async fn view_id(
    catalog: &Catalog,
    database: Option<String>,
    name: String,
    current_database: &str,
) -> Result<Identifier> {
    let id = Identifier::new(database.unwrap_or_else(|| current_database.into()), name);
    if !catalog.database_exists(&id.database).await? {
        return Err(SqlError::UndefinedDatabase(id.database));
    }
    Ok(id)
}

/// Runs a view statement in a session whose state is `ctx`.
pub(crate) async fn run_view_statement(
    ctx: &SessionContext,
    tidelake: &TidelakeCatalog,
    current_database: &str,
    statement: &RawStatement,
) -> Result<StatementResult> {
    let catalog = tidelake.catalog();
    let status = |c: &'static str| {
        StatementResult::Status(crate::session::CommandStatus {
            command: c,
            rows: None,
        })
    };
    match parse(statement)? {
        ViewStatement::Show { database } => {
            let database = database.unwrap_or_else(|| current_database.to_string());
            if !catalog.database_exists(&database).await? {
                return Err(SqlError::UndefinedDatabase(database));
            }
            let names = catalog.views().list(&database).await?;
            let batch = names_batch("view_name", &names)?;
            Ok(StatementResult::Rows {
                schema: batch.schema(),
                batches: vec![batch],
            })
        }
        ViewStatement::Drop {
            database,
            name,
            if_exists,
        } => {
            let id = view_id(catalog, database, name, current_database).await?;
            catalog.views().drop(&id, if_exists).await?;
            // The cached names behind information_schema.
            tidelake.database(&id.database).refresh().await?;
            Ok(status("DROP VIEW"))
        }
        ViewStatement::Create {
            database,
            name,
            or_replace,
            if_not_exists,
            comment,
            query,
        } => {
            let id = view_id(catalog, database, name, current_database).await?;
            let mut state = ctx.state();
            state.config_mut().options_mut().catalog.default_schema = id.database.clone();
            let plan = plan_query(&state, &query).await?;
            let spec = ViewSpec {
                fields: view_fields(&plan, &id)?,
                dialects: BTreeMap::from([(VIEW_DIALECT.to_string(), query.clone())]),
                query,
                comment,
                options: BTreeMap::new(),
            };
            let previous = match or_replace {
                true => catalog.views().get(&id).await?,
                false => None,
            };
            catalog
                .views()
                .create(&id, &spec, or_replace, if_not_exists)
                .await?;
            // Only a replaced view can come to name itself (through views
            // that name it): plan it as stored, and put the old one back
            // when that fails.
            if let Some(previous) = previous {
                if let Err(e) = view_provider(catalog, &id, &spec, 0).await {
                    catalog.views().create(&id, &previous, true, false).await?;
                    return Err(SqlError::Plan(format!(
                        "view '{id}' was not replaced: the new query cannot be planned as the view ({e})"
                    )));
                }
            }
            tidelake.database(&id.database).refresh().await?;
            Ok(status("CREATE VIEW"))
        }
    }
}

/// The provider of view `id`, planned in a context of its own (views it
/// names are planned `depth + 1` deep).
pub(crate) async fn view_provider(
    catalog: &Catalog,
    id: &Identifier,
    spec: &ViewSpec,
    depth: usize,
) -> Result<Arc<dyn TableProvider>> {
    if depth >= MAX_VIEW_DEPTH {
        return Err(SqlError::Plan(format!(
            "view '{id}' nests views more than {MAX_VIEW_DEPTH} deep (does it name itself?)"
        )));
    }
    let config = sql_config(&id.database).with_create_default_catalog_and_schema(false);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_catalog(
        CATALOG_NAME,
        Arc::new(TidelakeCatalog::nested(catalog.clone(), depth + 1)),
    );
    let plan = plan_query(&ctx.state(), spec.tidelake_query())
        .await
        .map_err(|e| match e {
            // Said once, by the innermost view.
            SqlError::Plan(m) if m.starts_with("view '") => SqlError::Plan(m),
            e => SqlError::Plan(format!(
                "view '{id}' cannot be planned (did a table it reads change or go?): {e}"
            )),
        })?;
    Ok(Arc::new(ViewTable::new(plan, Some(spec.query.clone()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> Result<ViewStatement> {
        let statement = split_statements(sql)?.remove(0);
        assert!(is_view_statement(&statement), "{sql}");
        parse(&statement)
    }

    #[test]
    fn view_statements_parse() {
        assert_eq!(
            parsed("CREATE OR REPLACE VIEW Db.V COMMENT 'c' AS SELECT 1 AS x;").unwrap(),
            ViewStatement::Create {
                database: Some("db".into()),
                name: "v".into(),
                or_replace: true,
                if_not_exists: false,
                comment: Some("c".into()),
                query: "SELECT 1 AS x".into(),
            }
        );
        assert_eq!(
            parsed("create view if not exists \"V\" as\n  select * from t").unwrap(),
            ViewStatement::Create {
                database: None,
                name: "V".into(),
                or_replace: false,
                if_not_exists: true,
                comment: None,
                query: "select * from t".into(),
            }
        );
        assert_eq!(
            parsed("DROP VIEW IF EXISTS v").unwrap(),
            ViewStatement::Drop {
                database: None,
                name: "v".into(),
                if_exists: true
            }
        );
        assert_eq!(
            parsed("SHOW VIEWS IN db").unwrap(),
            ViewStatement::Show {
                database: Some("db".into())
            }
        );
        for bad in [
            "CREATE OR REPLACE VIEW IF NOT EXISTS v AS SELECT 1",
            "CREATE VIEW v (a) AS SELECT 1",
            "CREATE VIEW v SELECT 1",
            "DROP VIEW v extra",
            "CREATE OR REPLACE TEMPORARY VIEW v AS SELECT 1",
            "CREATE TEMP VIEW v AS SELECT 1",
        ] {
            assert!(parsed(bad).is_err(), "{bad}");
        }
    }
}
