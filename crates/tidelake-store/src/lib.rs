//! # tidelake-store
//!
//! Warehouse storage over object_store (in progress).
