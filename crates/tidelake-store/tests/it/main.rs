//! The store's integration tests, one binary (each file under `tests/` would
//! link a binary of its own): one module per area.

mod conformance;
