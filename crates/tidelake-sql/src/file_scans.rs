//! The file table functions and `FROM 'path'`, as in DuckDB:
//! `read_parquet(path [, option => value ...])`, `read_csv(...)`,
//! `read_json(...)` (newline-delimited), where `path` is a string (a file,
//! a folder or a glob) or a list of them, and `SELECT * FROM 'x.parquet'`
//! (the format from the extension).
//!
//! Options are DuckDB's names, written `name => value` or DuckDB's
//! `name = value`: `hive_partitioning` (default: detected from `k=v`
//! folders), and for CSV `header` (default true), `delim` (or `delimiter`,
//! `sep`), `quote`, `escape`. DuckDB's aliases `read_csv_auto`,
//! `read_json_auto`, `read_ndjson` and `parquet_scan` are accepted.
//!
//! DataFusion plans table functions synchronously and takes only positional
//! arguments, but reading a schema is I/O. So before planning, each call is
//! opened here (files listed, schema read) and rewritten to
//! `read_x('<key>')`, and the registered function returns the table opened
//! for that key; keys live only while their statement is planned.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, Result as DfResult, ScalarValue};
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::logical_expr::Expr as DfExpr;
use datafusion::sql::parser::{CopyToSource, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, ObjectNamePart,
    TableFactor, TableFunctionArgs as SqlTableFunctionArgs, Value, VisitMut, VisitorMut,
};

use crate::error::{Result, SqlError};
use crate::files::{apply_csv_setting, FileRequest, FileTable, Format, SettingValue};

/// Tables opened for statements being planned, by key.
#[derive(Debug, Default)]
pub(crate) struct PreparedScans {
    next: AtomicU64,
    tables: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
}

impl PreparedScans {
    fn insert(&self, key: String, table: Arc<dyn TableProvider>) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(key, table);
        }
    }

    fn get(&self, key: &str) -> Option<Arc<dyn TableProvider>> {
        self.tables.lock().ok()?.get(key).cloned()
    }

    fn remove(&self, keys: &[String]) {
        if let Ok(mut tables) = self.tables.lock() {
            for key in keys {
                tables.remove(key);
            }
        }
    }
}

/// Removes a statement's opened tables when its planning is over.
pub(crate) struct PreparedGuard {
    scans: Arc<PreparedScans>,
    keys: Vec<String>,
}

impl Drop for PreparedGuard {
    fn drop(&mut self) {
        self.scans.remove(&self.keys);
    }
}

/// One registered file function: hands out the table opened for its key.
#[derive(Debug)]
struct FileFunction {
    name: &'static str,
    scans: Arc<PreparedScans>,
}

impl TableFunctionImpl for FileFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let key = match args.exprs() {
            [DfExpr::Literal(ScalarValue::Utf8(Some(key)), _)] => key.as_str(),
            _ => return plan_err!("{} takes a path and options written as literals", self.name),
        };
        match self.scans.get(key) {
            Some(table) => Ok(table),
            None => plan_err!("{} takes a path and options written as literals", self.name),
        }
    }
}

/// Registers the file functions on a session context and keeps their
/// shared state in its configuration.
pub(crate) fn register(ctx: &SessionContext) {
    let scans = Arc::new(PreparedScans::default());
    for format in [Format::Parquet, Format::Csv, Format::Json] {
        ctx.register_udtf(
            format.function(),
            Arc::new(FileFunction {
                name: format.function(),
                scans: scans.clone(),
            }),
        );
    }
    ctx.state_ref().write().config_mut().set_extension(scans);
}

/// The canonical function a name calls, with DuckDB's aliases.
fn function_format(name: &str) -> Option<Format> {
    match name.to_ascii_lowercase().as_str() {
        "read_parquet" | "parquet_scan" => Some(Format::Parquet),
        "read_csv" | "read_csv_auto" => Some(Format::Csv),
        "read_json" | "read_json_auto" | "read_ndjson" => Some(Format::Json),
        _ => None,
    }
}

/// Opens every file scan of `statement` and rewrites it to its key.
pub(crate) async fn prepare(
    state: &SessionState,
    statement: &mut DfStatement,
) -> Result<Option<PreparedGuard>> {
    let Some(scans) = state.config().get_extension::<PreparedScans>() else {
        return Ok(None);
    };
    let mut finder = Finder {
        scans: &scans,
        found: Vec::new(),
        error: None,
    };
    visit_statement(statement, &mut finder);
    if let Some(e) = finder.error {
        return Err(e);
    }
    let found = finder.found;
    let guard = PreparedGuard {
        scans: scans.clone(),
        keys: found.iter().map(|(k, _)| k.clone()).collect(),
    };
    for (key, request) in found {
        let table = FileTable::open(state, &request).await?;
        scans.insert(key, Arc::new(table));
    }
    Ok(Some(guard))
}

fn visit_statement(statement: &mut DfStatement, finder: &mut Finder<'_>) {
    match statement {
        DfStatement::Statement(inner) => {
            let _ = inner.visit(finder);
        }
        DfStatement::CopyTo(copy) => {
            if let CopyToSource::Query(query) = &mut copy.source {
                let _ = query.visit(finder);
            }
        }
        DfStatement::Explain(explain) => visit_statement(&mut explain.statement, finder),
        _ => {}
    }
}

struct Finder<'a> {
    scans: &'a PreparedScans,
    found: Vec<(String, FileRequest)>,
    error: Option<SqlError>,
}

impl VisitorMut for Finder<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, args, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let request = match (args.as_ref(), single_ident(name)) {
            (Some(a), Some(ident)) if ident.quote_style.is_none() => {
                match function_format(&ident.value) {
                    Some(format) => request_of(&ident.value, format, &a.args),
                    None => return ControlFlow::Continue(()),
                }
            }
            (None, Some(ident)) if ident.quote_style == Some('\'') => path_request(&ident.value),
            _ => return ControlFlow::Continue(()),
        };
        match request {
            Ok(request) => {
                let n = self.scans.next.fetch_add(1, Ordering::Relaxed);
                let key = format!("tidelake-file-scan-{n}");
                *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(
                    request.format.function(),
                ))]);
                *args = Some(SqlTableFunctionArgs {
                    args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
                        Value::SingleQuotedString(key.clone()),
                    )))],
                    settings: None,
                });
                self.found.push((key, request));
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

fn single_ident(name: &ObjectName) -> Option<&Ident> {
    match name.0.as_slice() {
        [part] => part.as_ident(),
        _ => None,
    }
}

/// `FROM 'path'`: the format from the extension.
fn path_request(path: &str) -> Result<FileRequest> {
    let first = path.split(',').next().unwrap_or(path);
    let format = Format::from_path(first.trim_end_matches('/')).ok_or_else(|| {
        SqlError::InvalidParameter(format!(
            "cannot tell the format of '{path}' from its extension (.parquet, .csv, .tsv, .json, .jsonl, .ndjson): use read_parquet, read_csv or read_json"
        ))
    })?;
    Ok(FileRequest::new(vec![path.to_string()], format))
}

/// The arguments of a file function call.
fn request_of(function: &str, format: Format, args: &[FunctionArg]) -> Result<FileRequest> {
    let mut paths = None;
    let mut request = FileRequest::new(Vec::new(), format);
    for arg in args {
        let (name, value) = match arg {
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(value),
                ..
            } => (name.value.to_ascii_lowercase(), value),
            FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg: FunctionArgExpr::Expr(value),
                ..
            } => (name.value.to_ascii_lowercase(), value),
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            })) if matches!(left.as_ref(), Expr::Identifier(_)) => {
                let Expr::Identifier(name) = left.as_ref() else {
                    continue;
                };
                (name.value.to_ascii_lowercase(), right.as_ref())
            }
            FunctionArg::Unnamed(FunctionArgExpr::Expr(value)) if paths.is_none() => {
                paths = Some(path_list(function, value)?);
                continue;
            }
            other => {
                return Err(SqlError::InvalidParameter(format!(
                "{function}: unexpected argument '{other}' (a path, then options as name => value)"
            )))
            }
        };
        let value = setting_value(function, &name, value)?;
        let known = match name.as_str() {
            "hive_partitioning" => {
                request.hive = Some(value.as_bool(&name)?);
                true
            }
            _ if format == Format::Csv => apply_csv_setting(&mut request.csv, &name, &value)?,
            _ => false,
        };
        if !known {
            let supported = match format {
                Format::Csv => "header, delim, quote, escape, hive_partitioning",
                _ => "hive_partitioning",
            };
            return Err(SqlError::InvalidParameter(format!(
                "{function}: unknown option '{name}' (supported: {supported})"
            )));
        }
    }
    request.paths = paths.ok_or_else(|| {
        SqlError::InvalidParameter(format!(
            "{function} needs a path: {function}('file, folder or glob')"
        ))
    })?;
    Ok(request)
}

fn path_list(function: &str, value: &Expr) -> Result<Vec<String>> {
    let text = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    if let Some(path) = text(value) {
        return Ok(vec![path]);
    }
    if let Expr::Array(array) = value {
        let paths: Option<Vec<String>> = array.elem.iter().map(text).collect();
        if let Some(paths) = paths.filter(|p| !p.is_empty()) {
            return Ok(paths);
        }
    }
    Err(SqlError::InvalidParameter(format!(
        "{function}: the path must be a string literal or a list of them, not '{value}'"
    )))
}

fn setting_value(function: &str, name: &str, value: &Expr) -> Result<SettingValue> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::Boolean(b) => return Ok(SettingValue::Bool(*b)),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                return Ok(SettingValue::Text(s.clone()))
            }
            Value::Number(n, _) => return Ok(SettingValue::Text(n.clone())),
            _ => {}
        },
        Expr::Identifier(ident) => return Ok(SettingValue::Text(ident.value.clone())),
        _ => {}
    }
    Err(SqlError::InvalidParameter(format!(
        "{function}: option '{name}' must be a literal, not '{value}'"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn args_of(sql: &str) -> Vec<FunctionArg> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let mut found = None;
        struct Grab<'a>(&'a mut Option<Vec<FunctionArg>>);
        impl datafusion::sql::sqlparser::ast::Visitor for Grab<'_> {
            type Break = ();
            fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
                if let TableFactor::Table { args: Some(a), .. } = f {
                    *self.0 = Some(a.args.clone());
                }
                ControlFlow::Continue(())
            }
        }
        use datafusion::sql::sqlparser::ast::Visit;
        let _ = statement.visit(&mut Grab(&mut found));
        found.unwrap()
    }

    #[test]
    fn options_take_both_spellings() {
        let args = args_of("SELECT * FROM read_csv('a.csv', header => false, delim = ';')");
        let r = request_of("read_csv", Format::Csv, &args).unwrap();
        assert_eq!(r.paths, vec!["a.csv".to_string()]);
        assert_eq!(r.csv.header, Some(false));
        assert_eq!(r.csv.delimiter, Some(b';'));
        let args = args_of(
            "SELECT * FROM read_parquet(['a.parquet', 'b.parquet'], hive_partitioning => true)",
        );
        let r = request_of("read_parquet", Format::Parquet, &args).unwrap();
        assert_eq!(r.paths.len(), 2);
        assert_eq!(r.hive, Some(true));
        let args = args_of("SELECT * FROM read_json('a.json', header => true)");
        let e = request_of("read_json", Format::Json, &args).unwrap_err();
        assert!(e.to_string().contains("unknown option 'header'"), "{e}");
    }
}
