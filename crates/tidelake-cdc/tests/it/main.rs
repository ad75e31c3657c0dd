//! Integration tests of tidelake-cdc: one binary, a module per source.
//! `sink` drives the sink with an in-memory source; `postgres` runs the
//! PostgreSQL source against the local server (127.0.0.1:5432, user
//! postgres, wal_level = logical: scripts/setup/10-postgres-cdc.sh), each
//! test in its own database, slot and publication.

mod common;
mod postgres;
mod postgres_ranges;
mod sink;
// The MySQL/MariaDB source against the local MariaDB (configured by
// scripts/setup/20-mariadb-cdc.sh), `mysql_gtid` against a MySQL 9 with
// GTIDs (scripts/setup/40-mysql.sh), and the NATS source against the local
// JetStream; `events` holds their shared helpers.
mod events;
mod mysql;
mod mysql_gtid;
mod mysql_sink;
mod nats;
