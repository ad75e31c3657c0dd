//! # tidelake-testkit
//!
//! The fixtures Tidelake's integration tests share, so that each crate's
//! one test binary (`tests/it/main.rs`) uses them instead of a copy:
//!
//! - [`table`]: engine column and table specs, catalogs in memory or in a
//!   temporary directory, a runtime for property tests;
//! - [`process`]: child processes whose output is collected as it comes and
//!   whose every wait is bounded (no sleeping to synchronize);
//! - [`cli`]: the built `tidelake` binary as child processes (the test
//!   passes the binary's path in);
//! - [`python`], [`oracle`]: the project's Python venv and the Python oracle
//!   (`tests/oracle/oracle.py`) with the model of Paimon's merge semantics;
//! - [`moto`]: an S3-compatible server on loopback;
//! - [`mysql9`]: the local MySQL 9 of the MySQL CDC tests, locked per test;
//! - [`warehouse`]: temporary warehouses kept for inspection on failure;
//! - [`rng`]: a seedable generator with replayable seeds.
//!
//! It owns *how tests set things up and observe them*. It must not know
//! what any test expects (assertions about Tidelake's behaviour stay in the
//! tests), nor SQL sessions or query planning: it depends on the store and
//! the engine only, so that linking it stays cheap. It is a dev-dependency
//! only (`publish = false`); no crate may depend on it normally.

pub mod cli;
pub mod moto;
pub mod mysql9;
pub mod oracle;
pub mod process;
pub mod python;
pub mod rng;
pub mod table;
pub mod warehouse;
