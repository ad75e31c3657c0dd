//! Integration tests of tidelake-worker: job statements through a session,
//! and workers in one process sharing a warehouse.

mod jobs;
