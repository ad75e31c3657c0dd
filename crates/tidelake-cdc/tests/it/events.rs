//! Helpers shared by the source tests: reading events until a condition,
//! and applying them to an in-memory copy of the tables (what the sink
//! would hold), keyed by primary key.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tidelake_cdc::event::{CdcValue, ChangeKind, SourceEvent, SourceSchema, SourceTableId};
use tidelake_cdc::ChangeSource;

/// Upper bound for one wait on a source; a hang fails the test instead of
/// blocking it forever (no test asserts on timing).
pub const WAIT: Duration = Duration::from_secs(120);

/// Reads events until `done` says so (inclusive); fails on a source error
/// or an ended source.
pub async fn read_until(
    source: &mut dyn ChangeSource,
    mut done: impl FnMut(&SourceEvent) -> bool,
) -> Vec<SourceEvent> {
    let mut events = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, source.next_event())
            .await
            .expect("the source produced nothing for two minutes")
            .expect("source error")
            .expect("the source ended");
        let stop = done(&event);
        events.push(event);
        if stop {
            return events;
        }
    }
}

/// Whether `event` is a change of `table` whose first value is `key`.
pub fn is_change_of(event: &SourceEvent, table: &str, key: i64) -> bool {
    matches!(event, SourceEvent::Change(c) if c.table.table == table && c.values.first() == Some(&CdcValue::Int(key)))
}

/// Tables as the events leave them: rows by primary-key values.
#[derive(Default, Debug)]
pub struct Materialized {
    pub schemas: HashMap<SourceTableId, SourceSchema>,
    pub rows: HashMap<SourceTableId, BTreeMap<String, Vec<CdcValue>>>,
    pub commits: usize,
}

impl Materialized {
    pub fn apply_all(&mut self, events: &[SourceEvent]) {
        for event in events {
            self.apply(event);
        }
    }

    pub fn apply(&mut self, event: &SourceEvent) {
        match event {
            SourceEvent::Schema { table, schema } => {
                self.schemas.insert(table.clone(), schema.clone());
            }
            SourceEvent::Change(change) => {
                self.apply_change(&change.table, change.kind, change.values.clone())
            }
            SourceEvent::Rows { table, batch } => {
                for values in tidelake_cdc::rows::rows_of(batch) {
                    self.apply_change(table, ChangeKind::Insert, values);
                }
            }
            SourceEvent::Commit { .. } | SourceEvent::CopyEnd { .. } => self.commits += 1,
            SourceEvent::Heartbeat { .. } => {}
        }
    }

    fn apply_change(&mut self, table: &SourceTableId, kind: ChangeKind, values: Vec<CdcValue>) {
        let schema = &self.schemas[table];
        assert_eq!(values.len(), schema.columns.len(), "{table}: {values:?}");
        let key: Vec<String> = schema
            .primary_key
            .iter()
            .map(|k| {
                let i = schema.columns.iter().position(|c| &c.name == k).unwrap();
                format!("{:?}", values[i])
            })
            .collect();
        let rows = self.rows.entry(table.clone()).or_default();
        let key = key.join("|");
        match kind {
            ChangeKind::Insert | ChangeKind::UpdateAfter => {
                rows.insert(key, values);
            }
            ChangeKind::Delete | ChangeKind::UpdateBefore => {
                assert!(
                    rows.remove(&key).is_some(),
                    "removing an absent row {table}: {values:?}"
                );
            }
        }
    }

    pub fn table(&self, database: &str, table: &str) -> Vec<Vec<CdcValue>> {
        self.rows
            .get(&SourceTableId::new(database, table))
            .map(|rows| rows.values().cloned().collect())
            .unwrap_or_default()
    }
}
