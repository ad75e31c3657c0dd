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
