//! How far the running statement has got, for a caller that shows it (the
//! shell's progress bar on a terminal).
//!
//! A session owns one [`StatementProgress`], reset when each statement
//! starts; the write paths add the rows they hand to the table's writer.
//! It is carried to them as a DataFusion config extension, so an execution
//! plan needs no handle of its own. Reading it never blocks a writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::execution::context::SessionConfig;

/// Counters of the statement a session is running.
#[derive(Debug, Default)]
pub struct StatementProgress {
    rows_written: AtomicU64,
}

impl StatementProgress {
    /// Rows the statement has handed to table writers so far (uncommitted
    /// until the statement ends).
    pub fn rows_written(&self) -> u64 {
        self.rows_written.load(Ordering::Relaxed)
    }

    pub(crate) fn reset(&self) {
        self.rows_written.store(0, Ordering::Relaxed);
    }

    fn add_rows_written(&self, rows: u64) {
        self.rows_written.fetch_add(rows, Ordering::Relaxed);
    }
}

/// Counts `rows` as written by the statement running under `config`, if
/// its session tracks progress (contexts outside a session do not).
pub(crate) fn count_rows_written(config: &SessionConfig, rows: usize) {
    if let Some(progress) = config.get_extension::<StatementProgress>() {
        progress.add_rows_written(rows as u64);
    }
}

/// Puts `progress` where the write paths of `config`'s statements find it.
pub(crate) fn attach(config: &mut SessionConfig, progress: Arc<StatementProgress>) {
    config.set_extension(progress);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_when_attached_and_resets() {
        let mut config = SessionConfig::new();
        count_rows_written(&config, 5); // no progress attached: ignored
        let progress = Arc::new(StatementProgress::default());
        attach(&mut config, progress.clone());
        count_rows_written(&config, 5);
        count_rows_written(&config, 7);
        assert_eq!(progress.rows_written(), 12);
        progress.reset();
        assert_eq!(progress.rows_written(), 0);
    }
}
