//! # tidelake-worker
//!
//! Serverless work on a Tidelake warehouse: any number of identical
//! processes (`tidelake serve`) share the work of one warehouse, with all
//! state in the warehouse itself. It owns:
//! - **job declarations managed from SQL** ([`JobsExtension`], a session
//!   extension): `CREATE JOB name AS INSERT INTO ... SELECT ...` (checked
//!   by the continuous runner's planner first), `SHOW JOBS`, `DESCRIBE JOB`,
//!   `ALTER JOB name SUSPEND | RESUME`, `DROP JOB`, and `sys.jobs` (state,
//!   owner, lag, last commit, last error, read from the warehouse);
//! - **the lease protocol** ([`lease`]): append-only epochs written with
//!   the store's create-if-absent, renewed by the holder, judged expired by
//!   observers on their own monotonic clocks (no wall clocks compared);
//! - **the [`Worker`]**: membership, balancing of jobs over live workers
//!   (rendezvous hashing, ceil(jobs / workers) each), running each job
//!   under its lease's deadline, restarts with backoff, and **maintenance**
//!   (compaction and expiration) of `write-only` tables, leased per table;
//! - the worker's [`Gauges`] for autoscaling (pending work, lag, slots).
//!
//! A lease only keeps two workers from doing the same work at once.
//! Exactly-once does not depend on it: a job's output and progress are one
//! fenced commit in its sink (`tidelake-stream`), so an instance that lost
//! its lease in the middle of a commit is refused by the fence.
//!
//! It builds on `tidelake-engine` for the records (`services`) and tables,
//! `tidelake-sql` for the extension hook, and `tidelake-stream` for running
//! jobs. It must not know file formats, object stores' APIs, the command
//! line or the network servers: the binary starts a worker beside its
//! server and adds [`JobsExtension`] to its sessions.

mod error;
mod gauges;
pub mod lease;
mod maintenance;
mod statements;
mod status;
mod worker;

pub use error::{Result, WorkerError};
pub use gauges::{GaugeValues, Gauges};
pub use maintenance::MAINTENANCE_LEASE;
pub use statements::{parse, JobStatement, JobsExtension, SYS_DATABASE};
pub use status::{job_rows, JobRow, JOB_LEASE};
pub use worker::{Worker, WorkerConfig, WORKER_LEASE};
