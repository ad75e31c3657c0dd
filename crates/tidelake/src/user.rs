//! `tidelake user add`: writes a user into a server's users file (a
//! SCRAM-SHA-256 verifier of the password, never the password), and the
//! file's token secret (the key Flight SQL bearer tokens are signed with)
//! when it has none; `tidelake user rotate-token-secret` replaces that
//! secret, which revokes every token signed with the old one.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use tidelake_server::users::{add_user, rotate_token_secret, Role};

pub const USER_HELP: &str = "\
Examples:
  tidelake user add ada --role admin --users users.toml          (asks for the password twice)
  printf '%s' \"$PW\" | tidelake user add etl --role writer --password-stdin --users users.toml
  tidelake user add bi --role reader --database sales --database marketing --users users.toml
Roles: reader (queries), writer (also INSERT/UPDATE/DELETE/MERGE/COPY FROM/CALL),
admin (also CREATE/DROP/ALTER and anything else). Then: tidelake serve --users users.toml
The file also keeps [server] token-secret, the key Flight SQL bearer tokens
are signed with (servers sharing the file accept each other's tokens):
  tidelake user rotate-token-secret --users users.toml   (revokes every token; restart the servers)";

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user (or replace one of the same name) in the users file
    Add(AddArgs),
    /// Replace the users file's token secret: every Flight SQL bearer
    /// token signed with the old one is refused once servers restart
    RotateTokenSecret(RotateArgs),
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// The users file
    #[arg(long, value_name = "FILE", default_value = "users.toml")]
    users: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The user's name (letters, digits, '_', '-', '.')
    name: String,
    /// What the user may do: admin, writer or reader
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// A database the user may use (repeatable; none: all databases)
    #[arg(long = "database", value_name = "DB")]
    databases: Vec<String>,
    /// The users file (created if absent)
    #[arg(long, value_name = "FILE", default_value = "users.toml")]
    users: PathBuf,
    /// Read the password from the first line of stdin instead of asking
    #[arg(long)]
    password_stdin: bool,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text:?}: admin, writer or reader"))
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("Password: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let again = rpassword::prompt_password("Password again: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    if first != again {
        return Err("the passwords differ".into());
    }
    Ok(first)
}

pub fn run_user(command: UserCommand) -> ExitCode {
    let args = match command {
        UserCommand::Add(args) => args,
        UserCommand::RotateTokenSecret(args) => {
            if !args.users.exists() {
                eprintln!(
                    "error: there is no users file {}: `tidelake user add` creates one",
                    args.users.display()
                );
                return ExitCode::FAILURE;
            }
            return match rotate_token_secret(&args.users) {
                Ok(()) => {
                    println!(
                        "new token secret written to {}: restart the servers that use it",
                        args.users.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let password = match read_password(args.password_stdin) {
        Ok(p) if p.is_empty() => {
            eprintln!("error: the password is empty");
            return ExitCode::FAILURE;
        }
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match add_user(
        &args.users,
        &args.name,
        args.role,
        args.databases,
        &password,
    ) {
        Ok(()) => {
            println!(
                "user \"{}\" ({}) written to {}",
                args.name,
                args.role.name(),
                args.users.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
