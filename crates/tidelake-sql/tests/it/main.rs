//! The SQL layer's integration tests, one binary (each file under `tests/`
//! would link a binary of its own). The sqllogictest files run in their own
//! binary (`tests/sqllogictest.rs`, no libtest harness).

mod explain;
mod merge;
mod s3_files;
mod session;
