//! Reports as text (`--format table`), JSON (`--format json`, byte-identical
//! for the same metadata) and Arrow batches (`sys.doctor`, `t$health`).

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{DoctorError, Result};
use crate::{Report, TableReport};

/// The report as pretty JSON.
pub fn render_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| DoctorError::Render(e.to_string()))
}

/// The report as text: a score line per table, then each finding with its
/// evidence, cause and fix.
pub fn render_text(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<32} {:>5}  {:<11} {:>6} {:>6} {:>7} {:>9} {:>12} {:>9} {:>8}",
        "TABLE",
        "SCORE",
        "BAND",
        "LAYOUT",
        "LSM",
        "DELETES",
        "RETENTION",
        "DISTRIBUTION",
        "FRESHNESS",
        "FINDINGS"
    );
    for t in &report.tables {
        let h = &t.health;
        let _ = writeln!(
            s,
            "{:<32} {:>5.1}  {:<11} {:>6.1} {:>6.1} {:>7.1} {:>9.1} {:>12.1} {:>9.1} {:>8}",
            t.table,
            h.score,
            h.band.as_str(),
            h.layout,
            h.lsm,
            h.deletes,
            h.retention,
            h.distribution,
            h.freshness,
            t.findings.len()
        );
    }
    let _ = writeln!(
        s,
        "{:<32} {:>5.1}  {}",
        "(warehouse)",
        report.score,
        report.band.as_str()
    );
    let findings = report.findings();
    if findings.is_empty() {
        let _ = writeln!(s, "\nNo findings.");
        return s;
    }
    let _ = writeln!(s);
    for f in findings {
        let _ = writeln!(s, "{:<4} {}  {}", f.severity.as_str(), f.rule, f.scope());
        let _ = writeln!(s, "     evidence: {}", f.evidence_text());
        let _ = writeln!(s, "     cause:    {}", f.cause);
        let _ = writeln!(
            s,
            "     fix:      {}{}",
            f.fix,
            if f.fixable {
                "  [--fix applies it]"
            } else {
                "  [advice]"
            }
        );
    }
    s
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// `sys.doctor`: one row per finding.
pub fn findings_batch(report: &Report) -> Result<RecordBatch> {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        utf8("table_name", false),
        utf8("rule", false),
        utf8("severity", false),
        utf8("category", false),
        utf8("partition_name", true),
        Field::new("bucket", DataType::Int32, true),
        utf8("evidence", false),
        utf8("cause", false),
        utf8("fix", false),
        Field::new("fixable", DataType::Boolean, false),
    ]));
    let f = report.findings();
    let strings = |get: &dyn Fn(&crate::Finding) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(f.iter().map(|x| get(x))))
    };
    let columns: Vec<ArrayRef> = vec![
        strings(&|x| x.table.clone()),
        strings(&|x| x.rule.to_string()),
        strings(&|x| x.severity.as_str().to_string()),
        strings(&|x| x.category.as_str().to_string()),
        Arc::new(StringArray::from(
            f.iter().map(|x| x.partition.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            f.iter().map(|x| x.bucket).collect::<Vec<_>>(),
        )),
        strings(&|x| x.evidence_text()),
        strings(&|x| x.cause.clone()),
        strings(&|x| x.fix.clone()),
        Arc::new(BooleanArray::from(
            f.iter().map(|x| x.fixable).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| DoctorError::Render(e.to_string()))
}

/// `db."t$health"`: one row per table with its score and sub-scores.
pub fn health_batch(tables: &[TableReport]) -> Result<RecordBatch> {
    let real = |name: &str| Field::new(name, DataType::Float64, false);
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        utf8("table_name", false),
        real("score"),
        utf8("band", false),
        real("layout"),
        real("lsm"),
        real("deletes"),
        real("retention"),
        real("distribution"),
        real("freshness"),
        Field::new("findings", DataType::Int64, false),
        Field::new("files", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
    ]));
    let reals = |get: &dyn Fn(&TableReport) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(tables.iter().map(get)))
    };
    let ints = |get: &dyn Fn(&TableReport) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(tables.iter().map(get)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            tables.iter().map(|t| t.table.clone()),
        )),
        reals(&|t| t.health.score),
        Arc::new(StringArray::from_iter_values(
            tables.iter().map(|t| t.health.band.as_str()),
        )),
        reals(&|t| t.health.layout),
        reals(&|t| t.health.lsm),
        reals(&|t| t.health.deletes),
        reals(&|t| t.health.retention),
        reals(&|t| t.health.distribution),
        reals(&|t| t.health.freshness),
        ints(&|t| t.findings.len() as i64),
        ints(&|t| t.files as i64),
        ints(&|t| t.bytes as i64),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| DoctorError::Render(e.to_string()))
}
