//! Runs every `tests/slt/*.slt` file, each on a fresh warehouse in a
//! temporary directory. `cargo test -p tidelake-sql --test sqllogictest --
//! <substring>` runs only the files whose name contains the substring.
//!
//! Errors print as `[SQLSTATE] message`, so files can pin both the code and
//! the message: `statement error \[42P01\] table 'default.x' does not exist`.
//! `$WAREHOUSE` (after `control substitution on`) is the warehouse path,
//! `$FILES` an empty folder for files the test writes (COPY TO), and
//! `$DATA` the folder of shipped input files (`tests/data`).
//! Values print as text; NULL as `NULL`, the empty string as `(empty)`. A
//! one-column row whose value spans lines (SHOW CREATE TABLE) becomes one
//! row per line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tidelake_sql::{Session, SqlError, StatementResult};

#[derive(Debug)]
struct HarnessError(SqlError);

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.0.code(), self.0)
    }
}

impl std::error::Error for HarnessError {}

struct TidelakeDb {
    session: Session,
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            DefaultColumnType::FloatingPoint
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, HarnessError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HarnessError(e.into()))?;
        for row in 0..batch.num_rows() {
            let values = formatters
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| {
                    let text = f.value(row).to_string();
                    if text.is_empty() && !c.is_null(row) {
                        "(empty)".to_string()
                    } else {
                        text
                    }
                })
                .collect::<Vec<String>>();
            match values.as_slice() {
                [single] if single.contains('\n') => {
                    rows.extend(single.lines().map(|l| vec![l.to_string()]))
                }
                _ => rows.push(values),
            }
        }
    }
    Ok(rows)
}

#[async_trait]
impl AsyncDB for TidelakeDb {
    type Error = HarnessError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, HarnessError> {
        let mut results = self.session.execute(sql).await.map_err(HarnessError)?;
        match results.pop() {
            Some(StatementResult::Rows { schema, batches }) => Ok(DBOutput::Rows {
                types: schema
                    .fields()
                    .iter()
                    .map(|f| column_type(f.data_type()))
                    .collect(),
                rows: rows_of(&batches)?,
            }),
            Some(StatementResult::Status(status)) => {
                Ok(DBOutput::StatementComplete(status.rows.unwrap_or(0)))
            }
            None => Ok(DBOutput::StatementComplete(0)),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "tidelake"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }

    fn error_sql_state(err: &HarnessError) -> Option<String> {
        Some(err.0.code().to_string())
    }
}

async fn run_file(path: &Path) -> Result<(), String> {
    let dir =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let warehouse = dir.path().join("warehouse").to_string_lossy().to_string();
    let warehouse_var = warehouse.clone();
    let mut runner = sqllogictest::Runner::new(move || {
        let warehouse = warehouse.clone();
        async move {
            Session::open(&warehouse)
                .await
                .map(|session| TidelakeDb { session })
                .map_err(HarnessError)
        }
    });
    // For `system` commands that damage the warehouse on purpose
    // (`control substitution on`, then `$WAREHOUSE`).
    runner.set_var("WAREHOUSE".to_string(), warehouse_var);
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files)
        .map_err(|e| format!("cannot create {}: {e}", files.display()))?;
    runner.set_var("FILES".to_string(), files.to_string_lossy().to_string());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    runner.set_var("DATA".to_string(), data.to_string_lossy().to_string());
    runner
        .run_file_async(path)
        .await
        .map_err(|e| e.display(true).to_string())
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "slt"));
    files.sort();
    files
}

/// The libtest listing protocol that cargo-nextest asks test binaries for:
/// `--list --format terse` prints one `name: test` line per test (here, one
/// per `.slt` file); with `--ignored` there are none.
fn list(args: &[String]) -> ExitCode {
    if !args.iter().any(|a| a == "--ignored") {
        for file in slt_files() {
            if let Some(name) = file.file_name() {
                println!("{}: test", name.to_string_lossy());
            }
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return list(&args);
    }
    // Arguments cargo passes to test binaries (e.g. --nocapture, --exact)
    // are not filters.
    let filters: Vec<String> = args.into_iter().filter(|a| !a.starts_with('-')).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = slt_files();
    if files.is_empty() {
        eprintln!("no .slt files found under tests/slt");
        return ExitCode::FAILURE;
    }
    let mut failed = 0;
    let mut ran = 0;
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        match runtime.block_on(run_file(&file)) {
            Ok(()) => println!("ok      {name}"),
            Err(e) => {
                failed += 1;
                println!("FAILED  {name}\n{e}\n");
            }
        }
    }
    println!("\n{ran} files, {} passed, {failed} failed", ran - failed);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
