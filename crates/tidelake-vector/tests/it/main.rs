//! Integration tests of vector search: exactness, recall of the index,
//! freshness under upserts and deletes, filtered search, partition
//! pruning, hybrid (vector + keyword) search, fallbacks, crash safety, time
//! travel, bad input, SQL, and the index payload read by Paimon's own
//! `paimon-vindex` Python package.

mod common;
mod freshness;
mod hybrid;
mod oracle;
mod partitions;
mod search;
mod sql;
