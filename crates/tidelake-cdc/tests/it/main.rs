//! Integration tests of tidelake-cdc: one binary, a module per source.
