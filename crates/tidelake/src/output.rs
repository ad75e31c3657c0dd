//! Printing statement results: a pretty table (with psql's row count), CSV
//! (RFC 4180 quoting, a header row, `\n` line ends) or JSON lines (one
//! object per row, NULLs written out). In CSV and JSON output, statement
//! statuses (`INSERT 0 3`) go to stderr so that stdout stays machine
//! readable; in table output they go to stdout, as psql prints them.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::util::display::FormatOptions;
use clap::ValueEnum;
use tidelake_sql::StatementResult;

/// How query results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table with borders, then `(N rows)`.
    Table,
    /// RFC 4180 CSV with a header row; NULL is an empty field.
    Csv,
    /// One JSON object per row; decimals are JSON numbers with their exact
    /// digits (12.50), timestamps ISO-8601 strings, NULL is null.
    Json,
}

/// Writes one statement's result.
pub fn print_result(
    result: &StatementResult,
    format: Format,
    out: &mut dyn Write,
    status_out: &mut dyn Write,
) -> Result<(), ArrowError> {
    match result {
        StatementResult::Status(status) => match format {
            Format::Table => writeln!(out, "{status}")?,
            Format::Csv | Format::Json => writeln!(status_out, "{status}")?,
        },
        StatementResult::Rows { schema, batches } => match format {
            Format::Table => write_table(schema, batches, out)?,
            Format::Csv => write_csv(schema, batches, out)?,
            Format::Json => write_json(batches, out)?,
        },
    }
    Ok(())
}

fn write_table(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut dyn Write,
) -> Result<(), ArrowError> {
    let options = FormatOptions::default().with_null("NULL");
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let table = if batches.is_empty() {
        arrow::util::pretty::pretty_format_batches_with_options(
            &[RecordBatch::new_empty(schema.clone())],
            &options,
        )?
    } else {
        arrow::util::pretty::pretty_format_batches_with_options(batches, &options)?
    };
    writeln!(out, "{table}")?;
    writeln!(out, "({rows} {})", if rows == 1 { "row" } else { "rows" })?;
    Ok(())
}

fn write_csv(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut dyn Write,
) -> Result<(), ArrowError> {
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(out);
    if batches.iter().all(|b| b.num_rows() == 0) {
        // The header alone, so that an empty result still names its columns.
        writer.write(&RecordBatch::new_empty(schema.clone()))?;
    }
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        writer.write(batch)?;
    }
    Ok(())
}

fn write_json(batches: &[RecordBatch], out: &mut dyn Write) -> Result<(), ArrowError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(out);
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use tidelake_sql::CommandStatus;

    fn sample() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a, \"b\""), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(1250), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap();
        (schema, vec![batch])
    }

    fn render(result: &StatementResult, format: Format) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_result(result, format, &mut out, &mut err).unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn csv_quotes_and_leaves_nulls_empty() {
        let (schema, batches) = sample();
        let (out, _) = render(&StatementResult::Rows { schema, batches }, Format::Csv);
        assert_eq!(out, "id,name,amount\n1,\"a, \"\"b\"\"\",12.50\n2,,\n");
    }

    #[test]
    fn json_lines_keep_decimal_digits_and_nulls() {
        let (schema, batches) = sample();
        let (out, _) = render(&StatementResult::Rows { schema, batches }, Format::Json);
        assert_eq!(out, "{\"id\":1,\"name\":\"a, \\\"b\\\"\",\"amount\":12.50}\n{\"id\":2,\"name\":null,\"amount\":null}\n");
    }

    #[test]
    fn tables_end_with_a_row_count() {
        let (schema, batches) = sample();
        let (out, _) = render(
            &StatementResult::Rows {
                schema: schema.clone(),
                batches,
            },
            Format::Table,
        );
        assert!(out.ends_with("(2 rows)\n"), "{out}");
        assert!(out.contains("| 1  | a, \"b\" | 12.50  |"), "{out}");
        let (empty, _) = render(
            &StatementResult::Rows {
                schema,
                batches: vec![],
            },
            Format::Table,
        );
        assert!(empty.contains("| id | name | amount |"), "{empty}");
        assert!(empty.ends_with("(0 rows)\n"), "{empty}");
    }

    #[test]
    fn statuses_go_to_stderr_for_machine_formats() {
        let status = StatementResult::Status(CommandStatus {
            command: "INSERT",
            rows: Some(3),
        });
        assert_eq!(
            render(&status, Format::Table),
            ("INSERT 0 3\n".into(), String::new())
        );
        assert_eq!(
            render(&status, Format::Csv),
            (String::new(), "INSERT 0 3\n".into())
        );
    }
}
