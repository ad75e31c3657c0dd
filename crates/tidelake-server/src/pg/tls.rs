//! PostgreSQL connections when the server has a certificate: TLS is
//! required. The client's first packet decides: an SSLRequest is answered
//! `S` and the TLS handshake follows; a GSSENCRequest is answered `N` (the
//! client then asks for TLS); a CancelRequest is served in plain text (it
//! carries no data, and older clients send it so whatever the session
//! used); a startup packet without TLS gets FATAL 28000 saying TLS is
//! required, so the user reads why instead of a dropped connection.
//!
//! pgwire's own TLS comes with features that would rebuild half of the
//! dependency tree (see `crate::tls`), so the negotiation is done here and
//! pgwire's message handling (`process_message`, `process_error`) runs over
//! the TLS stream, as its `process_socket` does over TCP.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use pgwire::api::PgWireServerHandlers;
use pgwire::api::{ClientInfo, DefaultClient, ErrorHandler, PgWireConnectionState};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{process_error, process_message, PgWireMessageServerCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Framed, FramedParts};

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// How long a client has to start its session (PostgreSQL's
/// `authentication_timeout` is a minute too).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves one connection that must use TLS.
pub(crate) async fn process_tls_socket<H: PgWireServerHandlers>(
    mut socket: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handlers: H,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let first = tokio::time::timeout(STARTUP_TIMEOUT, negotiate(&mut socket)).await;
    match first {
        Err(_) => Ok(()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(First::Tls)) => {
            let handshake = tokio::time::timeout(STARTUP_TIMEOUT, acceptor.accept(socket)).await;
            let stream = match handshake {
                Ok(stream) => stream?,
                Err(_) => return Ok(()),
            };
            serve_messages(stream, BytesMut::new(), peer, true, handlers).await
        }
        Ok(Ok(First::Cancel(head))) => {
            serve_messages(socket, BytesMut::from(&head[..]), peer, false, handlers).await
        }
        Ok(Ok(First::Plain)) => {
            tracing::info!(%peer, "refused a PostgreSQL connection without TLS");
            crate::telemetry::refused("pg", "tls");
            super::fatal(
                &mut socket,
                "28000",
                "this server requires TLS: connect with sslmode=require (or verify-ca/verify-full)",
            )
            .await;
            Ok(())
        }
    }
}

/// What the client asked for first.
enum First {
    Tls,
    /// A CancelRequest: its first 8 bytes, already read.
    Cancel([u8; 8]),
    /// A startup packet (or garbage) without TLS.
    Plain,
}

async fn negotiate(socket: &mut TcpStream) -> std::io::Result<First> {
    // A client may try GSS encryption first, then TLS.
    for _ in 0..2 {
        let mut head = [0u8; 8];
        socket.read_exact(&mut head).await?;
        let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        match (len, code) {
            (8, SSL_REQUEST) => {
                socket.write_all(b"S").await?;
                return Ok(First::Tls);
            }
            (8, GSSENC_REQUEST) => socket.write_all(b"N").await?,
            (16, CANCEL_REQUEST) => return Ok(First::Cancel(head)),
            _ => {
                // Read the rest of a startup packet, so that closing after
                // the error does not reset the connection before the
                // client has read it.
                if (9..=10_000).contains(&len) {
                    let mut rest = vec![0u8; len as usize - 8];
                    socket.read_exact(&mut rest).await?;
                }
                return Ok(First::Plain);
            }
        }
    }
    Ok(First::Plain)
}

/// pgwire's message loop (as its `process_socket` runs it) over `io`, whose
/// first bytes may already be in `read_buf`.
async fn serve_messages<S, H>(
    io: S,
    read_buf: BytesMut,
    peer: SocketAddr,
    secure: bool,
    handlers: H,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    H: PgWireServerHandlers,
{
    let mut parts = FramedParts::new(
        io,
        PgWireMessageServerCodec::new(DefaultClient::new(peer, secure)),
    );
    parts.read_buf = read_buf;
    let mut socket = Framed::from_parts(parts);
    socket.set_state(PgWireConnectionState::AwaitingStartup);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    let deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let message = if starting {
            tokio::select! {
                _ = &mut deadline => None,
                message = socket.next() => message,
            }
        } else {
            socket.next().await
        };
        let Some(Ok(message)) = message else {
            break;
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended_protocol = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let is_cancel = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        let handled = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut e) = handled {
            errors.on_error(&socket, &mut e);
            let fatal = e.is_fatal();
            process_error(&mut socket, e, extended_protocol).await?;
            if fatal {
                break;
            }
        }
        if is_cancel {
            break;
        }
    }
    Ok(())
}
