//! Helpers of the CDC tests: reading a Paimon table as sorted text rows.

use futures::TryStreamExt;
use tidelake_cdc::event::CdcValue;
use tidelake_cdc::values::{from_arrow, render_text};
use tidelake_engine::{Catalog, Identifier};

/// The rows of `db.table` as `a|b|c` (NULL for nulls), sorted.
pub async fn read_rows(catalog: &Catalog, db: &str, table: &str) -> Vec<String> {
    let table = catalog
        .load_table(&Identifier::new(db, table))
        .await
        .unwrap_or_else(|e| panic!("table {db}.{table}: {e}"));
    let plan = table.scan().plan().await.unwrap();
    let batches: Vec<_> = plan.read_all().try_collect().await.unwrap();
    let mut rows = Vec::new();
    for batch in batches {
        for r in 0..batch.num_rows() {
            let cells: Vec<String> = (0..batch.num_columns())
                .map(|c| match from_arrow(batch.column(c).as_ref(), r) {
                    CdcValue::Null => "NULL".to_string(),
                    v => render_text(&v),
                })
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}
