//! The interactive shell on a real terminal (a pseudo-terminal from
//! util-linux's `script`): `\timing`, tab completion of tables and columns,
//! and statements typed line by line.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::TIDELAKE;

/// A shell under a pseudo-terminal; its output with terminal escapes and
/// carriage returns removed.
struct Terminal {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
}

impl Terminal {
    fn start(warehouse: &Path, home: &Path) -> Terminal {
        let shell = format!(
            "{} --warehouse {} sql",
            env!("CARGO_BIN_EXE_tidelake"),
            warehouse.display()
        );
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &shell, "/dev/null"])
            .env("HOME", home)
            .env("TERM", "xterm")
            .env_remove("TIDELAKE_WAREHOUSE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("util-linux `script` runs the shell under a pseudo-terminal");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                sink.lock().unwrap().push_str(&text);
            }
        });
        Terminal {
            child,
            stdin,
            output,
        }
    }

    fn text(&self) -> String {
        strip_escapes(&self.output.lock().unwrap())
    }

    /// Waits until the output holds `needle` `times` times.
    fn wait_for(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.text().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} (x{times}) in:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types a line once the shell shows its `n`-th prompt.
    fn type_at_prompt(&mut self, n: usize, line: &str) {
        self.wait_for("> ", n);
        // The prompt is drawn once the line editor reads keys.
        std::thread::sleep(Duration::from_millis(100));
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.write_all(b"\r").unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_escapes(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameters, then one final letter.
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() || c == '~' {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[test]
fn timing_and_completion_of_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    TIDELAKE.sql(
        &warehouse,
        &[
            "CREATE DATABASE shop",
            "CREATE TABLE shop.orders (order_id BIGINT, amount DOUBLE)",
            "INSERT INTO shop.orders VALUES (1, 2.5)",
        ],
        &[],
    );
    let mut terminal = Terminal::start(&warehouse, dir.path());
    terminal.type_at_prompt(1, "USE shop;");
    terminal.type_at_prompt(2, "\\timing");
    terminal.wait_for("Timing is on.", 1);
    // `amo` completes to the column, `shop.ord` to the table.
    terminal.type_at_prompt(3, "SELECT amo\t FROM shop.ord\t;");
    terminal.wait_for("(1 row)", 1);
    terminal.wait_for("Time: ", 1);
    terminal.type_at_prompt(4, "\\q");
    let deadline = Instant::now() + Duration::from_secs(30);
    while terminal.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the shell did not quit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = terminal.text();
    assert!(text.contains("| amount |"), "{text}");
    assert!(text.contains("| 2.5    |"), "{text}");
    assert!(text.contains("SELECT amount FROM shop.orders;"), "{text}");
}
