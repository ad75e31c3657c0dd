//! A SQL session over one warehouse: the current database, DataFusion's
//! state, and the statement loop (our DDL parser for Paimon's DDL shape,
//! DataFusion for queries and DML).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::Dialect;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{Expr, LogicalPlan, WriteOp};
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::Token;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tidelake_engine::{Catalog, Identifier, TableSpec, DEFAULT_DATABASE};

use crate::catalog::{load_provider, TidelakeCatalog};
use crate::ddl::{is_ddl, parse_ddl, CreateTable, DdlStatement, TableName};
use crate::describe::{create_statement, describe_batch, names_batch};
use crate::dml::execute_dml;
use crate::error::{Result, SqlError};
use crate::extension::{Extensions, SessionExtension, StatementContext};
use crate::insert::plan_insert_around_nested_values;
use crate::lexer::{shift_position, split_statements, RawStatement};
use crate::lookup::PreparedPoint;
use crate::progress::StatementProgress;
pub use crate::result::{CommandStatus, StatementResult};
use crate::retry;

/// The name of the warehouse's catalog in DataFusion (`tidelake.db.table`).
pub const CATALOG_NAME: &str = "tidelake";

/// The rows of a query as they are produced.
pub struct QueryStream {
    pub schema: SchemaRef,
    pub stream: BoxStream<'static, Result<RecordBatch>>,
}

impl QueryStream {
    pub async fn collect(self) -> Result<StatementResult> {
        let batches: Vec<RecordBatch> = self.stream.try_collect().await?;
        Ok(StatementResult::Rows {
            schema: self.schema,
            batches,
        })
    }
}

impl fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryStream")
            .field("schema", &self.schema)
            .finish()
    }
}

/// The outcome of one statement, with a query's rows still to be read.
#[derive(Debug)]
pub enum StreamingResult {
    Rows(QueryStream),
    Status(CommandStatus),
}

impl StreamingResult {
    pub async fn collect(self) -> Result<StatementResult> {
        match self {
            StreamingResult::Rows(q) => q.collect().await,
            StreamingResult::Status(s) => Ok(StatementResult::Status(s)),
        }
    }
}

/// A complete result, as a stream.
fn streaming(result: StatementResult) -> StreamingResult {
    match result {
        StatementResult::Rows { schema, batches } => StreamingResult::Rows(QueryStream {
            schema,
            stream: futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
        }),
        StatementResult::Status(s) => StreamingResult::Status(s),
    }
}

/// What protocol servers and the command line need from a SQL session.
#[async_trait]
pub trait QueryHandler: Send + Sync {
    /// Runs every statement of `sql` in order and returns their results;
    /// stops at the first failing statement.
    async fn execute(&self, sql: &str) -> Result<Vec<StatementResult>>;

    /// Runs one statement, returning a query's rows as a stream.
    async fn execute_stream(&self, sql: &str) -> Result<StreamingResult>;

    /// The database unqualified table names refer to.
    fn current_database(&self) -> String;

    /// `sql` (one statement with `$n` parameters, as a wire protocol's
    /// prepared statement holds it) planned once as a primary-key point
    /// query, when it is one (see [`PreparedPoint`]); `None` otherwise, and
    /// the statement runs the normal way with its parameters in place.
    async fn prepare_point(&self, sql: &str) -> Option<Arc<PreparedPoint>>;
}

/// The DataFusion configuration of a session's statements, with `database`
/// current: PostgreSQL's dialect, decimal literals, `information_schema`.
/// Contexts outside a session (streaming queries, continuous jobs) start
/// from it so that their SQL means what the session's does; the default
/// catalog and database are created empty for them to register tables in.
pub fn sql_config(database: &str) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG_NAME, database)
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(true);
    config.options_mut().sql_parser.dialect = Dialect::PostgreSQL;
    // `12.50` is an exact numeric, as in PostgreSQL, not a float.
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    config
}

/// How a session is built.
#[derive(Default)]
pub struct SessionOptions {
    /// What crates beside the SQL layer add (see [`crate::extension`]).
    pub extensions: Vec<Arc<dyn SessionExtension>>,
    /// The memory the session's statements may use at once, in bytes
    /// (`None`: no limit). A server runs one statement per session at a
    /// time, so this is a per-query limit there.
    pub memory_limit: Option<usize>,
}

/// A SQL session over one warehouse.
pub struct Session {
    catalog: Catalog,
    tidelake: Arc<TidelakeCatalog>,
    ctx: SessionContext,
    progress: Arc<StatementProgress>,
    extensions: Extensions,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("warehouse", &self.catalog.warehouse_uri())
            .field("database", &self.current_database())
            .finish()
    }
}

impl Session {
    /// Opens the warehouse at `warehouse_uri` (a path, `file://`, `memory://` or `s3://` URI).
    pub async fn open(warehouse_uri: &str) -> Result<Session> {
        let catalog = Catalog::open(warehouse_uri).await?;
        Session::with_catalog(catalog).await
    }

    /// A session over an already opened catalog (one per connection).
    pub async fn with_catalog(catalog: Catalog) -> Result<Session> {
        Session::with_extensions(catalog, Vec::new()).await
    }

    /// A session whose statements may also use what `extensions` add
    /// (functions, tables, statements; see [`crate::extension`]).
    pub async fn with_extensions(
        catalog: Catalog,
        extensions: Vec<Arc<dyn SessionExtension>>,
    ) -> Result<Session> {
        let options = SessionOptions {
            extensions,
            ..SessionOptions::default()
        };
        Session::with_options(catalog, options).await
    }

    /// A session with `options` (extensions, a memory limit).
    pub async fn with_options(catalog: Catalog, options: SessionOptions) -> Result<Session> {
        let SessionOptions {
            extensions,
            memory_limit,
        } = options;
        let extensions: Extensions = Arc::new(extensions);
        let config = sql_config(DEFAULT_DATABASE).with_create_default_catalog_and_schema(false);
        let mut config = config;
        let progress = Arc::new(StatementProgress::default());
        crate::progress::attach(&mut config, progress.clone());
        let mut runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(crate::files::FileStores::new(catalog.clone())));
        if let Some(bytes) = memory_limit {
            // Shared fairly by the operators that can spill (to the OS temp
            // directory); one that cannot fails with ResourcesExhausted (53200).
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(bytes)));
        }
        let runtime = runtime.build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        crate::file_scans::register(&ctx);
        for extension in extensions.iter() {
            extension.register(&ctx, &catalog)?;
        }
        let tidelake = Arc::new(TidelakeCatalog::with_extensions(
            catalog.clone(),
            extensions.clone(),
        ));
        tidelake.refresh().await?;
        ctx.register_catalog(CATALOG_NAME, tidelake.clone());
        Ok(Session {
            catalog,
            tidelake,
            ctx,
            progress,
            extensions,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The progress of the statement this session is running (reset as
    /// each statement starts), for a caller to show while it waits.
    pub fn progress(&self) -> Arc<StatementProgress> {
        self.progress.clone()
    }

    pub fn current_database(&self) -> String {
        self.ctx
            .state_ref()
            .read()
            .config()
            .options()
            .catalog
            .default_schema
            .clone()
    }

    fn set_current_database(&self, name: &str) {
        self.ctx
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .catalog
            .default_schema = name.to_string();
    }

    /// Splits a script into statement texts (`;`-separated, comments and
    /// quotes respected), for callers that run them one at a time.
    pub fn split(sql: &str) -> Result<Vec<String>> {
        Ok(split_statements(sql)?.into_iter().map(|s| s.text).collect())
    }

    /// Runs every statement of `sql`, handing each result to `on_result` as
    /// soon as it is complete; stops at the first error. Returns how many
    /// statements ran.
    pub async fn execute_each(
        &self,
        sql: &str,
        on_result: &mut (dyn FnMut(StatementResult) + Send),
    ) -> Result<usize> {
        let statements = split_statements(sql)?;
        for statement in &statements {
            let result = self.run_to_completion(statement).await?;
            on_result(result);
        }
        Ok(statements.len())
    }

    pub async fn execute(&self, sql: &str) -> Result<Vec<StatementResult>> {
        let mut results = Vec::new();
        self.execute_each(sql, &mut |r| results.push(r)).await?;
        Ok(results)
    }

    pub async fn execute_stream(&self, sql: &str) -> Result<StreamingResult> {
        let mut statements = split_statements(sql)?;
        match statements.len() {
            0 => Err(SqlError::syntax("no statement was given", None)),
            1 => {
                let statement = statements.remove(0);
                if retry::is_write(&statement) {
                    // A write is done when it commits: run it to the end,
                    // again if it loses a commit race.
                    Ok(streaming(self.run_to_completion(&statement).await?))
                } else {
                    self.run(&statement).await
                }
            }
            n => Err(SqlError::syntax(
                format!("expected one statement, found {n}"),
                None,
            )),
        }
    }

    /// `sql` planned once as a point query with parameters, when it is one
    /// (see [`PreparedPoint`]). Only a plain `SELECT` is considered; any
    /// error in parsing or planning it only means it is not one (the normal
    /// path reports the error when the statement runs).
    pub async fn prepare_point(&self, sql: &str) -> Option<PreparedPoint> {
        let mut statements = split_statements(sql).ok()?;
        if statements.len() != 1 {
            return None;
        }
        let statement = statements.remove(0);
        let select = matches!(
            statement.tokens.first().map(|t| &t.token),
            Some(Token::Word(w)) if w.keyword == Keyword::SELECT
        );
        if !select {
            return None;
        }
        let text = statement.text_for_datafusion();
        if crate::hints::apply_branch_hints(&text).ok()?.is_some() {
            return None;
        }
        let dialect = PostgreSqlDialect {};
        let mut parsed = DFParserBuilder::new(text.as_str())
            .with_dialect(&dialect)
            .build()
            .and_then(|mut p| p.parse_statements())
            .ok()?;
        if parsed.len() != 1 {
            return None;
        }
        let mut parsed = parsed.pop_front()?;
        exponent_literals_as_double(&mut parsed);
        let plan = self.ctx.state().statement_to_plan(parsed).await.ok()?;
        PreparedPoint::recognise(&plan, &self.catalog, &self.current_database())
    }

    /// Runs a statement and collects its result; a write statement that
    /// loses a commit race runs again (see [`crate::retry`]).
    async fn run_to_completion(&self, statement: &RawStatement) -> Result<StatementResult> {
        self.progress.reset();
        if !retry::is_write(statement) {
            return self.run(statement).await?.collect().await;
        }
        let mut retries = 0;
        loop {
            self.set_statement_attempt(retries);
            let result = async { self.run(statement).await?.collect().await }.await;
            match result {
                Err(SqlError::CommitConflict(message))
                    if retries < retry::MAX_STATEMENT_RETRIES =>
                {
                    retries += 1;
                    tracing::info!(
                        retry = retries,
                        "commit conflict, running the statement again: {message}"
                    );
                    tokio::time::sleep(retry::backoff(retries)).await;
                }
                other => {
                    self.set_statement_attempt(0);
                    return other;
                }
            }
        }
    }

    fn set_statement_attempt(&self, retries: u32) {
        self.ctx
            .state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(retry::StatementAttempt { retries }));
    }

    async fn run(&self, statement: &RawStatement) -> Result<StreamingResult> {
        tracing::debug!(sql = %statement.text, "running statement");
        let context = StatementContext {
            catalog: &self.catalog,
            ctx: &self.ctx,
            database: self.current_database(),
        };
        for extension in self.extensions.iter() {
            if let Some(result) = extension.statement(&context, &statement.text).await {
                return Ok(streaming(result?));
            }
        }
        if crate::procedures::is_call(&statement.text) {
            let result = crate::procedures::run_call(
                &self.catalog,
                &self.current_database(),
                &statement.text,
            )
            .await?;
            return Ok(streaming(result));
        }
        if crate::views::is_view_statement(statement) {
            let database = self.current_database();
            let result =
                crate::views::run_view_statement(&self.ctx, &self.tidelake, &database, statement)
                    .await?;
            return Ok(streaming(result));
        }
        if crate::copy::is_copy(statement) {
            match crate::copy::parse(statement)? {
                crate::copy::Copy::From(copy) => {
                    let (state, database) = (self.ctx.state(), self.current_database());
                    let rows =
                        crate::copy::copy_from(&state, &self.catalog, &database, copy).await?;
                    return Ok(StreamingResult::Status(CommandStatus::with_rows(
                        "COPY", rows,
                    )));
                }
                crate::copy::Copy::To(text) => {
                    let mut rewritten = split_statements(&text)?;
                    if let Some(mut copy) = rewritten.pop() {
                        copy.start = statement.start;
                        return self.run_datafusion(&copy).await;
                    }
                }
                crate::copy::Copy::DataFusion => {}
            }
        }
        if crate::partitions::is_partition_statement(statement) {
            let parsed = crate::partitions::parse_partition_statement(statement)?;
            let result = crate::partitions::run_partition_statement(
                &self.catalog,
                &self.current_database(),
                parsed,
            )
            .await?;
            return Ok(streaming(result));
        }
        if is_ddl(statement) {
            let ddl = parse_ddl(statement)?;
            self.run_ddl(ddl).await
        } else {
            self.run_datafusion(statement).await
        }
    }

    pub(crate) fn identifier(&self, name: &TableName) -> Identifier {
        let database = name
            .database
            .clone()
            .unwrap_or_else(|| self.current_database());
        Identifier::new(database, name.table.clone())
    }

    async fn run_ddl(&self, ddl: DdlStatement) -> Result<StreamingResult> {
        let status = |c| Ok(StreamingResult::Status(CommandStatus::new(c)));
        match ddl {
            DdlStatement::CreateDatabase {
                name,
                if_not_exists,
            } => {
                self.catalog.create_database(&name, if_not_exists).await?;
                self.tidelake.refresh().await?;
                status("CREATE DATABASE")
            }
            DdlStatement::DropDatabase {
                name,
                if_exists,
                cascade,
            } => {
                if name == self.current_database() && name != DEFAULT_DATABASE {
                    return Err(SqlError::Plan(format!(
                        "cannot drop database '{name}' while it is the current database (USE another one first)"
                    )));
                }
                self.catalog
                    .drop_database(&name, if_exists, cascade)
                    .await?;
                self.tidelake.refresh().await?;
                status("DROP DATABASE")
            }
            DdlStatement::Use { database } => {
                if !self.catalog.database_exists(&database).await? {
                    return Err(SqlError::UndefinedDatabase(database));
                }
                self.set_current_database(&database);
                status("USE")
            }
            DdlStatement::ShowDatabases => {
                let names = self.tidelake.refresh().await?;
                rows(names_batch("database_name", &names)?)
            }
            DdlStatement::ShowTables { database } => {
                let database = database.unwrap_or_else(|| self.current_database());
                let names = self.tidelake.database(&database).refresh().await?;
                rows(names_batch("table_name", &names)?)
            }
            DdlStatement::Describe { name } => {
                let id = self.identifier(&name);
                let provider = load_provider(&self.catalog, &id.database, &id.table).await?;
                rows(describe_batch(provider.table().schema())?)
            }
            DdlStatement::ShowCreateTable { name } => {
                let id = self.identifier(&name);
                let provider = load_provider(&self.catalog, &id.database, &id.table).await?;
                let sql = create_statement(&id.database, &id.table, provider.table().schema());
                rows(names_batch("create_statement", &[sql])?)
            }
            DdlStatement::CreateTable(create)
                if create.query.is_some() || create.like.is_some() =>
            {
                let status = crate::create_from::create_table_from(self, create).await?;
                Ok(StreamingResult::Status(status))
            }
            DdlStatement::RenameTable { from, to } => {
                crate::create_from::rename_table(self, &from, &to).await?;
                status("ALTER TABLE")
            }
            DdlStatement::CreateTable(create) => {
                self.create_table(create).await?;
                status("CREATE TABLE")
            }
            DdlStatement::DropTable { name, if_exists } => {
                let id = self.identifier(&name);
                self.catalog.drop_table(&id, if_exists).await?;
                status("DROP TABLE")
            }
            DdlStatement::AlterTable { name, changes } => {
                let id = self.identifier(&name);
                self.catalog.alter_table(&id, changes).await?;
                status("ALTER TABLE")
            }
        }
    }

    pub(crate) async fn create_table(&self, create: CreateTable) -> Result<()> {
        let id = self.identifier(&create.name);
        let (columns, primary_keys) = create.columns_and_key()?;
        let mut seen = std::collections::HashSet::new();
        for c in &columns {
            if !seen.insert(c.name.as_str()) {
                return Err(SqlError::DuplicateColumn(format!(
                    "column '{}' is declared twice",
                    c.name
                )));
            }
        }
        for (what, keys) in [
            ("primary key", &primary_keys),
            ("partition", &create.partition_keys),
        ] {
            if let Some(missing) = keys.iter().find(|k| !seen.contains(k.as_str())) {
                return Err(SqlError::UndefinedColumn(format!(
                    "{what} column '{missing}' is not a column of table '{id}'"
                )));
            }
        }
        if !self.catalog.database_exists(&id.database).await? {
            return Err(SqlError::UndefinedDatabase(id.database));
        }
        let mut options = create.options;
        if let Some((column, expr)) = &create.watermark {
            let spec = columns.iter().find(|c| &c.name == column).ok_or_else(|| {
                SqlError::UndefinedColumn(format!(
                    "the watermark is on column '{column}', which is not a column of table '{id}'"
                ))
            })?;
            crate::watermark::check_event_time_type(
                &spec.data_type.to_arrow(),
                &spec.data_type.to_string(),
                column,
                &id.to_string(),
            )?;
            for (key, value) in
                crate::watermark::watermark_options(column, expr, &spec.data_type.to_string())?
            {
                if options.contains_key(&key) {
                    return Err(SqlError::InvalidParameter(format!(
                        "the WATERMARK clause and option '{key}' both set the watermark; keep one"
                    )));
                }
                options.insert(key, value);
            }
        }
        let spec = TableSpec {
            columns,
            primary_keys,
            partition_keys: create.partition_keys,
            options,
            comment: create.comment,
        };
        self.catalog
            .create_table(&id, spec, create.if_not_exists)
            .await?;
        Ok(())
    }

    pub(crate) async fn run_datafusion(&self, statement: &RawStatement) -> Result<StreamingResult> {
        let mut text = statement.text_for_datafusion();
        if let Some(hinted) = crate::hints::apply_branch_hints(&text)? {
            text = hinted;
        }
        let static_partition = crate::partitions::strip_insert_partition(&text)
            .map_err(|e| in_script(e, statement))?
            .map(|(rest, spec)| {
                text = rest;
                spec
            });
        let dialect = PostgreSqlDialect {};
        let parsed = DFParserBuilder::new(text.as_str())
            .with_dialect(&dialect)
            .build()
            .and_then(|mut p| p.parse_statements())
            .map_err(|e| in_script(SqlError::from(e), statement))?;
        let mut parsed: Vec<DfStatement> = parsed.into_iter().collect();
        if parsed.len() != 1 {
            return Err(SqlError::Internal(format!(
                "one statement was split into {}",
                parsed.len()
            )));
        }
        let mut parsed = parsed.remove(0);
        exponent_literals_as_double(&mut parsed);
        if let DfStatement::CreateExternalTable(_) = parsed {
            return Err(SqlError::Unsupported(
                "CREATE EXTERNAL TABLE is not supported: tables live in the warehouse (read files with read_parquet, read_csv, read_json or FROM 'path')"
                    .into(),
            ));
        }
        let state = self.ctx.state();
        let _scans = crate::file_scans::prepare(&state, &mut parsed).await?;
        crate::builtins::refresh_for_introspection(&self.tidelake, &state, &parsed).await?;
        if let Some(spec) = static_partition {
            let rows =
                crate::partitions::run_partitioned_insert(&self.ctx, &state, &parsed, spec).await?;
            return Ok(StreamingResult::Status(CommandStatus::with_rows(
                "INSERT", rows,
            )));
        }
        let planned = async {
            match plan_insert_around_nested_values(&self.ctx, &state, &parsed).await? {
                Some(plan) => Ok(plan),
                None => Ok(state.statement_to_plan(parsed).await?),
            }
        };
        let plan = match planned.await {
            Ok(plan) => plan,
            Err(e) => return Err(crate::builtins::explain_missing_table(&self.catalog, e).await),
        };
        refuse_foreign_statements(&plan)?;
        // A primary-key point query skips optimizing and physical planning.
        if let Some(query) = crate::lookup::PointQuery::recognise(&plan) {
            return query.run().await;
        }
        if let Some(explained) = crate::lookup::explain(&plan) {
            return explained;
        }
        match &plan {
            LogicalPlan::Dml(dml)
                if matches!(
                    dml.op,
                    WriteOp::Delete | WriteOp::Update | WriteOp::Truncate
                ) =>
            {
                let command = match dml.op {
                    WriteOp::Update => "UPDATE",
                    WriteOp::Truncate => "TRUNCATE TABLE",
                    _ => "DELETE",
                };
                let rows = execute_dml(&state, dml).await?;
                if dml.op == WriteOp::Truncate {
                    return Ok(StreamingResult::Status(CommandStatus::new(command)));
                }
                Ok(StreamingResult::Status(CommandStatus::with_rows(
                    command, rows,
                )))
            }
            LogicalPlan::Copy(_) => {
                let batches = DataFrame::new(state, plan).collect().await?;
                Ok(StreamingResult::Status(CommandStatus::with_rows(
                    "COPY",
                    count_of(&batches)?,
                )))
            }
            LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::MergeInto(_)) => {
                let rows = crate::merge::execute_merge(&state, dml).await?;
                Ok(StreamingResult::Status(CommandStatus::with_rows(
                    "MERGE", rows,
                )))
            }
            LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => {
                let is_ours = datafusion::datasource::source_as_provider(&dml.target)
                    .is_ok_and(|p| p.downcast_ref::<crate::provider::TidelakeTable>().is_some());
                if !is_ours {
                    let kind = match datafusion::datasource::source_as_provider(&dml.target) {
                        Ok(p) if p.table_type() == datafusion::logical_expr::TableType::View => {
                            "a view"
                        }
                        _ => "a system table",
                    };
                    return Err(SqlError::Unsupported(format!(
                        "'{}' is {kind}: it can only be queried",
                        dml.table_name
                    )));
                }
                refuse_missing_values(dml)?;
                let batches = DataFrame::new(state, plan).collect().await?;
                Ok(StreamingResult::Status(CommandStatus::with_rows(
                    "INSERT",
                    count_of(&batches)?,
                )))
            }
            _ => {
                let frame = DataFrame::new(state, plan);
                let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
                let stream = frame
                    .execute_stream()
                    .await?
                    .map_err(SqlError::from)
                    .boxed();
                Ok(StreamingResult::Rows(QueryStream { schema, stream }))
            }
        }
    }
}

/// A syntax error's position in the statement, as a position in the script.
fn in_script(e: SqlError, statement: &RawStatement) -> SqlError {
    match e {
        SqlError::Syntax { message, position } => SqlError::Syntax {
            message,
            position: position.map(|p| shift_position(statement.start, p)),
        },
        other => other,
    }
}

fn rows(batch: RecordBatch) -> Result<StreamingResult> {
    let schema = batch.schema();
    Ok(StreamingResult::Rows(QueryStream {
        schema,
        stream: futures::stream::iter(vec![Ok(batch)]).boxed(),
    }))
}

/// DataFusion's own DDL and session statements would change only this
/// process's in-memory state (or write files outside the warehouse).
fn refuse_foreign_statements(plan: &LogicalPlan) -> Result<()> {
    match plan {
        LogicalPlan::Ddl(ddl) => Err(SqlError::Unsupported(format!(
            "{} is not supported (tables are created with CREATE TABLE in the warehouse)",
            words(ddl.name())
        ))),
        LogicalPlan::Statement(s) => Err(SqlError::Unsupported(format!(
            "{} is not supported",
            words(s.name())
        ))),
        LogicalPlan::Dml(dml) if dml.op == WriteOp::Ctas => Err(SqlError::Unsupported(
            "CREATE TABLE ... AS SELECT is not supported yet".into(),
        )),
        _ => Ok(()),
    }
}

/// Numeric literals are exact (DECIMAL) unless written with an exponent:
/// `12.50` keeps its digits, `1e-300` is a DOUBLE (as in Spark and Flink;
/// DECIMAL could not hold it).
fn exponent_literals_as_double(statement: &mut DfStatement) {
    use datafusion::sql::sqlparser::ast::{
        visit_expressions_mut, CastKind, DataType as SqlType, ExactNumberInfo, Expr as SqlExpr,
        Value,
    };
    match statement {
        DfStatement::Statement(inner) => {
            let _ = visit_expressions_mut(inner.as_mut(), |expr| {
                if let SqlExpr::Value(v) = expr {
                    if let Value::Number(n, _) = &v.value {
                        if n.contains(['e', 'E']) {
                            *expr = SqlExpr::Cast {
                                kind: CastKind::Cast,
                                expr: Box::new(SqlExpr::Value(
                                    Value::SingleQuotedString(n.clone()).with_empty_span(),
                                )),
                                data_type: SqlType::Double(ExactNumberInfo::None),
                                array: false,
                                format: None,
                            };
                        }
                    }
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
        }
        DfStatement::Explain(explain) => exponent_literals_as_double(&mut explain.statement),
        _ => {}
    }
}

/// `CreateView` as `CREATE VIEW`.
fn words(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Looks through aliases and casts.
fn strip_casts(mut expr: &Expr) -> &Expr {
    loop {
        expr = match expr {
            Expr::Alias(a) => a.expr.as_ref(),
            Expr::Cast(c) => c.expr.as_ref(),
            Expr::TryCast(c) => c.expr.as_ref(),
            _ => return expr,
        };
    }
}

fn is_null_literal(expr: &Expr) -> bool {
    matches!(strip_casts(expr), Expr::Literal(v, _) if v.is_null())
}

/// NULLs an INSERT would put into NOT NULL columns, found before any row is
/// written: columns left out of the column list (filled with NULL) and NULL
/// literals in VALUES.
fn refuse_missing_values(dml: &datafusion::logical_expr::DmlStatement) -> Result<()> {
    let LogicalPlan::Projection(projection) = dml.input.as_ref() else {
        return Ok(());
    };
    let provider = datafusion::datasource::source_as_provider(&dml.target).ok();
    let table = provider
        .as_ref()
        .and_then(|p| p.downcast_ref::<crate::provider::TidelakeTable>());
    let table_name = table
        .map(|t| t.table().identifier().to_string())
        .unwrap_or_else(|| dml.table_name.to_string());
    let is_key =
        |name: &str| table.is_some_and(|t| t.table().primary_keys().iter().any(|k| k == name));
    let values = match projection.input.as_ref() {
        LogicalPlan::Values(v) => Some(v),
        _ => None,
    };
    let schema = dml.target.schema();
    for (field, expr) in schema.fields().iter().zip(&projection.expr) {
        if field.is_nullable() {
            continue;
        }
        let not_null = |hint: &str| SqlError::NotNull {
            table: table_name.clone(),
            column: field.name().clone(),
            hint: hint.to_string(),
        };
        if is_null_literal(expr) {
            return Err(not_null(" (the INSERT gives it no value)"));
        }
        let (Some(values), Expr::Column(column)) = (values, strip_casts(expr)) else {
            continue;
        };
        let Some(index) = values.schema.index_of_column(column).ok() else {
            continue;
        };
        if values
            .values
            .iter()
            .any(|row| row.get(index).is_some_and(is_null_literal))
        {
            let hint = if is_key(field.name()) {
                " (primary key columns always need a value)"
            } else {
                ""
            };
            return Err(not_null(hint));
        }
    }
    Ok(())
}

fn count_of(batches: &[RecordBatch]) -> Result<u64> {
    let mut total = 0;
    for b in batches {
        let Some(counts) = b
            .columns()
            .first()
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        else {
            return Err(SqlError::Internal(
                "an INSERT did not report its row count".into(),
            ));
        };
        total += counts.iter().flatten().sum::<u64>();
        debug_assert!(counts.null_count() == 0);
    }
    Ok(total)
}

#[async_trait]
impl QueryHandler for Session {
    async fn execute(&self, sql: &str) -> Result<Vec<StatementResult>> {
        Session::execute(self, sql).await
    }

    async fn execute_stream(&self, sql: &str) -> Result<StreamingResult> {
        Session::execute_stream(self, sql).await
    }

    fn current_database(&self) -> String {
        Session::current_database(self)
    }

    async fn prepare_point(&self, sql: &str) -> Option<Arc<PreparedPoint>> {
        Session::prepare_point(self, sql).await.map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_names_read_as_sql() {
        assert_eq!(words("CreateView"), "CREATE VIEW");
        assert_eq!(words("TransactionStart"), "TRANSACTION START");
    }

    #[test]
    fn statuses_print_like_psql() {
        assert_eq!(
            CommandStatus::with_rows("INSERT", 3).to_string(),
            "INSERT 0 3"
        );
        assert_eq!(
            CommandStatus::with_rows("DELETE", 0).to_string(),
            "DELETE 0"
        );
        assert_eq!(
            CommandStatus::new("CREATE TABLE").to_string(),
            "CREATE TABLE"
        );
    }
}
