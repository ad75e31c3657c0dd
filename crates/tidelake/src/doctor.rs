//! `tidelake doctor` and `tidelake advise`, and the doctor's tables in SQL
//! (`sys.doctor`, `db."t$health"`) through a session extension. The
//! diagnosis itself is `tidelake-doctor`'s; this file parses arguments,
//! prints reports and serves them as tables.

use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use clap::ValueEnum;
use datafusion::datasource::{MemTable, TableProvider};
use tidelake_doctor::{DoctorError, Report, Target};
use tidelake_sql::{Session, SessionExtension, SqlError};

pub const DOCTOR_HELP: &str = "\
Examples:
  tidelake doctor                         (every table of the warehouse)
  tidelake doctor db.orders --format json
  tidelake doctor --explain small-files   (what a rule checks; --explain list: all rules)
  tidelake doctor --fix --dry-run db      (what --fix would do)
  tidelake doctor --fix db.orders         (compaction, expiration, orphan removal, manifest merge)
  tidelake advise db.orders               (option advice)
From SQL: SELECT * FROM sys.doctor; SELECT * FROM db.\"orders$health\";
Rules, thresholds and the score formula: docs/doctor.md.";

/// How the doctor prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    /// Scores per table, then findings with evidence, cause and fix.
    Table,
    /// The whole report as JSON (identical for identical metadata).
    Json,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// What to diagnose: db.table, db, or nothing for the whole warehouse
    target: Option<String>,
    #[arg(long, value_enum, default_value_t = DoctorFormat::Table)]
    format: DoctorFormat,
    /// Explain a rule (its id, e.g. small-files; `list` for all) and exit
    #[arg(long, value_name = "RULE")]
    explain: Option<String>,
    /// Apply the safe fixes (compaction, expiration within the table's
    /// retention, orphan removal past one day, manifest merge); others stay
    /// advice
    #[arg(long)]
    fix: bool,
    /// With --fix: print what would be done, change nothing
    #[arg(long, requires = "fix")]
    dry_run: bool,
    /// Judge as of this time (epoch milliseconds) instead of now
    #[arg(long, hide = true, env = "TIDELAKE_DOCTOR_NOW")]
    now: Option<i64>,
}

#[derive(Debug, clap::Args)]
pub struct AdviseArgs {
    /// The table, as db.table
    table: String,
    #[arg(long, value_enum, default_value_t = DoctorFormat::Table)]
    format: DoctorFormat,
    /// Judge as of this time (epoch milliseconds) instead of now
    #[arg(long, hide = true, env = "TIDELAKE_DOCTOR_NOW")]
    now: Option<i64>,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn fail(e: &DoctorError) -> ExitCode {
    crate::print_error("doctor", e);
    ExitCode::FAILURE
}

async fn open(warehouse: &str) -> Result<Session, ExitCode> {
    Session::open(warehouse).await.map_err(|e| {
        crate::report(&e);
        ExitCode::FAILURE
    })
}

fn explain(rule: &str) -> ExitCode {
    if rule == "list" {
        for r in tidelake_doctor::RULES {
            println!("{:<26} {:<12} {}", r.id, r.category.as_str(), r.what);
        }
        return ExitCode::SUCCESS;
    }
    match tidelake_doctor::explain(rule) {
        Some(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        None => fail(&DoctorError::UnknownRule(rule.to_string())),
    }
}

pub async fn run_doctor(warehouse: &str, args: DoctorArgs) -> ExitCode {
    if let Some(rule) = &args.explain {
        return explain(rule);
    }
    let target = match Target::parse(args.target.as_deref().unwrap_or("")) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let session = match open(warehouse).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = args.now.unwrap_or_else(now_millis);
    let catalog = session.catalog();
    let report = match tidelake_doctor::diagnose(catalog, &target, now).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if !args.fix {
        return print_report(&report, args.format);
    }
    let actions =
        match tidelake_doctor::apply_fixes(catalog, &report.tables, args.dry_run, now).await {
            Ok(a) => a,
            Err(e) => return fail(&e),
        };
    match args.format {
        DoctorFormat::Json => match tidelake_doctor::render_json(&actions) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(&e),
        },
        DoctorFormat::Table => {
            if actions.is_empty() {
                println!("Nothing to fix.");
            }
            for a in &actions {
                let verb = if args.dry_run { "would" } else { "did" };
                println!("{} {}: {verb} {}", a.rule, a.scope, a.action);
                if let Some(outcome) = &a.outcome {
                    println!("  -> {outcome}");
                }
            }
            let advice = report.findings().into_iter().filter(|f| !f.fixable).count();
            if advice > 0 {
                println!("{advice} finding(s) are advice only: see `tidelake doctor`.");
            }
        }
    }
    ExitCode::SUCCESS
}

fn print_report(report: &Report, format: DoctorFormat) -> ExitCode {
    match format {
        DoctorFormat::Table => print!("{}", tidelake_doctor::render_text(report)),
        DoctorFormat::Json => match tidelake_doctor::render_json(report) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(&e),
        },
    }
    ExitCode::SUCCESS
}

pub async fn run_advise(warehouse: &str, args: AdviseArgs) -> ExitCode {
    let id = match Target::parse(&args.table) {
        Ok(Target::Table(id)) => id,
        Ok(_) => {
            return fail(&DoctorError::Target(format!(
                "advise needs db.table, not '{}'",
                args.table
            )))
        }
        Err(e) => return fail(&e),
    };
    let session = match open(warehouse).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = args.now.unwrap_or_else(now_millis);
    let facts = match tidelake_doctor::observe(session.catalog(), &id, now).await {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let advice = tidelake_doctor::advise(&facts);
    match args.format {
        DoctorFormat::Json => match tidelake_doctor::render_json(&advice) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(&e),
        },
        DoctorFormat::Table => {
            if advice.is_empty() {
                println!("{id}: no option changes recommended.");
            }
            for a in &advice {
                println!(
                    "{id}: '{}' = '{}'  (now '{}')",
                    a.option, a.recommended, a.current
                );
                println!("  effect:   {}", a.effect);
                let evidence: Vec<String> = a
                    .evidence
                    .iter()
                    .map(|e| format!("{}={}", e.metric, e.value))
                    .collect();
                println!("  evidence: {}", evidence.join(", "));
            }
        }
    }
    ExitCode::SUCCESS
}

/// Serves `sys.doctor` (every finding of the warehouse) and
/// `db."t$health"` (a table's scores) to SQL sessions.
#[derive(Debug, Default)]
pub struct DoctorExtension;

fn sql_error(e: DoctorError) -> SqlError {
    match e {
        DoctorError::Engine(e) => SqlError::from(*e),
        DoctorError::Table { source, .. } => SqlError::from(*source),
        other => SqlError::Execution(other.to_string()),
    }
}

fn mem_table(batch: arrow::array::RecordBatch) -> Result<Option<Arc<dyn TableProvider>>, SqlError> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])
        .map_err(|e| SqlError::Internal(e.to_string()))?;
    Ok(Some(Arc::new(table)))
}

#[async_trait]
impl SessionExtension for DoctorExtension {
    async fn table(
        &self,
        catalog: &tidelake_doctor::Catalog,
        database: &str,
        name: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, SqlError> {
        if database == "sys" && name == "doctor" {
            let report = tidelake_doctor::diagnose(catalog, &Target::Warehouse, now_millis())
                .await
                .map_err(sql_error)?;
            return mem_table(tidelake_doctor::findings_batch(&report).map_err(sql_error)?);
        }
        let Some(table) = name.strip_suffix("$health") else {
            return Ok(None);
        };
        let Target::Table(id) = Target::parse(&format!("{database}.{table}")).map_err(sql_error)?
        else {
            return Ok(None);
        };
        let report = tidelake_doctor::diagnose_table(catalog, &id, now_millis())
            .await
            .map_err(sql_error)?;
        mem_table(tidelake_doctor::health_batch(&[report]).map_err(sql_error)?)
    }
}

/// The extensions every session of the binary gets.
pub fn extensions() -> Vec<Arc<dyn SessionExtension>> {
    vec![Arc::new(DoctorExtension)]
}
