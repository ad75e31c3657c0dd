//! `tidelake serve --flight` end to end: the ADBC Flight SQL driver (a
//! Python script), tickets read from another server process, cancel,
//! errors with their SQLSTATE, and garbage at the Flight port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{Action, CancelFlightInfoRequest, FlightInfo};
use futures::TryStreamExt;
use tidelake_testkit::process::run;
use tidelake_testkit::python;
use tidelake_testkit::warehouse::KeptOnFailure;
use tonic::transport::Channel;

use crate::serve::{port_after, serve, Served, TIMEOUT};

/// A server with Flight SQL on an ephemeral port; the server and that port.
fn serve_flight(warehouse: &Path) -> (Served, u16) {
    let server = serve(warehouse, &["--flight", "127.0.0.1:0"]);
    let port =
        port_after(&server.child.stdout(), "Flight SQL: listening on").expect("a Flight SQL port");
    (server, port)
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A Flight SQL client logged in with Basic auth (any user: no users file).
pub(crate) async fn client(port: u16) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("a URI")
        .connect_timeout(TIMEOUT)
        .connect()
        .await
        .expect("connect to the Flight port");
    let mut client = FlightSqlServiceClient::new(channel);
    client
        .handshake("tester", "any")
        .await
        .expect("the handshake");
    client
}

/// Every row of a FlightInfo's endpoints, read through `client`, printed.
pub(crate) async fn read(
    client: &mut FlightSqlServiceClient<Channel>,
    info: &FlightInfo,
) -> String {
    let mut out = Vec::new();
    for endpoint in &info.endpoint {
        let ticket = endpoint.ticket.clone().expect("a ticket");
        let stream = client.do_get(ticket).await.expect("DoGet");
        let batches: Vec<_> = stream.try_collect().await.expect("the rows");
        for batch in &batches {
            assert_eq!(
                batch.schema().fields(),
                info.clone().try_decode_schema().expect("a schema").fields(),
                "the DoGet schema equals the FlightInfo schema"
            );
        }
        out.push(
            arrow::util::pretty::pretty_format_batches(&batches)
                .expect("printable")
                .to_string(),
        );
    }
    out.join("\n")
}

#[test]
fn adbc_python_client_queries_binds_lists_and_ingests() {
    let Some(python) = python::or_skip("the ADBC Flight SQL client test") else {
        return;
    };
    let dir = KeptOnFailure::new("flight-adbc");
    let (mut server, port) = serve_flight(dir.path());
    let script = python::workspace_root().join("tests/server/flight_client.py");
    let mut command = Command::new(python);
    command.arg(script).arg(port.to_string());
    let done = run(&mut command, "", Duration::from_secs(240));
    assert!(
        done.status.success(),
        "the ADBC client failed\nstdout:\n{}\nstderr:\n{}\nserver stderr:\n{}",
        done.stdout,
        done.stderr,
        server.child.stderr()
    );
    for check in [
        "execute_and_fetch",
        "parameters",
        "get_objects",
        "get_table_schema",
        "ingest",
        "errors_carry_sqlstate",
        "bad_credentials",
    ] {
        assert!(
            done.stdout.contains(&format!("ok {check}\n")),
            "{}",
            done.stdout
        );
    }
    server.child.kill();
}

#[test]
fn a_ticket_from_one_process_is_read_at_another() {
    let dir = KeptOnFailure::new("flight-two-processes");
    let (mut first, first_port) = serve_flight(dir.path());
    let (mut second, second_port) = serve_flight(dir.path());
    runtime().block_on(async {
        let mut a = client(first_port).await;
        let mut b = client(second_port).await;
        a.execute_update("CREATE TABLE shared (id BIGINT, name STRING)".into(), None)
            .await
            .expect("CREATE TABLE at the first process");
        let inserted = a
            .execute_update(
                "INSERT INTO shared VALUES (1, 'one'), (2, 'two')".into(),
                None,
            )
            .await
            .expect("INSERT at the first process");
        assert_eq!(inserted, 2);
        // GetFlightInfo at the first process, DoGet at the second.
        let info = a
            .execute("SELECT id, name FROM shared ORDER BY id".into(), None)
            .await
            .expect("GetFlightInfo");
        let rows = read(&mut b, &info).await;
        assert!(rows.contains("| 1  | one  |"), "{rows}");
        assert!(rows.contains("| 2  | two  |"), "{rows}");
        // The second process's commit is seen by the first.
        b.execute_update("INSERT INTO shared VALUES (3, 'three')".into(), None)
            .await
            .expect("INSERT at the second process");
        let info = b
            .execute("SELECT count(*) AS n FROM shared".into(), None)
            .await
            .expect("GetFlightInfo");
        let counted = read(&mut a, &info).await;
        assert!(counted.contains("| 3 |"), "{counted}");
        // A prepared statement with a parameter, read at the other process.
        let mut prepared = a
            .prepare("SELECT name FROM shared WHERE id = ?".into(), None)
            .await
            .expect("prepare");
        let id = arrow::array::RecordBatch::try_from_iter([(
            "id",
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![2])) as arrow::array::ArrayRef,
        )])
        .expect("a parameter batch");
        prepared.set_parameters(id).expect("bind");
        let info = prepared.execute().await.expect("GetFlightInfo");
        let named = read(&mut b, &info).await;
        assert!(named.contains("| two  |"), "{named}");
    });
    first.child.kill();
    second.child.kill();
}

#[test]
fn cancel_ends_a_query_and_errors_carry_their_sqlstate() {
    let dir = KeptOnFailure::new("flight-cancel");
    let (mut server, port) = serve_flight(dir.path());
    runtime().block_on(async {
        let mut c = client(port).await;
        let slow = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r \
                    WHERE n < 1000000000) SELECT count(*) FROM r";
        let info = c.execute(slow.into(), None).await.expect("GetFlightInfo");
        let request = CancelFlightInfoRequest::new(info.clone());
        let body = prost::Message::encode_to_vec(&request);
        let results: Vec<_> = c
            .do_action(Action::new("CancelFlightInfo", body))
            .await
            .expect("CancelFlightInfo")
            .try_collect()
            .await
            .expect("its result");
        // CancelFlightInfoResult { status: CANCELLED (1) }.
        assert_eq!(results.first().map(|r| r.body.to_vec()), Some(vec![8, 1]));
        let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
        let e = match c.do_get(ticket).await {
            Err(e) => e.to_string(),
            Ok(stream) => match stream.try_collect::<Vec<_>>().await {
                Err(e) => e.to_string(),
                Ok(rows) => panic!("a cancelled query returned {rows:?}"),
            },
        };
        assert!(e.contains("57014"), "{e}");

        let missing = c
            .execute("SELECT * FROM nothing".into(), None)
            .await
            .expect_err("an unknown table");
        let text = missing.to_string();
        assert!(
            // tonic shows the NOT_FOUND code by its description.
            (text.contains("NotFound") || text.contains("entity was not found"))
                && text.contains("SQLSTATE 42P01"),
            "{text}"
        );
        // Still serving.
        let info = c
            .execute("SELECT 40 + 2 AS n".into(), None)
            .await
            .expect("a query");
        assert!(read(&mut c, &info).await.contains("42"));
    });
    server.child.kill();
}

#[test]
fn garbage_at_the_flight_port_does_not_stop_the_server() {
    let dir = KeptOnFailure::new("flight-garbage");
    let (mut server, port) = serve_flight(dir.path());
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    for round in 0..40 {
        let len = 1 + (round * 53) % 400;
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        // Half the rounds get past the HTTP/2 preface into frame parsing.
        if round % 2 == 1 {
            let mut framed = preface.to_vec();
            framed.append(&mut bytes);
            bytes = framed;
        }
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
            panic!("the server stopped accepting after round {round}");
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
    runtime().block_on(async {
        let mut c = client(port).await;
        let info = c
            .execute("SELECT 40 + 2 AS n".into(), None)
            .await
            .expect("a query");
        assert!(read(&mut c, &info).await.contains("42"));
    });
    assert!(server.child.try_status().is_none());
    server.child.kill();
}
