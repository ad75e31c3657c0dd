//! MERGE against an in-memory model: random sequences of MERGE statements
//! (deletes, updates from the source, updates from both sides, inserts) on a
//! primary-key table and on an append table must leave exactly the rows the
//! model has; a source with a key twice among matched rows is refused and
//! changes nothing.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, Int64Array};
use proptest::prelude::*;
use tidelake_sql::{Session, StatementResult};

const MERGE: &str = "ON t.k = s.k \
    WHEN MATCHED AND s.op = 0 THEN DELETE \
    WHEN MATCHED AND s.op = 1 THEN UPDATE SET v = s.v \
    WHEN MATCHED THEN UPDATE SET v = t.v + s.v \
    WHEN NOT MATCHED AND s.op <> 0 THEN INSERT VALUES (s.k, s.v)";

/// One statement's source rows (distinct keys) and whether a matched key
/// is repeated (a cardinality violation).
#[derive(Clone, Debug)]
struct Step {
    rows: BTreeMap<i64, (i64, u8)>,
    repeat_matched: bool,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        proptest::collection::btree_map(0i64..12, (-5i64..5, 0u8..3), 0..6),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(rows, repeat_matched)| Step {
            rows,
            repeat_matched,
        });
    proptest::collection::vec(step, 1..8)
}

/// Applies a step to the model; `None` when the statement must fail.
fn apply(model: &BTreeMap<i64, i64>, step: &Step) -> Option<BTreeMap<i64, i64>> {
    if step.repeat_matched && step.rows.keys().any(|k| model.contains_key(k)) {
        return None;
    }
    let mut next = model.clone();
    for (k, (v, op)) in &step.rows {
        match (model.get(k), op) {
            (Some(_), 0) => {
                next.remove(k);
            }
            (Some(_), 1) => {
                next.insert(*k, *v);
            }
            (Some(old), _) => {
                next.insert(*k, old + v);
            }
            (None, 0) => {}
            (None, _) => {
                next.insert(*k, *v);
            }
        }
    }
    Some(next)
}

fn source_sql(model: &BTreeMap<i64, i64>, step: &Step) -> String {
    let mut rows: Vec<String> = step
        .rows
        .iter()
        .map(|(k, (v, op))| format!("({k}, {v}, {op})"))
        .collect();
    if step.repeat_matched {
        if let Some(k) = step.rows.keys().find(|k| model.contains_key(k)) {
            rows.push(format!("({k}, 1, 2)"));
        }
    }
    if rows.is_empty() {
        // VALUES needs a row: one no clause takes.
        rows.push("(-1, 0, 0)".to_string());
    }
    format!(
        "(SELECT CAST(column1 AS BIGINT) AS k, CAST(column2 AS BIGINT) AS v, column3 AS op FROM (VALUES {}))",
        rows.join(", ")
    )
}

async fn rows(session: &Session, table: &str) -> BTreeMap<i64, i64> {
    let mut results = session
        .execute(&format!("SELECT k, v FROM {table}"))
        .await
        .unwrap();
    let Some(StatementResult::Rows { batches, .. }) = results.pop() else {
        panic!("a query returns rows");
    };
    let mut out = BTreeMap::new();
    for b in batches {
        let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            assert!(!v.is_null(i), "the model has no NULL values");
            assert!(
                out.insert(k.value(i), v.value(i)).is_none(),
                "key {} twice",
                k.value(i)
            );
        }
    }
    out
}

async fn run(create: &str, steps: Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::open(dir.path().to_str().unwrap()).await.unwrap();
    session.execute(create).await.unwrap();
    let mut model = BTreeMap::new();
    for step in steps {
        let sql = format!(
            "MERGE INTO t USING {} AS s {MERGE}",
            source_sql(&model, &step)
        );
        let result = session.execute(&sql).await;
        match apply(&model, &step) {
            Some(next) => {
                result.unwrap_or_else(|e| panic!("{sql}: {e}"));
                model = next;
            }
            None => {
                let err = result.expect_err(&sql);
                assert_eq!(err.code(), "21000", "{sql}: {err}");
            }
        }
        assert_eq!(rows(&session, "t").await, model, "after {sql}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn merge_on_a_primary_key_table_matches_the_model(steps in steps()) {
        tokio::runtime::Runtime::new().unwrap().block_on(run(
            "CREATE TABLE t (k BIGINT NOT NULL, v BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ('bucket' = '2')",
            steps,
        ));
    }

    #[test]
    fn merge_on_an_append_table_matches_the_model(steps in steps()) {
        tokio::runtime::Runtime::new().unwrap().block_on(run(
            "CREATE TABLE t (k BIGINT, v BIGINT)",
            steps,
        ));
    }
}
