//! Session settings the server keeps for each connection (`SET`, `RESET`,
//! `SHOW`): `statement_timeout` and `search_path` act, the rest (what
//! clients set at startup, like `extra_float_digits` or `application_name`)
//! is kept and shown back.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::StatementError;

/// The server version clients see: PostgreSQL 15's protocol and catalog shape.
pub const SERVER_VERSION: &str = "15.0";

/// `SELECT version()`.
pub fn version_text() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Tidelake {}) on a Paimon warehouse, compatible wire protocol",
        env!("CARGO_PKG_VERSION")
    )
}

/// The settings of one connection.
pub struct Settings {
    pub statement_timeout: Option<Duration>,
    default_timeout: Option<Duration>,
    values: BTreeMap<String, String>,
}

fn defaults() -> BTreeMap<String, String> {
    [
        ("server_version", SERVER_VERSION),
        ("server_version_num", "150000"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("intervalstyle", "postgres"),
        ("timezone", "UTC"),
        ("standard_conforming_strings", "on"),
        ("integer_datetimes", "on"),
        ("transaction_isolation", "read committed"),
        ("default_transaction_isolation", "read committed"),
        ("transaction_read_only", "off"),
        ("default_transaction_read_only", "off"),
        ("max_identifier_length", "63"),
        ("extra_float_digits", "1"),
        ("is_superuser", "on"),
        ("lc_messages", "C"),
        ("application_name", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Settings {
    pub fn new(statement_timeout: Option<Duration>) -> Settings {
        Settings {
            statement_timeout,
            default_timeout: statement_timeout,
            values: defaults(),
        }
    }

    /// Sets a parameter (not `search_path`, which the session keeps).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), StatementError> {
        let name = name.to_ascii_lowercase();
        if name == "statement_timeout" {
            self.statement_timeout = parse_duration(value).map_err(|e| {
                StatementError::refused(
                    "22023",
                    format!("invalid value for parameter \"statement_timeout\": {e}"),
                )
            })?;
            return Ok(());
        }
        let fixed = [
            "server_version",
            "server_version_num",
            "server_encoding",
            "integer_datetimes",
        ];
        if fixed.contains(&name.as_str()) {
            return Err(StatementError::refused(
                "55P02",
                format!("parameter \"{name}\" cannot be changed"),
            ));
        }
        self.values.insert(name, value.to_string());
        Ok(())
    }

    pub fn reset(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        if name == "all" {
            self.values = defaults();
            self.statement_timeout = self.default_timeout;
        } else if name == "statement_timeout" {
            self.statement_timeout = self.default_timeout;
        } else if let Some(default) = defaults().get(&name) {
            self.values.insert(name, default.clone());
        } else {
            self.values.remove(&name);
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        if name == "statement_timeout" {
            return Some(match self.statement_timeout {
                None => "0".into(),
                Some(d) => format!("{}ms", d.as_millis()),
            });
        }
        self.values.get(&name).cloned()
    }

    /// Every parameter, for `SHOW ALL`.
    pub fn all(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.push((
            "statement_timeout".into(),
            self.get("statement_timeout").unwrap_or_default(),
        ));
        all.sort();
        all
    }
}

/// A duration as PostgreSQL and the command line write it: `0` (none),
/// `1500` (milliseconds), `500ms`, `30s`, `5min`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim().trim_matches('\'').trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (e.g. 0, 500ms, 30s, 5min)"))?;
    let millis = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => n,
        "s" => n * 1e3,
        "min" | "m" => n * 60e3,
        "h" => n * 3600e3,
        "d" => n * 86400e3,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}' (ms, s, min, h, d)"
            ))
        }
    };
    Ok((millis >= 1.0).then(|| Duration::from_millis(millis as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_postgres() {
        assert_eq!(parse_duration("0"), Ok(None));
        assert_eq!(
            parse_duration("1500"),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert_eq!(parse_duration("'2s'"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(parse_duration("5min"), Ok(Some(Duration::from_secs(300))));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn timeout_is_set_shown_and_reset() {
        let mut s = Settings::new(Some(Duration::from_secs(60)));
        s.set("statement_timeout", "100").unwrap();
        assert_eq!(s.get("STATEMENT_TIMEOUT").as_deref(), Some("100ms"));
        s.reset("statement_timeout");
        assert_eq!(s.statement_timeout, Some(Duration::from_secs(60)));
        assert!(s.set("server_version", "9").is_err());
    }
}
