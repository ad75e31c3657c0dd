//! The server's own counters: what the console's health page and
//! `GET /v1/status` report (open connections, statements run and running,
//! commits), and the engine's counters. Plain atomics, updated by the
//! front ends; nothing here knows SQL beyond a statement's command tag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Counters every front end updates.
pub(crate) struct Stats {
    started: Instant,
    pg_connections: AtomicU64,
    http_requests: AtomicU64,
    statements: AtomicU64,
    failed: AtomicU64,
    running: AtomicU64,
    commits: AtomicU64,
}

/// Holds one unit of a gauge; gives it back when dropped.
pub(crate) struct Held<'a>(&'a AtomicU64);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn hold(gauge: &AtomicU64) -> Held<'_> {
    gauge.fetch_add(1, Ordering::Relaxed);
    Held(gauge)
}

/// A running statement (its rows may still be read); counted once as
/// failed at most.
pub(crate) struct Running {
    stats: Arc<Stats>,
    failed: bool,
}

impl Running {
    /// The statement succeeded with the command tag `command` (`INSERT`).
    pub(crate) fn committed_if_write(&self, command: &str) {
        if WRITES.contains(&command) {
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The statement failed (before or while its rows were read).
    pub(crate) fn failed(&mut self) {
        if !self.failed {
            self.failed = true;
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stats.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The commands that commit to a table when they succeed.
const WRITES: [&str; 5] = ["INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE"];

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            started: Instant::now(),
            pg_connections: AtomicU64::new(0),
            http_requests: AtomicU64::new(0),
            statements: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            running: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        }
    }

    /// An open PostgreSQL connection, for as long as the result lives.
    pub(crate) fn connection(&self) -> Held<'_> {
        hold(&self.pg_connections)
    }

    pub(crate) fn http_request(&self) {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A statement that starts: it counts as running until the result drops.
    pub(crate) fn statement(self: &Arc<Self>) -> Running {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.running.fetch_add(1, Ordering::Relaxed);
        Running {
            stats: self.clone(),
            failed: false,
        }
    }

    /// The counters as JSON, for `GET /v1/status`.
    pub(crate) fn json(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "uptime_seconds": self.started.elapsed().as_secs(),
            "connections": {"postgres": get(&self.pg_connections)},
            "http_requests": get(&self.http_requests),
            "statements": {
                "total": get(&self.statements),
                "failed": get(&self.failed),
                "running": get(&self.running),
            },
            "commits": get(&self.commits),
            "engine": engine(),
        })
    }
}

/// The engine's counters (all of this process's commits and scans).
fn engine() -> serde_json::Value {
    let c = tidelake_sql::engine_counters();
    serde_json::json!({
        "commits": c.commits,
        "commit_conflicts": c.commit_conflicts,
        "commit_retries": c.commit_retries,
        "rows_scanned": c.rows_scanned,
        "bytes_scanned": c.bytes_scanned,
        "data_files_read": c.data_files_opened,
        "group_commits": c.group_commits,
        "group_commit_statements": c.group_commit_statements,
        "manifest_cache_hits": c.manifest_cache_hits,
        "manifest_cache_misses": c.manifest_cache_misses,
        "footer_cache_hits": c.footer_cache_hits,
        "footer_cache_misses": c.footer_cache_misses,
        "primary_key_lookups": c.primary_key_lookups,
        "key_index_hits": c.key_index_hits,
        "key_index_misses": c.key_index_misses,
        "lookup_rows_hits": c.lookup_rows_hits,
        "lookup_rows_misses": c.lookup_rows_misses,
        "lookup_files_skipped": c.lookup_files_skipped,
        "snapshot_reuses": c.snapshot_reuses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_go_back_down_and_writes_count_as_commits() {
        let stats = Arc::new(Stats::new());
        {
            let _c = stats.connection();
            let insert = stats.statement();
            insert.committed_if_write("INSERT");
            let create = stats.statement();
            create.committed_if_write("CREATE TABLE");
            let now = stats.json();
            assert_eq!(now["connections"]["postgres"], 1);
            assert_eq!(now["statements"]["running"], 2);
            let mut bad = stats.statement();
            bad.failed();
            bad.failed();
        }
        let after = stats.json();
        assert_eq!(after["connections"]["postgres"], 0);
        assert_eq!(after["statements"]["running"], 0);
        assert_eq!(after["statements"]["total"], 3);
        assert_eq!(after["statements"]["failed"], 1);
        assert_eq!(after["commits"], 1);
    }
}
