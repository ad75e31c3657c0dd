//! The format's integration tests, one binary (each file under `tests/`
//! would link a binary of its own): compatibility with files that pypaimon
//! and Paimon Java wrote.

mod deletion_vector_compat;
mod manifest_compat;
