//! The read path: planning (partition pruning, file skipping) and reading
//! (merge-on-read for primary-key tables).

pub mod deletion;
pub(crate) mod file;
pub(crate) mod key;
pub(crate) mod key_index;
pub(crate) mod key_plan;
pub mod lookup;
pub(crate) mod merge;
pub mod predicate;
pub mod scan;
pub(crate) mod split;
pub mod stream;
