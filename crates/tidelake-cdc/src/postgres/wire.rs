//! A small PostgreSQL client over `postgres-protocol`: startup and
//! authentication (trust, cleartext, MD5, SCRAM-SHA-256), the simple query
//! protocol (text results), `COPY ... TO STDOUT`, and the copy-both mode of
//! a logical replication connection (`replication=database`).
//!
//! Why our own: `tokio-postgres` has no replication mode, and
//! `pg_walstream`'s connection needs `aws-lc-rs` (rustls with another
//! crypto provider, which would change the features of the rustls the
//! workspace shares) or libpq. The protocol subset needed here is small.

use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::CdcError;

pub(crate) type Result<T> = std::result::Result<T, CdcError>;

pub(crate) fn source_error(message: impl Into<String>) -> CdcError {
    CdcError::Source {
        source_kind: "PostgreSQL",
        message: message.into(),
    }
}

/// Connection settings parsed from `host=... port=... user=... password=...
/// dbname=...` (libpq's key/value form) or a `postgres://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
}

impl ConnectConfig {
    pub fn parse(text: &str) -> std::result::Result<ConnectConfig, CdcError> {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        if let Some(rest) = text
            .strip_prefix("postgres://")
            .or_else(|| text.strip_prefix("postgresql://"))
        {
            let (auth, rest) = rest.rsplit_once('@').unwrap_or(("", rest));
            let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
            let db = db.split('?').next().unwrap_or_default();
            if let Some((user, password)) = auth.split_once(':') {
                map.insert("user".into(), user.into());
                map.insert("password".into(), password.into());
            } else if !auth.is_empty() {
                map.insert("user".into(), auth.into());
            }
            let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
            map.insert("host".into(), host.into());
            map.insert("port".into(), port.into());
            if !db.is_empty() {
                map.insert("dbname".into(), db.into());
            }
        } else {
            for pair in text.split_whitespace() {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    CdcError::config(format!("--source: '{pair}' is not key=value"))
                })?;
                map.insert(k.to_ascii_lowercase(), v.trim_matches('\'').to_string());
            }
        }
        let user = map
            .get("user")
            .cloned()
            .unwrap_or_else(|| "postgres".into());
        let port = map.get("port").map_or(Ok(5432), |p| {
            p.parse::<u16>()
                .map_err(|_| CdcError::config(format!("--source: port '{p}' is not a number")))
        })?;
        Ok(ConnectConfig {
            host: map
                .get("host")
                .cloned()
                .unwrap_or_else(|| "127.0.0.1".into()),
            port,
            dbname: map.get("dbname").cloned().unwrap_or_else(|| user.clone()),
            user,
            password: map.get("password").cloned(),
        })
    }
}

/// One server connection.
pub(crate) struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    out: BytesMut,
}

/// Rows of a simple query, as text.
pub(crate) type Rows = Vec<Vec<Option<String>>>;

impl Connection {
    /// Connects and authenticates; `replication` opens a logical
    /// replication connection.
    pub async fn connect(config: &ConnectConfig, replication: bool) -> Result<Connection> {
        let address = format!("{}:{}", config.host, config.port);
        let stream = TcpStream::connect(&address)
            .await
            .map_err(|e| source_error(format!("cannot connect to {address}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Connection {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::new(),
        };
        let mut params = vec![
            ("user", config.user.as_str()),
            ("database", config.dbname.as_str()),
            ("client_encoding", "UTF8"),
            ("TimeZone", "UTC"),
            ("DateStyle", "ISO, YMD"),
            ("extra_float_digits", "3"),
            ("bytea_output", "hex"),
            ("application_name", "tidelake-cdc"),
        ];
        if replication {
            params.push(("replication", "database"));
        }
        frontend::startup_message(params.iter().copied(), &mut conn.out).map_err(io)?;
        conn.flush().await?;
        conn.authenticate(config).await?;
        loop {
            match conn.read().await? {
                Message::ReadyForQuery(_) => return Ok(conn),
                Message::ErrorResponse(e) => return Err(server_error(&e)),
                _ => {}
            }
        }
    }

    async fn authenticate(&mut self, config: &ConnectConfig) -> Result<()> {
        let password = || {
            config.password.clone().ok_or_else(|| {
                source_error(format!(
                    "the server asks a password for user '{}': add password=... to --source",
                    config.user
                ))
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.read().await? {
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?.as_bytes(), &mut self.out)
                        .map_err(io)?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = postgres_protocol::authentication::md5_hash(
                        config.user.as_bytes(),
                        password()?.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.out).map_err(io)?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut found = false;
                    while let Some(m) = mechanisms.next().map_err(io)? {
                        found |= m == postgres_protocol::authentication::sasl::SCRAM_SHA_256;
                    }
                    if !found {
                        return Err(source_error("the server offers no SASL mechanism we know"));
                    }
                    let s = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        postgres_protocol::authentication::sasl::SCRAM_SHA_256,
                        s.message(),
                        &mut self.out,
                    )
                    .map_err(io)?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| source_error("unexpected SASL message"))?;
                    s.update(body.data())
                        .map_err(|e| source_error(format!("SCRAM: {e}")))?;
                    frontend::sasl_response(s.message(), &mut self.out).map_err(io)?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| source_error("unexpected SASL message"))?;
                    s.finish(body.data())
                        .map_err(|e| source_error(format!("SCRAM: {e}")))?;
                    continue;
                }
                Message::ErrorResponse(e) => return Err(server_error(&e)),
                _ => return Err(source_error("an authentication method we do not support")),
            }
            self.flush().await?;
        }
    }

    async fn flush(&mut self) -> Result<()> {
        self.stream.write_all(&self.out).await.map_err(io_lost)?;
        self.out.clear();
        Ok(())
    }

    /// The next message from the server.
    pub async fn read(&mut self) -> Result<Message> {
        loop {
            if let Some(message) = Message::parse(&mut self.buf).map_err(io)? {
                return Ok(message);
            }
            let n = self.stream.read_buf(&mut self.buf).await.map_err(io_lost)?;
            if n == 0 {
                return Err(source_error("the server closed the connection"));
            }
        }
    }

    /// Runs one or more statements; returns the rows of the last that had any.
    pub async fn query(&mut self, sql: &str) -> Result<Rows> {
        frontend::query(sql, &mut self.out).map_err(io)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read().await? {
                Message::RowDescription(_) => rows.clear(),
                Message::DataRow(body) => {
                    let buffer = body.buffer();
                    let mut row = Vec::new();
                    let mut ranges = body.ranges();
                    while let Some(range) = ranges.next().map_err(io)? {
                        row.push(range.map(|r| String::from_utf8_lossy(&buffer[r]).into_owned()));
                    }
                    rows.push(row);
                }
                Message::ErrorResponse(e) => error = Some(server_error(&e)),
                Message::CopyInResponse(_) => {
                    frontend::copy_fail("unexpected COPY FROM", &mut self.out).map_err(io)?;
                    self.flush().await?;
                }
                Message::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    }
                }
                _ => {}
            }
        }
    }

    /// Starts `COPY ... TO STDOUT`; then call [`Connection::copy_row`].
    pub async fn copy_out(&mut self, sql: &str) -> Result<()> {
        frontend::query(sql, &mut self.out).map_err(io)?;
        self.flush().await?;
        loop {
            match self.read().await? {
                Message::CopyOutResponse(_) => return Ok(()),
                Message::ErrorResponse(e) => {
                    let error = server_error(&e);
                    self.wait_ready().await?;
                    return Err(error);
                }
                _ => {}
            }
        }
    }

    /// The next data of a COPY out (a text row with its newline), `None` at
    /// its end.
    pub async fn copy_row(&mut self) -> Result<Option<bytes::Bytes>> {
        loop {
            match self.read().await? {
                Message::CopyData(body) => return Ok(Some(body.into_bytes())),
                Message::CopyDone => {}
                Message::CommandComplete(_) => {}
                Message::ReadyForQuery(_) => return Ok(None),
                Message::ErrorResponse(e) => {
                    let error = server_error(&e);
                    self.wait_ready().await?;
                    return Err(error);
                }
                _ => {}
            }
        }
    }

    async fn wait_ready(&mut self) -> Result<()> {
        loop {
            if let Message::ReadyForQuery(_) = self.read().await? {
                return Ok(());
            }
        }
    }

    /// Sends a replication command that enters copy-both mode
    /// (`START_REPLICATION`). `postgres-protocol` does not parse
    /// CopyBothResponse ('W'), so the frames are read raw.
    pub async fn start_copy_both(&mut self, sql: &str) -> Result<()> {
        self.send_query(sql).await?;
        loop {
            match self.read_frame().await? {
                (b'W', _) => return Ok(()),
                (b'E', body) => return Err(source_error(error_frame_text(&body))),
                (b'N' | b'S' | b'Z', _) => {}
                (tag, _) => {
                    return Err(source_error(format!(
                        "unexpected answer '{}' to START_REPLICATION",
                        tag as char
                    )))
                }
            }
        }
    }

    /// Sends CopyData bytes (a standby status update).
    pub async fn send_copy_data(&mut self, data: &[u8]) -> Result<()> {
        frontend::CopyData::new(data)
            .map_err(io)?
            .write(&mut self.out);
        self.flush().await
    }

    /// Reads the raw next frame: its tag and body (copy-both mode, where
    /// `CopyBothResponse` must be recognised).
    pub async fn read_frame(&mut self) -> Result<(u8, bytes::Bytes)> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    .max(4) as usize;
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    let mut frame = self.buf.split_to(len + 1);
                    frame.advance(5);
                    return Ok((tag, frame.freeze()));
                }
                self.buf.reserve(len + 1 - self.buf.len());
            }
            let n = self.stream.read_buf(&mut self.buf).await.map_err(io_lost)?;
            if n == 0 {
                return Err(source_error("the server closed the replication connection"));
            }
        }
    }

    /// Sends a query without reading its answer (copy-both start).
    pub async fn send_query(&mut self, sql: &str) -> Result<()> {
        frontend::query(sql, &mut self.out).map_err(io)?;
        self.flush().await
    }

    pub async fn terminate(mut self) {
        frontend::terminate(&mut self.out);
        let _ = self.flush().await;
    }
}

/// The text of an ErrorResponse frame body (copy-both mode).
pub(crate) fn error_frame_text(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .filter(|f| f.first().is_some_and(|t| matches!(t, b'M' | b'C' | b'D')))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .collect::<Vec<_>>()
        .join(": ")
}

fn server_error(body: &postgres_protocol::message::backend::ErrorResponseBody) -> CdcError {
    let mut fields = body.fields();
    let mut message = String::new();
    let mut code = String::new();
    let mut detail = String::new();
    while let Ok(Some(f)) = fields.next() {
        let value = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'M' => message = value,
            b'C' => code = value,
            b'D' => detail = value,
            _ => {}
        }
    }
    let mut text = format!("{message} (SQLSTATE {code})");
    if !detail.is_empty() {
        text.push_str(&format!(": {detail}"));
    }
    source_error(text)
}

fn io(e: std::io::Error) -> CdcError {
    source_error(format!("protocol error: {e}"))
}

fn io_lost(e: std::io::Error) -> CdcError {
    source_error(format!("connection lost: {e}"))
}

/// `'text'` as an SQL literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `name` as an SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_in_both_forms() {
        let c = ConnectConfig::parse("host=127.0.0.1 user=postgres dbname=shop").unwrap();
        assert_eq!(
            (c.port, c.dbname.as_str(), c.password),
            (5432, "shop", None)
        );
        let u = ConnectConfig::parse("postgres://u:p@db:6543/shop").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.user.as_str(),
                u.password.as_deref(),
                u.dbname.as_str()
            ),
            ("db", 6543, "u", Some("p"), "shop")
        );
        assert!(ConnectConfig::parse("nonsense").is_err());
    }
}
