//! Accepted connections of the HTTP and Flight SQL listeners, counted in
//! the metrics while they are open (`tidelake_connections_opened_total`,
//! `tidelake_connections_active`), as the PostgreSQL listener counts its
//! own. A connection is the TCP connection: many HTTP requests or gRPC
//! calls may share one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::telemetry::ConnectionGauge;

/// A TCP connection, counted as open until dropped.
pub(crate) struct Counted {
    stream: TcpStream,
    _gauge: ConnectionGauge,
}

impl Counted {
    fn new(stream: TcpStream, protocol: &'static str) -> Counted {
        // Small requests and answers: send them at once.
        let _ = stream.set_nodelay(true);
        Counted {
            stream,
            _gauge: ConnectionGauge::open(protocol),
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

/// Accepts the next connection; an error (out of file descriptors, a
/// connection reset before it was accepted) is logged and waited out, so
/// the listener keeps serving.
async fn accept(listener: &TcpListener, protocol: &'static str) -> (Counted, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => return (Counted::new(stream, protocol), addr),
            Err(e) => {
                tracing::warn!(protocol, "cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The HTTP listener, for `axum::serve`.
pub(crate) struct CountedListener {
    listener: TcpListener,
    protocol: &'static str,
}

impl CountedListener {
    pub(crate) fn new(listener: TcpListener, protocol: &'static str) -> CountedListener {
        CountedListener { listener, protocol }
    }
}

impl axum::serve::Listener for CountedListener {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Counted, std::net::SocketAddr) {
        accept(&self.listener, self.protocol).await
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }
}

/// The connections of `listener` as a stream, for tonic.
pub(crate) fn incoming(
    listener: TcpListener,
    protocol: &'static str,
) -> impl Stream<Item = Result<Counted, io::Error>> {
    futures::stream::unfold(listener, move |listener| async move {
        let (counted, _) = accept(&listener, protocol).await;
        Some((Ok(counted), listener))
    })
}

/// A TLS connection of the HTTP or Flight SQL listener (counted as its TCP
/// connection is).
pub(crate) struct Secured(tokio_rustls::server::TlsStream<Counted>);

impl AsyncRead for Secured {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Secured {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Connected for Secured {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

/// How long a client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The first byte of a TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Accepts connections and runs their TLS handshakes in tasks of their own
/// (a slow client delays no other), handing over those that complete.
fn tls_connections(
    listener: TcpListener,
    protocol: &'static str,
    acceptor: tokio_rustls::TlsAcceptor,
) -> tokio::sync::mpsc::Receiver<(Secured, std::net::SocketAddr)> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (counted, addr) = accept(&listener, protocol).await;
            if sender.is_closed() {
                return;
            }
            let sender = sender.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let handshake = handshake(counted, protocol, &acceptor);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(secured)) => {
                        let _ = sender.send((secured, addr)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(protocol, %addr, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(protocol, %addr, "TLS handshake timed out"),
                }
            });
        }
    });
    receiver
}

/// The TLS handshake; a client speaking plain HTTP is told (400) that this
/// port wants TLS, and refused.
async fn handshake(
    mut counted: Counted,
    protocol: &'static str,
    acceptor: &tokio_rustls::TlsAcceptor,
) -> io::Result<Secured> {
    let mut first = [0u8; 1];
    if counted.stream.peek(&mut first).await? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        crate::telemetry::refused(protocol, "tls");
        let body = "this server requires TLS: use https:// (or grpc+tls://)\n";
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Read what the client sent, so that closing does not reset the
        // connection before it reads the answer.
        let mut request = [0u8; 4096];
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            counted.stream.read(&mut request),
        )
        .await;
        counted.stream.write_all(answer.as_bytes()).await?;
        counted.stream.shutdown().await?;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a client without TLS was refused",
        ));
    }
    Ok(Secured(acceptor.accept(counted).await?))
}

/// The TLS connections of `listener` as a stream, for tonic.
pub(crate) fn tls_incoming(
    listener: TcpListener,
    protocol: &'static str,
    acceptor: tokio_rustls::TlsAcceptor,
) -> impl Stream<Item = Result<Secured, io::Error>> {
    let receiver = tls_connections(listener, protocol, acceptor);
    futures::stream::unfold(receiver, |mut receiver| async move {
        let (secured, _) = receiver.recv().await?;
        Some((Ok(secured), receiver))
    })
}

/// The HTTPS listener, for `axum::serve`.
pub(crate) struct TlsListener {
    receiver: tokio::sync::mpsc::Receiver<(Secured, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
}

impl TlsListener {
    pub(crate) fn new(
        listener: TcpListener,
        protocol: &'static str,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        Ok(TlsListener {
            receiver: tls_connections(listener, protocol, acceptor),
            local,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Secured;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Secured, std::net::SocketAddr) {
        match self.receiver.recv().await {
            Some(accepted) => accepted,
            // The accepting task ended: serve nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        Ok(self.local)
    }
}
