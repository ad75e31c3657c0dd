//! The sink with an in-memory source: table creation and naming, unchanged
//! values, schema evolution, computed and metadata columns, restart
//! positions, acknowledgements and the fence.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidelake_cdc::event::{
    CdcValue, ChangeKind, RowChange, SourceColumn, SourceEvent, SourcePosition, SourceSchema,
    SourceTableId,
};
use tidelake_cdc::sink::computed::ComputedColumn;
use tidelake_cdc::{
    CdcError, ChangeSource, MetadataColumn, Pipeline, RunEnd, SinkConfig, TableFilter,
};
use tidelake_engine::{Catalog, DataType, Identifier};
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::common::read_rows;

/// Events from a list; acknowledgements recorded.
pub struct ListSource {
    events: VecDeque<SourceEvent>,
    pub acks: Arc<Mutex<Vec<String>>>,
}

impl ListSource {
    pub fn new(events: Vec<SourceEvent>) -> ListSource {
        ListSource {
            events: events.into(),
            acks: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

#[async_trait::async_trait]
impl ChangeSource for ListSource {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>, CdcError> {
        Ok(self.events.pop_front())
    }
    async fn acknowledge(&mut self, position: &SourcePosition) -> Result<(), CdcError> {
        self.acks.lock().unwrap().push(position.0.clone());
        Ok(())
    }
}

fn t(sql: &str) -> DataType {
    DataType::parse_sql(sql).unwrap()
}

fn column(name: &str, sql: &str) -> SourceColumn {
    SourceColumn {
        name: name.into(),
        data_type: t(sql),
        source_type: sql.to_lowercase(),
        comment: None,
    }
}

fn schema(table: &str, columns: Vec<SourceColumn>, key: &[&str]) -> SourceEvent {
    SourceEvent::Schema {
        table: SourceTableId::new("public", table),
        schema: SourceSchema {
            columns,
            primary_key: key.iter().map(|k| k.to_string()).collect(),
        },
    }
}

fn change(table: &str, kind: ChangeKind, values: Vec<CdcValue>) -> SourceEvent {
    SourceEvent::Change(RowChange {
        table: SourceTableId::new("public", table),
        kind,
        values,
        op_ts_micros: Some(1_700_000_000_000_000),
    })
}

fn commit(p: &str) -> SourceEvent {
    SourceEvent::Commit {
        position: SourcePosition(p.into()),
    }
}

fn s(v: &str) -> CdcValue {
    CdcValue::String(v.into())
}

fn config(name: &str) -> SinkConfig {
    let mut c = SinkConfig::new(name, "ods");
    c.commit_interval = Duration::ZERO;
    c
}

async fn run(
    catalog: &Catalog,
    config: SinkConfig,
    events: Vec<SourceEvent>,
) -> Result<(Pipeline, Vec<String>), CdcError> {
    let mut pipeline = Pipeline::open(catalog.clone(), config).await?;
    let mut source = ListSource::new(events);
    let acks = source.acks.clone();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let end = pipeline.run(&mut source, stopped).await?;
    assert_eq!(end, RunEnd::SourceEnded);
    let acks = acks.lock().unwrap().clone();
    Ok((pipeline, acks))
}

fn users() -> Vec<SourceColumn> {
    vec![
        column("id", "INT NOT NULL"),
        column("name", "STRING"),
        column("note", "STRING"),
    ]
}

#[tokio::test]
async fn sink_creates_tables_resolves_unchanged_values_and_resumes() {
    let dir = KeptOnFailure::new("cdc-sink");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut cfg = config("p1");
    cfg.table_prefix = "pg_".into();
    let events = vec![
        schema("users", users(), &["id"]),
        schema("nokey", vec![column("x", "INT")], &[]),
        change(
            "users",
            ChangeKind::Insert,
            vec![CdcValue::Int(1), s("a"), s("big toast 1")],
        ),
        change(
            "users",
            ChangeKind::Insert,
            vec![CdcValue::Int(2), s("b"), s("big toast 2")],
        ),
        commit("0000000000000010"),
        // Unchanged within one group and across commits.
        change(
            "users",
            ChangeKind::UpdateBefore,
            vec![CdcValue::Int(1), CdcValue::Unchanged, CdcValue::Unchanged],
        ),
        change(
            "users",
            ChangeKind::UpdateAfter,
            vec![CdcValue::Int(1), s("a2"), CdcValue::Unchanged],
        ),
        change(
            "users",
            ChangeKind::Insert,
            vec![CdcValue::Int(3), s("c"), s("t3")],
        ),
        change(
            "users",
            ChangeKind::UpdateAfter,
            vec![CdcValue::Int(3), s("c2"), CdcValue::Unchanged],
        ),
        change(
            "users",
            ChangeKind::Delete,
            vec![CdcValue::Int(2), CdcValue::Unchanged, CdcValue::Unchanged],
        ),
        // A delete of a key the table does not hold is dropped.
        change(
            "users",
            ChangeKind::Delete,
            vec![CdcValue::Int(9), CdcValue::Unchanged, CdcValue::Unchanged],
        ),
        commit("0000000000000020"),
    ];
    let (pipeline, acks) = run(&catalog, cfg.clone(), events).await.unwrap();
    assert!(pipeline
        .stats()
        .skipped_without_key
        .contains(&SourceTableId::new("public", "nokey")));
    assert_eq!(acks, vec!["0000000000000010", "0000000000000020"]);
    let rows = read_rows(&catalog, "ods", "pg_users").await;
    assert_eq!(rows, vec!["1|a2|big toast 1", "3|c2|t3"]);
    assert!(catalog
        .load_table(&Identifier::new("ods", "nokey"))
        .await
        .is_err());

    // A restart resumes from the recorded position.
    let reopened = Pipeline::open(catalog.clone(), cfg).await.unwrap();
    let resume = reopened.resume();
    assert_eq!(
        resume
            .position(&SourceTableId::new("public", "users"))
            .map(|p| p.0.as_str()),
        Some("0000000000000020")
    );
}

#[tokio::test]
async fn a_second_instance_is_fenced() {
    let dir = KeptOnFailure::new("cdc-fence");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let first = vec![
        schema("users", users(), &["id"]),
        change(
            "users",
            ChangeKind::Insert,
            vec![CdcValue::Int(1), s("a"), s("x")],
        ),
        commit("0000000000000010"),
    ];
    run(&catalog, config("p"), first.clone()).await.unwrap();
    // Two instances open at the same position; the one that commits
    // second is refused.
    let mut a = Pipeline::open(catalog.clone(), config("p")).await.unwrap();
    let mut b = Pipeline::open(catalog.clone(), config("p")).await.unwrap();
    let next = vec![
        schema("users", users(), &["id"]),
        change(
            "users",
            ChangeKind::Insert,
            vec![CdcValue::Int(2), s("b"), s("y")],
        ),
        commit("0000000000000020"),
    ];
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    a.run(&mut ListSource::new(next.clone()), stopped.clone())
        .await
        .unwrap();
    let err = b
        .run(&mut ListSource::new(next), stopped)
        .await
        .unwrap_err();
    assert!(matches!(err, CdcError::Fenced { .. }), "{err}");
    assert!(err.to_string().contains("another instance"), "{err}");
}

#[tokio::test]
async fn schema_changes_follow_paimon_rules() {
    let dir = KeptOnFailure::new("cdc-evolve");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let v1 = vec![
        column("id", "INT NOT NULL"),
        column("n", "INT"),
        column("gone", "STRING"),
    ];
    let v2 = vec![
        column("id", "INT NOT NULL"),
        column("n", "BIGINT"),
        column("added", "VARCHAR(10)"),
    ];
    let v3 = vec![
        column("id", "INT NOT NULL"),
        column("n", "STRING"),
        column("added", "VARCHAR(10)"),
    ];
    let events = vec![
        schema("t", v1, &["id"]),
        change(
            "t",
            ChangeKind::Insert,
            vec![CdcValue::Int(1), CdcValue::Int(5), s("g")],
        ),
        commit("01"),
        schema("t", v2.clone(), &["id"]),
        change(
            "t",
            ChangeKind::Insert,
            vec![CdcValue::Int(2), CdcValue::Int(1 << 40), s("new")],
        ),
        commit("02"),
        schema("t", v3, &["id"]),
        change(
            "t",
            ChangeKind::Insert,
            vec![CdcValue::Int(3), s("x"), s("z")],
        ),
        commit("03"),
    ];
    let (pipeline, _) = run(&catalog, config("e"), events).await.unwrap();
    let table = catalog
        .load_table(&Identifier::new("ods", "t"))
        .await
        .unwrap();
    let fields: Vec<String> = table
        .schema()
        .fields
        .iter()
        .map(|f| format!("{} {}", f.name, f.data_type))
        .collect();
    assert_eq!(
        fields,
        vec![
            "id INT NOT NULL",
            "n BIGINT",
            "gone STRING",
            "added VARCHAR(10)"
        ]
    );
    assert_eq!(
        read_rows(&catalog, "ods", "t").await,
        vec!["1|5|g|NULL", &format!("2|{}|NULL|new", 1i64 << 40)]
    );
    let stopped = &pipeline.stats().stopped;
    let message = stopped.get(&SourceTableId::new("public", "t")).unwrap();
    assert!(
        message.contains("column 'n'") && message.contains("BIGINT") && message.contains("STRING"),
        "{message}"
    );
}

#[tokio::test]
async fn computed_and_metadata_columns_filters_and_type_mapping() {
    let dir = KeptOnFailure::new("cdc-columns");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut cfg = config("c");
    cfg.computed_columns = vec![
        ComputedColumn::parse("dt=date_format(ts, yyyy-MM-dd)").unwrap(),
        ComputedColumn::parse("up=upper(name)").unwrap(),
    ];
    cfg.metadata_columns = MetadataColumn::parse("table_name,database_name,op_ts").unwrap();
    cfg.filter = TableFilter::new(Some("orders|other"), Some("other")).unwrap();
    cfg.partition_keys = vec!["dt".into()];
    cfg.type_mapping = tidelake_cdc::TypeMapping::parse("char-to-string").unwrap();
    let cols = vec![
        column("id", "INT NOT NULL"),
        column("name", "VARCHAR(5)"),
        column("ts", "TIMESTAMP(6)"),
    ];
    let events = vec![
        schema("orders", cols.clone(), &["id"]),
        schema("other", cols, &["id"]),
        change(
            "orders",
            ChangeKind::Insert,
            vec![
                CdcValue::Int(1),
                s("ab"),
                CdcValue::Timestamp(1_700_000_000_000_000),
            ],
        ),
        change(
            "other",
            ChangeKind::Insert,
            vec![CdcValue::Int(1), s("ab"), CdcValue::Null],
        ),
        commit("01"),
    ];
    run(&catalog, cfg, events).await.unwrap();
    let table = catalog
        .load_table(&Identifier::new("ods", "orders"))
        .await
        .unwrap();
    assert_eq!(table.partition_keys(), ["dt"]);
    assert_eq!(table.primary_keys(), ["id", "dt"]);
    let names: Vec<String> = table
        .schema()
        .fields
        .iter()
        .map(|f| format!("{} {}", f.name, f.data_type))
        .collect();
    assert_eq!(
        names,
        vec![
            "id INT NOT NULL",
            "name STRING",
            "ts TIMESTAMP(6)",
            "dt STRING NOT NULL",
            "up STRING",
            "table_name STRING",
            "database_name STRING",
            "op_ts TIMESTAMP(3) WITH LOCAL TIME ZONE"
        ]
    );
    let rows = read_rows(&catalog, "ods", "orders").await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].starts_with(
            "1|ab|2023-11-14 22:13:20|2023-11-14|AB|orders|public|2023-11-14 22:13:20"
        ),
        "{rows:?}"
    );
    assert!(catalog
        .load_table(&Identifier::new("ods", "other"))
        .await
        .is_err());
}

/// The positions each table of `ods` recorded, by table name.
async fn recorded(pipeline: &Pipeline) -> std::collections::BTreeMap<String, String> {
    pipeline
        .resume()
        .tables
        .into_iter()
        .map(|(t, p)| (t.table, p.0))
        .collect()
}

/// A copy made ahead of the stream (a table copied again at a restart, or
/// found new while streaming) is committed in the copied tables alone, at
/// the copy's position, empty tables too; the stream's later commits of
/// lower positions never move a table's position back, whether it is idle
/// or not.
#[tokio::test]
async fn a_copy_ahead_of_the_stream_records_its_position_in_its_tables_only() {
    let dir = KeptOnFailure::new("cdc-copy-ahead");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut cfg = config("ahead");
    cfg.idle_progress_interval = Duration::ZERO;
    // The stream stands at 10 for `users`; `items` and `empty` are copied
    // at 50; the stream then goes on from 10.
    let events = vec![
        schema("users", users(), &["id"]),
        schema("items", users(), &["id"]),
        schema("empty", users(), &["id"]),
        change(
            "users",
            ChangeKind::Insert,
            vec![CdcValue::Int(1), s("a"), s("x")],
        ),
        commit("0000000000000010"),
        SourceEvent::Change(RowChange {
            table: SourceTableId::new("public", "items"),
            kind: ChangeKind::Insert,
            values: vec![CdcValue::Int(7), s("copied"), CdcValue::Null],
            op_ts_micros: None,
        }),
        SourceEvent::CopyEnd {
            position: SourcePosition("0000000000000050".into()),
            tables: vec![
                SourceTableId::new("public", "items"),
                SourceTableId::new("public", "empty"),
            ],
        },
        change(
            "users",
            ChangeKind::Insert,
            vec![CdcValue::Int(2), s("b"), s("y")],
        ),
        commit("0000000000000020"),
        SourceEvent::Heartbeat {
            position: SourcePosition("0000000000000030".into()),
        },
    ];
    let (pipeline, acks) = run(&catalog, cfg.clone(), events).await.unwrap();
    let positions = recorded(&Pipeline::open(catalog.clone(), cfg).await.unwrap()).await;
    assert_eq!(positions["items"], "0000000000000050");
    assert_eq!(positions["empty"], "0000000000000050");
    assert_eq!(positions["users"], "0000000000000030");
    assert_eq!(
        read_rows(&catalog, "ods", "items").await,
        vec!["7|copied|NULL".to_string()]
    );
    assert!(read_rows(&catalog, "ods", "empty").await.is_empty());
    // Acknowledged up to what every table holds, never past the stream.
    assert_eq!(acks.last().map(String::as_str), Some("0000000000000030"));
    assert_eq!(pipeline.stats().rows, 3);
}

/// Rows of a copy as one batch of the source's columns.
fn rows(table: &str, columns: &[SourceColumn], rows: Vec<Vec<CdcValue>>) -> SourceEvent {
    let schema = SourceSchema {
        columns: columns.to_vec(),
        primary_key: Vec::new(),
    };
    let mut builder = tidelake_cdc::rows::RowsBuilder::new(&schema, rows.len());
    for row in rows {
        for (c, value) in row.into_iter().enumerate() {
            builder.push(c, value).unwrap();
        }
        builder.end_row();
    }
    SourceEvent::Rows {
        table: SourceTableId::new("public", table),
        batch: builder.finish().unwrap(),
    }
}

/// Batches of copied rows go to the writer as they are when the table's
/// columns are the source's, after the rows that came before them; with
/// computed or metadata columns they are taken row by row. Either way
/// the table ends as with one change per row.
#[tokio::test]
async fn rows_of_a_copy_are_written_whole_or_row_by_row() {
    let dir = KeptOnFailure::new("cdc-copy-rows");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let events = |table: &str| {
        vec![
            schema(table, users(), &["id"]),
            SourceEvent::Change(RowChange {
                table: SourceTableId::new("public", table),
                kind: ChangeKind::Insert,
                values: vec![CdcValue::Int(2), s("old"), CdcValue::Null],
                op_ts_micros: None,
            }),
            rows(
                table,
                &users(),
                vec![
                    vec![CdcValue::Int(1), s("a"), s("x")],
                    vec![CdcValue::Int(2), s("new"), CdcValue::Null],
                ],
            ),
            rows(
                table,
                &users(),
                vec![vec![CdcValue::Int(3), s("c"), s("z")]],
            ),
            SourceEvent::CopyEnd {
                position: SourcePosition("0000000000000050".into()),
                tables: vec![SourceTableId::new("public", table)],
            },
        ]
    };
    let (pipeline, _) = run(&catalog, config("whole"), events("plain"))
        .await
        .unwrap();
    assert_eq!(pipeline.stats().rows, 4);
    assert_eq!(
        read_rows(&catalog, "ods", "plain").await,
        vec!["1|a|x", "2|new|NULL", "3|c|z"]
    );
    let mut cfg = config("by_row");
    cfg.computed_columns = vec![ComputedColumn::parse("up=upper(name)").unwrap()];
    cfg.metadata_columns = MetadataColumn::parse("table_name,op_ts").unwrap();
    run(&catalog, cfg, events("computed")).await.unwrap();
    assert_eq!(
        read_rows(&catalog, "ods", "computed").await,
        vec![
            "1|a|x|A|computed|NULL",
            "2|new|NULL|NEW|computed|NULL",
            "3|c|z|C|computed|NULL"
        ]
    );
}
