//! The PostgreSQL front end: one task per connection, at most
//! `max_connections` at once; a connection's failure (bad bytes, a client
//! that disappears, even a panic) ends that connection only.

pub(crate) mod catalog;
pub(crate) mod connection;
pub(crate) mod handler;
pub(crate) mod params;
pub(crate) mod settings;
mod tls;
pub mod types;

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::Shared;
use connection::Connection;
use handler::Handler;

/// Accepts connections until the listener fails.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "refused a connection: {max_connections} already open");
            crate::telemetry::refused("pg", "limit");
            tokio::spawn(refuse(socket));
            continue;
        };
        let shared = shared.clone();
        let shared_stats = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _gauge = crate::telemetry::ConnectionGauge::open("pg");
            let handler = Handler {
                conn: Arc::new(Connection::new(shared, "pg")),
            };
            let _open = shared_stats.stats.connection();
            tracing::debug!(%peer, "connection opened");
            let served = match tls {
                Some(acceptor) => tls::process_tls_socket(socket, peer, acceptor, handler).await,
                None => pgwire::tokio::process_socket(socket, None, handler).await,
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(slot);
        });
    }
}

/// SSLRequest and GSSENCRequest codes.
const NEGOTIATION_CODES: [i32; 2] = [80_877_103, 80_877_104];

/// Reads what a client sends before its startup packet is answered:
/// encryption requests (answered `N`, as without TLS), then the startup
/// packet itself, so that the client reads the error that follows.
async fn skip_startup(socket: &mut TcpStream) -> std::io::Result<()> {
    for _ in 0..3 {
        let mut len = [0u8; 4];
        socket.read_exact(&mut len).await?;
        let len = i32::from_be_bytes(len);
        if !(8..=10_000).contains(&len) {
            return Ok(());
        }
        let mut body = vec![0u8; len as usize - 4];
        socket.read_exact(&mut body).await?;
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if !NEGOTIATION_CODES.contains(&code) {
            return Ok(());
        }
        socket.write_all(b"N").await?;
    }
    Ok(())
}

/// Tells a client over the limit why, as PostgreSQL does (FATAL 53300).
async fn refuse(mut socket: TcpStream) {
    let wait = std::time::Duration::from_secs(5);
    let _ = tokio::time::timeout(wait, skip_startup(&mut socket)).await;
    fatal(&mut socket, "53300", "sorry, too many clients already").await;
}

/// Sends a FATAL error (before any session exists) and closes.
async fn fatal(socket: &mut TcpStream, code: &str, message: &str) {
    let fields: &[(u8, &str)] = &[
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ];
    let mut body = Vec::new();
    for (code, value) in fields {
        body.push(*code);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    message.extend_from_slice(&body);
    let _ = socket.write_all(&message).await;
    let _ = socket.shutdown().await;
}
