//! The interactive shell: multi-line statements ended by `;`, history in
//! `~/.tidelake_history`, tab completion of keywords, tables and columns,
//! `\timing` to print each statement's time, a progress line for long
//! statements, `\q` or `exit` to leave. Errors are printed and the shell
//! goes on.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;
use tidelake_sql::{statement_is_complete, Session};

use crate::complete::SqlHelper;
use crate::output::{print_result, Format};
use crate::progress::ProgressLine;

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".tidelake_history"))
}

/// Whether a line (outside a statement) asks to leave the shell.
fn is_quit(line: &str) -> bool {
    matches!(line.trim().trim_end_matches(';'), "\\q" | "exit" | "quit")
}

/// A backslash command of the shell other than `\q`.
#[derive(Debug, PartialEq, Eq)]
enum MetaCommand {
    /// `\timing [on|off]`: with no argument, toggles.
    Timing(Option<bool>),
    Help,
    Unknown(String),
}

fn meta_command(line: &str) -> Option<MetaCommand> {
    let line = line.trim();
    let rest = line.strip_prefix('\\')?;
    let mut words = rest.split_whitespace();
    let command = words.next().unwrap_or("");
    Some(match (command, words.next()) {
        ("timing", None) => MetaCommand::Timing(None),
        ("timing", Some("on")) => MetaCommand::Timing(Some(true)),
        ("timing", Some("off")) => MetaCommand::Timing(Some(false)),
        ("?" | "help", _) => MetaCommand::Help,
        _ => MetaCommand::Unknown(line.to_string()),
    })
}

const META_HELP: &str = "\
  \\timing [on|off]   print how long each statement took
  \\q                 leave the shell (also: exit, quit)
  \\?                 this help
  Tab completes keywords, databases, tables and the current database's columns.";

/// How psql prints a statement's time.
fn format_timing(elapsed: Duration) -> String {
    format!("Time: {:.3} ms", elapsed.as_secs_f64() * 1000.0)
}

struct Shell<'a> {
    session: &'a Session,
    format: Format,
    timing: bool,
    helper: SqlHelper,
}

impl Shell<'_> {
    fn run_meta(&mut self, command: MetaCommand) {
        match command {
            MetaCommand::Timing(setting) => {
                self.timing = setting.unwrap_or(!self.timing);
                let state = if self.timing { "on" } else { "off" };
                println!("Timing is {state}.");
            }
            MetaCommand::Help => println!("{META_HELP}"),
            MetaCommand::Unknown(line) => {
                eprintln!("error: unknown shell command '{line}' (\\? lists them)")
            }
        }
    }

    async fn run_sql(&mut self, sql: &str) {
        let progress = ProgressLine::start(self.session.progress());
        let (format, timing) = (self.format, self.timing);
        let mut since = Instant::now();
        let mut print = |result: tidelake_sql::StatementResult| {
            let elapsed = since.elapsed();
            progress.between_statements(|| {
                let stdout = std::io::stdout();
                let stderr = std::io::stderr();
                let (mut out, mut err) = (stdout.lock(), stderr.lock());
                if let Err(e) = print_result(&result, format, &mut out, &mut err) {
                    eprintln!("error: cannot print the result: {e}");
                }
                if timing {
                    let _ = writeln!(out, "{}", format_timing(elapsed));
                }
                let _ = out.flush();
            });
            since = Instant::now();
        };
        let outcome = self.session.execute_each(sql, &mut print).await;
        drop(progress);
        if let Err(e) = outcome {
            eprintln!("error[{}]: {e}", e.code());
            if timing {
                println!("{}", format_timing(since.elapsed()));
            }
        }
        if SqlHelper::may_change_names(sql) {
            self.helper.refresh(self.session).await;
        }
    }
}

pub async fn run(session: &Session, format: Format) -> ExitCode {
    let mut editor: Editor<SqlHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the line editor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut shell = Shell {
        session,
        format,
        timing: false,
        helper: SqlHelper::default(),
    };
    shell.helper.refresh(session).await;
    editor.set_helper(Some(shell.helper.clone()));
    let history = history_path();
    if let Some(path) = &history {
        // A missing history file is normal on first use.
        let _ = editor.load_history(path);
    }
    println!(
        "tidelake SQL shell on {} (end statements with ';', \\? for help, \\q to quit)",
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
                if buffer.is_empty() {
                    if let Some(command) = meta_command(&line) {
                        let _ = editor.add_history_entry(line.as_str());
                        shell.run_meta(command);
                        continue;
                    }
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
                shell.run_sql(&sql).await;
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

    #[test]
    fn meta_commands() {
        assert_eq!(meta_command("\\timing"), Some(MetaCommand::Timing(None)));
        assert_eq!(
            meta_command(" \\timing on"),
            Some(MetaCommand::Timing(Some(true)))
        );
        assert_eq!(
            meta_command("\\timing off"),
            Some(MetaCommand::Timing(Some(false)))
        );
        assert_eq!(meta_command("\\?"), Some(MetaCommand::Help));
        assert_eq!(
            meta_command("\\dt"),
            Some(MetaCommand::Unknown("\\dt".into()))
        );
        assert_eq!(meta_command("SELECT 1"), None);
    }

    #[test]
    fn timing_prints_like_psql() {
        assert_eq!(format_timing(Duration::from_micros(1500)), "Time: 1.500 ms");
    }
}
