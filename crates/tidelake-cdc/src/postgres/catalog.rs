//! What the PostgreSQL catalog says about the tables to sync: columns
//! (types, NOT NULL), primary keys, replica identity; the publication and
//! the slot.

use std::collections::BTreeMap;

use super::types::paimon_type;
use super::wire::{ident, literal, source_error, Connection, Result};
use crate::event::{SourceColumn, SourceSchema, SourceTableId};
use crate::sink::config::TableFilter;

/// A source table as the catalog describes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PgTable {
    pub id: SourceTableId,
    pub oid: u32,
    /// Partitioned tables are copied through a SELECT.
    pub partitioned: bool,
    /// `relreplident`: `d` default, `f` full, `n` nothing, `i` index.
    pub replica_identity: char,
    pub schema: SourceSchema,
    /// The type OID of each column (how the binary copy reads it).
    pub type_oids: Vec<u32>,
}

impl PgTable {
    /// Whether updates and deletes of the table can be replicated (it has a
    /// key, or its old rows are logged whole).
    pub fn replicable(&self) -> bool {
        !self.schema.primary_key.is_empty() || self.replica_identity == 'f'
    }

    /// The table as an SQL name.
    pub fn sql_name(&self) -> String {
        format!("{}.{}", ident(&self.id.database), ident(&self.id.table))
    }
}

/// The user tables `filter` accepts, with their columns (generated columns,
/// which pgoutput does not send, left out).
pub(crate) async fn discover(conn: &mut Connection, filter: &TableFilter) -> Result<Vec<PgTable>> {
    let rows = conn
        .query(
            "SELECT n.nspname, c.relname, c.oid::int8, c.relkind::text, c.relreplident::text, \
               (SELECT string_agg(a.attname, chr(1) ORDER BY array_position(i.indkey::int2[], a.attnum)) \
                  FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = c.oid AND i.indisprimary) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
             ORDER BY 1, 2",
        )
        .await?;
    let mut tables = Vec::new();
    for row in rows {
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let id = SourceTableId::new(get(0), get(1));
        if !filter.accepts(&id) {
            continue;
        }
        let key = get(5);
        tables.push(PgTable {
            id,
            oid: get(2).parse().unwrap_or(0),
            partitioned: get(3) == "p",
            replica_identity: get(4).chars().next().unwrap_or('d'),
            schema: SourceSchema {
                columns: Vec::new(),
                primary_key: if key.is_empty() {
                    Vec::new()
                } else {
                    key.split('\u{1}').map(str::to_string).collect()
                },
            },
            type_oids: Vec::new(),
        });
    }
    if tables.is_empty() {
        return Ok(tables);
    }
    let oids: Vec<String> = tables.iter().map(|t| t.oid.to_string()).collect();
    let columns = conn
        .query(&format!(
            "SELECT a.attrelid::int8, a.attname, a.atttypid::int8, a.atttypmod, a.attnotnull, \
                    format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum) \
               FROM pg_attribute a \
              WHERE a.attrelid IN ({}) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
              ORDER BY a.attrelid, a.attnum",
            oids.join(",")
        ))
        .await?;
    let mut by_oid: BTreeMap<u32, Vec<(SourceColumn, u32)>> = BTreeMap::new();
    for row in columns {
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let type_oid: u32 = get(2).parse().unwrap_or(0);
        let modifier: i32 = get(3).parse().unwrap_or(-1);
        let not_null = get(4) == "t";
        by_oid
            .entry(get(0).parse().unwrap_or(0))
            .or_default()
            .push((
                SourceColumn {
                    name: get(1),
                    data_type: paimon_type(type_oid, modifier).with_nullable(!not_null),
                    source_type: get(5),
                    comment: row.get(6).cloned().flatten(),
                },
                type_oid,
            ));
    }
    for table in &mut tables {
        let columns = by_oid.remove(&table.oid).unwrap_or_default();
        (table.schema.columns, table.type_oids) = columns.into_iter().unzip();
    }
    Ok(tables)
}

/// Refuses a server that cannot do logical replication, saying what to set.
pub(crate) async fn check_server(conn: &mut Connection) -> Result<()> {
    let rows = conn.query("SHOW wal_level").await?;
    let level = rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default();
    if level != "logical" {
        return Err(source_error(format!(
            "wal_level is '{level}', logical replication needs 'logical': run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL (scripts/setup/10-postgres-cdc.sh does both)"
        )));
    }
    Ok(())
}

/// Makes sure publication `name` publishes `tables` (creating it, or
/// adding those missing). A publication for all tables is left alone.
pub(crate) async fn ensure_publication(
    conn: &mut Connection,
    name: &str,
    tables: &[&PgTable],
) -> Result<()> {
    let found = conn
        .query(&format!(
            "SELECT puballtables::text FROM pg_publication WHERE pubname = {}",
            literal(name)
        ))
        .await?;
    let names: Vec<String> = tables.iter().map(|t| t.sql_name()).collect();
    match found.first() {
        None if names.is_empty() => {
            conn.query(&format!("CREATE PUBLICATION {}", ident(name)))
                .await?;
        }
        None => {
            conn.query(&format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                ident(name),
                names.join(", ")
            ))
            .await?;
        }
        Some(row) if row.first().cloned().flatten().as_deref() == Some("true") => {}
        Some(_) => {
            let published = conn
                .query(&format!(
                    "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = {}",
                    literal(name)
                ))
                .await?;
            let published: Vec<SourceTableId> = published
                .into_iter()
                .map(|r| {
                    let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                    SourceTableId::new(get(0), get(1))
                })
                .collect();
            for table in tables.iter().filter(|t| !published.contains(&t.id)) {
                conn.query(&format!(
                    "ALTER PUBLICATION {} ADD TABLE {}",
                    ident(name),
                    table.sql_name()
                ))
                .await?;
            }
        }
    }
    Ok(())
}

/// The slot's `confirmed_flush_lsn` if it exists (an error if it exists
/// for another database or plugin).
pub(crate) async fn slot_position(
    conn: &mut Connection,
    slot: &str,
    database: &str,
) -> Result<Option<Option<String>>> {
    let rows = conn
        .query(&format!(
            "SELECT database, plugin, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = {}",
            literal(slot)
        ))
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let get = |i: usize| row.get(i).cloned().flatten();
    if get(0).as_deref() != Some(database) || get(1).as_deref() != Some("pgoutput") {
        return Err(source_error(format!(
            "replication slot '{slot}' belongs to database {:?} with plugin {:?}, not to '{database}' with pgoutput: choose another --slot",
            get(0),
            get(1)
        )));
    }
    Ok(Some(get(2)))
}
