//! The NATS JetStream source against the local server: a fixture per
//! message format published to a stream of its own, read to the end,
//! resumed by sequence; a corrupt message stops it with the stream and
//! sequence named.

use async_nats::jetstream::{self, stream};
use tidelake_cdc::event::{CdcValue, ChangeKind, SourceEvent, SourcePosition, SourceTableId};
use tidelake_cdc::nats::{MessageFormat, NatsConfig, NatsSource};
use tidelake_cdc::ChangeSource;

use crate::events::{Materialized, WAIT};

const SERVER: &str = "127.0.0.1:4222";

/// A fresh stream `name` (subjects `name.>`) holding `messages` in order.
async fn stream_with(name: &str, messages: &[Vec<u8>]) {
    let client = async_nats::connect(SERVER)
        .await
        .expect("NATS on 127.0.0.1:4222");
    let js = jetstream::new(client);
    let _ = js.delete_stream(name).await;
    js.create_stream(stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    for message in messages {
        js.publish(format!("{name}.shop.orders"), message.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

fn fixture(file: &str) -> Vec<Vec<u8>> {
    let path = format!(
        "{}/tests/it/fixtures/nats/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn config(stream: &str, format: MessageFormat, resume: Option<SourcePosition>) -> NatsConfig {
    let mut config = NatsConfig::new(SERVER, stream, format);
    config.primary_keys = vec!["id".into()];
    config.stop_at_end = true;
    if let Some(position) = resume {
        config
            .resume
            .tables
            .insert(SourceTableId::new("shop", "orders"), position);
    }
    config
}

/// Every event until the source ends (it stops at the stream's end).
async fn read_all(config: NatsConfig) -> Result<Vec<SourceEvent>, String> {
    let mut source = NatsSource::start(config).await.map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    loop {
        let next = tokio::time::timeout(WAIT, source.next_event())
            .await
            .expect("no hang");
        match next {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return Ok(events),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn commits(events: &[SourceEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Commit { position } => Some(position.0.clone()),
            _ => None,
        })
        .collect()
}

fn schemas(events: &[SourceEvent]) -> Vec<Vec<String>> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Schema { schema, .. } => Some(
                schema
                    .columns
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.data_type))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Changes and commits after the commit at `position` (what a resume
/// from it must deliver).
fn after(events: &[SourceEvent], position: &str) -> Vec<SourceEvent> {
    let at = events
        .iter()
        .position(|e| matches!(e, SourceEvent::Commit { position: p } if p.0 == position))
        .unwrap();
    events[at + 1..]
        .iter()
        .filter(|e| !matches!(e, SourceEvent::Schema { .. }))
        .cloned()
        .collect()
}

/// Publishes the fixture, reads it whole, checks a resume from the second
/// commit delivers exactly the rest; returns the events.
async fn fixture_round_trip(stream: &str, file: &str, format: MessageFormat) -> Vec<SourceEvent> {
    stream_with(stream, &fixture(file)).await;
    let events = read_all(config(stream, format, None)).await.unwrap();
    let positions = commits(&events);
    let resume = SourcePosition(positions[1].clone());
    let resumed = read_all(config(stream, format, Some(resume)))
        .await
        .unwrap();
    let rest: Vec<SourceEvent> = resumed
        .into_iter()
        .filter(|e| !matches!(e, SourceEvent::Schema { .. }))
        .collect();
    assert_eq!(rest, after(&events, &positions[1]));
    events
}

fn s(v: &str) -> CdcValue {
    CdcValue::String(v.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_debezium_json_fixture_with_resume_by_sequence() {
    let events = fixture_round_trip(
        "cdc_it_debezium",
        "debezium.jsonl",
        MessageFormat::DebeziumJson,
    )
    .await;
    assert_eq!(
        commits(&events),
        ["seq=1", "seq=2", "seq=3", "seq=4", "seq=5"]
    );
    let base = [
        "id INT NOT NULL",
        "amount DECIMAL(10, 2)",
        "note STRING",
        "created TIMESTAMP(6)",
        "updated TIMESTAMP(6) WITH LOCAL TIME ZONE",
    ];
    let mut wider: Vec<&str> = base.to_vec();
    wider.push("qty SMALLINT");
    assert_eq!(schemas(&events), vec![base.to_vec(), wider]);
    let mut view = Materialized::default();
    view.apply_all(&events);
    let t = 1_704_164_645_000_000i64;
    assert_eq!(
        view.table("shop", "orders"),
        vec![
            vec![
                CdcValue::Int(1),
                CdcValue::Decimal(1300, 2),
                s("second"),
                CdcValue::Timestamp(t),
                CdcValue::TimestampUtc(t)
            ],
            vec![
                CdcValue::Int(3),
                CdcValue::Decimal(99999, 2),
                s("wide"),
                CdcValue::Timestamp(t),
                CdcValue::Null,
                CdcValue::Int(7)
            ],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_canal_json_fixture_with_resume_by_sequence() {
    let events = fixture_round_trip("cdc_it_canal", "canal.jsonl", MessageFormat::CanalJson).await;
    // the DDL message (sequence 5) carries no rows: a heartbeat, no commit
    assert_eq!(
        commits(&events),
        ["seq=1", "seq=2", "seq=3", "seq=4", "seq=6"]
    );
    let base = [
        "id INT NOT NULL",
        "amount DECIMAL(10, 2)",
        "note VARCHAR(20)",
        "created TIMESTAMP(3)",
        "flags ARRAY<STRING>",
    ];
    let mut wider: Vec<&str> = base.to_vec();
    wider.push("qty INT");
    assert_eq!(schemas(&events), vec![base.to_vec(), wider]);
    let update: Vec<(ChangeKind, CdcValue, CdcValue)> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Change(c) if c.values[0] == CdcValue::Int(1) => {
                Some((c.kind, c.values[1].clone(), c.values[2].clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        update,
        vec![
            (ChangeKind::Insert, CdcValue::Decimal(1250, 2), s("first")),
            (
                ChangeKind::UpdateBefore,
                CdcValue::Decimal(1250, 2),
                s("first")
            ),
            (
                ChangeKind::UpdateAfter,
                CdcValue::Decimal(1300, 2),
                s("second")
            ),
        ]
    );
    let mut view = Materialized::default();
    view.apply_all(&events);
    let ids: Vec<CdcValue> = view
        .table("shop", "orders")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(
        ids,
        vec![CdcValue::Int(1), CdcValue::Int(3), CdcValue::Int(4)]
    );
    let four = view.table("shop", "orders").pop().unwrap();
    assert_eq!(four[4], CdcValue::Array(vec![s("a")]));
    assert_eq!(four[5], CdcValue::Int(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_maxwell_json_fixture_keeps_transactions_whole() {
    let events = fixture_round_trip(
        "cdc_it_maxwell",
        "maxwell.jsonl",
        MessageFormat::MaxwellJson,
    )
    .await;
    // xid 101 spans sequences 2 and 3: one commit after both
    assert_eq!(
        commits(&events),
        ["seq=1", "seq=3", "seq=4", "seq=5", "seq=6"]
    );
    assert_eq!(
        schemas(&events),
        vec![
            vec!["id STRING NOT NULL", "amount STRING", "note STRING"],
            vec![
                "id STRING NOT NULL",
                "amount STRING",
                "note STRING",
                "tags STRING"
            ],
        ]
    );
    let mut view = Materialized::default();
    view.apply_all(&events);
    assert_eq!(
        view.table("shop", "orders"),
        vec![
            vec![s("1"), s("13"), s("second")],
            vec![s("3"), s("3.25"), s("three")],
            vec![s("4"), s("1"), s("four"), s(r#"{"k":[1,2]}"#)],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_corrupt_message_names_stream_and_sequence() {
    let mut messages = fixture("canal.jsonl");
    messages.truncate(2);
    messages.push(b"{\"type\": \"INSERT\", truncated".to_vec());
    stream_with("cdc_it_corrupt", &messages).await;
    let err = read_all(config("cdc_it_corrupt", MessageFormat::CanalJson, None))
        .await
        .unwrap_err();
    assert!(err.contains("stream cdc_it_corrupt sequence 3"), "{err}");
    assert!(err.contains("not JSON"), "{err}");
    // a position past the stream's retained messages is refused
    let err = read_all(config("cdc_it_missing", MessageFormat::CanalJson, None))
        .await
        .unwrap_err();
    assert!(err.contains("cdc_it_missing"), "{err}");
}
