//! The interactive shell: multi-line statements ended by `;`, history in
//! `~/.tidelake_history`, `\q` or `exit` to leave. Errors are printed and
//! the shell goes on.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use tidelake_sql::{statement_is_complete, Session};

use crate::output::{print_result, Format};

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".tidelake_history"))
}

/// Whether a line (outside a statement) asks to leave the shell.
fn is_quit(line: &str) -> bool {
    matches!(line.trim().trim_end_matches(';'), "\\q" | "exit" | "quit")
}

pub async fn run(session: &Session, format: Format) -> ExitCode {
    let mut editor = match DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the line editor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let history = history_path();
    if let Some(path) = &history {
        // A missing history file is normal on first use.
        let _ = editor.load_history(path);
    }
    println!(
        "tidelake SQL shell on {} (end statements with ';', \\q to quit)",
        session.catalog().warehouse_uri()
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            format!("tidelake:{}> ", session.current_database())
        } else {
            "      ...> ".to_string()
        };
        match editor.readline(&prompt) {
            Ok(line) => {
                if buffer.is_empty() && is_quit(&line) {
                    break;
                }
                if buffer.is_empty() && line.trim().is_empty() {
                    continue;
                }
                if !buffer.is_empty() {
                    buffer.push('\n');
                }
                buffer.push_str(&line);
                if !statement_is_complete(&buffer) {
                    continue;
                }
                let _ = editor.add_history_entry(buffer.as_str());
                let sql = std::mem::take(&mut buffer);
                let mut print = |result: tidelake_sql::StatementResult| {
                    let stdout = std::io::stdout();
                    let stderr = std::io::stderr();
                    let (mut out, mut err) = (stdout.lock(), stderr.lock());
                    if let Err(e) = print_result(&result, format, &mut out, &mut err) {
                        eprintln!("error: cannot print the result: {e}");
                    }
                    let _ = out.flush();
                };
                if let Err(e) = session.execute_each(&sql, &mut print).await {
                    eprintln!("error[{}]: {e}", e.code());
                }
            }
            Err(ReadlineError::Interrupted) => {
                // Ctrl-C drops the statement being typed.
                buffer.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: cannot read a line: {e}");
                break;
            }
        }
    }
    if let Some(path) = &history {
        if let Err(e) = editor.save_history(path) {
            tracing::warn!("could not save the history to {}: {e}", path.display());
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_commands() {
        assert!(is_quit("\\q"));
        assert!(is_quit("  exit; "));
        assert!(is_quit("quit"));
        assert!(!is_quit("exit_table"));
        assert!(!is_quit("SELECT 1;"));
    }
}
