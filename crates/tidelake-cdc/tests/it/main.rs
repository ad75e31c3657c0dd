//! Integration tests of tidelake-cdc: one binary, a module per source.
//! The MySQL tests use the local MariaDB (configured for CDC by
//! scripts/setup/20-mariadb-cdc.sh), the NATS tests the local JetStream.

mod events;
mod mysql;
mod nats;
