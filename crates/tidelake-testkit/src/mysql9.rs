//! The MySQL 9 that `scripts/setup/40-mysql.sh` runs on 127.0.0.1:3307
//! (gtid_mode=ON), shared by the tests of several crates.
//!
//! One of those tests purges the server's binlogs, which would break
//! another's resume from an older position, so each test holds an
//! exclusive lock on a file for its run (nextest runs tests as processes:
//! an in-process mutex would not do). Without a reachable server a test is
//! skipped with a note, except in CI (`CI=true`), where it fails.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The server's address, as a `mysql://` URL without a database.
pub const URL: &str = "mysql://root@127.0.0.1:3307";

/// The lock held for a test's run; `None` (skip the test) when the server
/// does not accept connections outside CI.
pub fn lock_or_skip() -> Option<File> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 3307));
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("MySQL is not reachable at {addr} in CI (scripts/setup/40-mysql.sh): {e}");
        }
        eprintln!("skipped: MySQL is not reachable at {addr} ({e}); run scripts/setup/40-mysql.sh");
        return None;
    }
    let path = std::env::temp_dir().join("tidelake-mysql9-tests.lock");
    let lock = File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    Some(lock)
}
