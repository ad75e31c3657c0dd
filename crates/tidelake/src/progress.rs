//! A progress line on stderr while a statement runs long on a terminal:
//! elapsed time, rows written so far and the rate. Nothing is drawn for a
//! statement that ends within [`QUIET_FOR`], nor when stderr is not a
//! terminal, so scripts and pipes see only their results.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tidelake_sql::StatementProgress;

/// How long a statement runs before its progress line appears.
const QUIET_FOR: Duration = Duration::from_secs(1);
const REFRESH_EVERY: Duration = Duration::from_millis(200);

/// The progress line of the statements of one call; dropped, it clears.
pub struct ProgressLine {
    bar: Arc<Mutex<Option<ProgressBar>>>,
    started: Arc<Mutex<Instant>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts watching `progress`; draws only if stderr is a terminal.
    pub fn start(progress: Arc<StatementProgress>) -> ProgressLine {
        Self::start_when(progress, std::io::stderr().is_terminal())
    }

    fn start_when(progress: Arc<StatementProgress>, draw: bool) -> ProgressLine {
        let bar = Arc::new(Mutex::new(None));
        let started = Arc::new(Mutex::new(Instant::now()));
        let ticker = draw.then(|| {
            let (bar, started) = (bar.clone(), started.clone());
            tokio::spawn(async move { tick(progress, bar, started).await })
        });
        ProgressLine {
            bar,
            started,
            ticker,
        }
    }

    /// Runs `print` with the progress line out of the way, and starts the
    /// clock again for the next statement.
    pub fn between_statements(&self, print: impl FnOnce()) {
        let slot = self.bar.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            bar.finish_and_clear();
        }
    }
}

async fn tick(
    progress: Arc<StatementProgress>,
    slot: Arc<Mutex<Option<ProgressBar>>>,
    started: Arc<Mutex<Instant>>,
) {
    tokio::time::sleep(QUIET_FOR).await;
    let style = ProgressStyle::with_template("{spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bar = ProgressBar::new_spinner().with_style(style);
    bar.enable_steady_tick(Duration::from_millis(100));
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
    loop {
        let since = *started.lock().unwrap_or_else(PoisonError::into_inner);
        bar.set_message(describe(progress.rows_written(), since.elapsed()));
        tokio::time::sleep(REFRESH_EVERY).await;
    }
}

/// `12.3 s, 1,234,567 rows written (100,371 rows/s)`.
fn describe(rows: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if rows == 0 {
        return format!("{seconds:.1} s");
    }
    let rate = if seconds > 0.0 {
        (rows as f64 / seconds) as u64
    } else {
        0
    };
    format!(
        "{seconds:.1} s, {} rows written ({} rows/s)",
        thousands(rows),
        thousands(rate)
    )
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_rows_and_rate() {
        assert_eq!(describe(0, Duration::from_millis(1500)), "1.5 s");
        assert_eq!(
            describe(1_234_567, Duration::from_secs(10)),
            "10.0 s, 1,234,567 rows written (123,456 rows/s)"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }

    #[tokio::test]
    async fn off_a_terminal_nothing_is_drawn() {
        let line = ProgressLine::start_when(Arc::new(StatementProgress::default()), false);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut printed = false;
        line.between_statements(|| printed = true);
        assert!(printed);
        assert!(line.ticker.is_none());
        assert!(line.bar.lock().map(|b| b.is_none()).unwrap_or(false));
    }
}
