//! The Arrow Flight SQL front end (gRPC over HTTP/2, with `tonic`, on the
//! server's tokio runtime).
//!
//! - [`auth`]: Basic auth in the Handshake, then signed bearer tokens that
//!   every process sharing the token secret accepts.
//! - [`handle`]: self-contained prepared-statement handles and tickets.
//! - [`params`]: parameters bound as Arrow batches, as SQL literals.
//! - [`metadata`]: GetCatalogs, GetDbSchemas, GetTables, GetTableTypes,
//!   GetSqlInfo, GetPrimaryKeys.
//! - [`ingest`]: bulk ingest into a table, one commit.
//! - [`service`]: the service itself; [`status`]: errors as gRPC statuses.

pub mod auth;
pub(crate) mod handle;
pub(crate) mod ingest;
pub(crate) mod metadata;
pub(crate) mod params;
pub(crate) mod service;
pub(crate) mod status;

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;

use crate::{ServerError, Shared};
use auth::Auth;
use service::FlightSql;

/// The largest message a client may send (a DoPut batch, parameters).
const MAX_MESSAGE: usize = 64 << 20;

/// Serves Flight SQL on `listener` until it fails.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    auth: Auth,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), ServerError> {
    let service = FlightSql::new(shared, auth);
    let server = FlightServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let router = tonic::transport::Server::builder().add_service(server);
    let served = match tls {
        Some(acceptor) => {
            router
                .serve_with_incoming(crate::net::tls_incoming(listener, "flight", acceptor))
                .await
        }
        None => {
            router
                .serve_with_incoming(crate::net::incoming(listener, "flight"))
                .await
        }
    };
    served.map_err(|e| ServerError::Flight(e.to_string()))
}
