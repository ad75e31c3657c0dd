//! Flight SQL with a users file, end to end: two `tidelake serve`
//! processes on one warehouse sharing one users file. Passwords are
//! checked against the file's SCRAM verifiers, a token issued by one
//! process is accepted by the other, tokens that are altered, expired or
//! signed with another secret are refused, and a reader is refused
//! statements, DoPut updates and bulk ingest that write (PERMISSION_DENIED,
//! SQLSTATE 42501) while nothing changes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use futures::TryStreamExt;
use tidelake_server::flight::auth::{Authenticator, Tokens, UsersAuthenticator};
use tidelake_server::users::Users;
use tidelake_testkit::process::run;
use tidelake_testkit::python;
use tidelake_testkit::warehouse::KeptOnFailure;
use tonic::transport::Channel;

use crate::flight::runtime;
use crate::serve::{port_after, serve, Served, TIMEOUT};
use crate::serve_access::add_user;
use crate::TIDELAKE;

/// How tonic shows the two codes these tests expect.
const UNAUTHENTICATED: &str = "does not have valid authentication credentials";
const PERMISSION_DENIED: &str = "does not have permission";

/// The users file: ada (admin), wes (writer), rita (reader, database
/// `default` only).
fn users_file(dir: &Path) -> std::path::PathBuf {
    let users = dir.join("users.toml");
    add_user(&users, "ada", "admin", "ada-pw", &[]);
    add_user(&users, "wes", "writer", "wes-pw", &[]);
    add_user(
        &users,
        "rita",
        "reader",
        "rita-pw",
        &["--database", "default"],
    );
    let text = std::fs::read_to_string(&users).expect("the users file");
    assert!(text.contains("[server]\ntoken-secret = "), "{text}");
    users
}

/// A server with Flight SQL and the users file; the server and its port.
fn serve_flight_with_users(warehouse: &Path, users: &Path) -> (Served, u16) {
    let users = users.to_string_lossy().to_string();
    let server = serve(
        warehouse,
        &["--users", users.as_str(), "--flight", "127.0.0.1:0"],
    );
    let port =
        port_after(&server.child.stdout(), "Flight SQL: listening on").expect("a Flight SQL port");
    (server, port)
}

async fn connect(port: u16) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("a URI")
        .connect_timeout(TIMEOUT)
        .connect()
        .await
        .expect("connect to the Flight port");
    FlightSqlServiceClient::new(channel)
}

/// A client of `port` logged in as `user`; its bearer token too.
async fn login(port: u16, user: &str, password: &str) -> (FlightSqlServiceClient<Channel>, String) {
    let mut client = connect(port).await;
    client
        .handshake(user, password)
        .await
        .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
    let token = client.token().expect("a bearer token").clone();
    (client, token)
}

/// A client of `port` that sends `token`.
async fn with_token(port: u16, token: &str) -> FlightSqlServiceClient<Channel> {
    let mut client = connect(port).await;
    client.set_token(token.to_string());
    client
}

/// The rows of a query, printed; or the error's text.
async fn query(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Result<String, String> {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    for endpoint in &info.endpoint {
        let ticket = endpoint.ticket.clone().ok_or("no ticket")?;
        let stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
        let mut read: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| e.to_string())?;
        batches.append(&mut read);
    }
    Ok(arrow::util::pretty::pretty_format_batches(&batches)
        .expect("printable")
        .to_string())
}

fn batch() -> RecordBatch {
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![10, 11])) as ArrayRef),
        ("v", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
    ])
    .expect("a batch")
}

fn ingest_command(
    table: &str,
    if_missing: TableNotExistOption,
    if_exists: TableExistsOption,
) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: if_missing as i32,
            if_exists: if_exists as i32,
        }),
        table: table.to_string(),
        schema: None,
        catalog: None,
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

async fn ingest(
    client: &mut FlightSqlServiceClient<Channel>,
    cmd: CommandStatementIngest,
) -> Result<i64, String> {
    client
        .execute_ingest(cmd, futures::stream::iter([Ok(batch())]))
        .await
        .map_err(|e| e.to_string())
}

/// `text` with its first character replaced by another base64 character.
fn flip_first(text: &str) -> String {
    let mut chars = text.chars();
    let first = chars.next().expect("not empty");
    let other = if first == 'A' { 'B' } else { 'A' };
    std::iter::once(other).chain(chars).collect()
}

fn assert_denied(result: Result<impl std::fmt::Debug, String>, what: &str) {
    let e = result.expect_err(what);
    assert!(
        e.contains(PERMISSION_DENIED) && e.contains("42501"),
        "{what}: {e}"
    );
}

fn assert_unauthenticated(result: Result<impl std::fmt::Debug, String>, what: &str) {
    let e = result.expect_err(what);
    assert!(e.contains(UNAUTHENTICATED), "{what}: {e}");
}

#[test]
fn flight_users_tokens_across_processes_and_roles() {
    let dir = KeptOnFailure::new("flight-users");
    let users = users_file(dir.path());
    let warehouse = dir.path().join("wh");
    let (mut first, a) = serve_flight_with_users(&warehouse, &users);
    let (mut second, b) = serve_flight_with_users(&warehouse, &users);
    let secret = runtime().block_on(async {
        // Wrong passwords and unknown users: UNAUTHENTICATED at the Handshake.
        for (user, password) in [("ada", "wrong"), ("nobody", "ada-pw"), ("ada", "")] {
            let refused = connect(a).await.handshake(user, password).await;
            assert_unauthenticated(refused.map_err(|e| e.to_string()), user);
        }
        // No credentials at all: refused too (there are users).
        let mut anonymous = connect(a).await;
        assert_unauthenticated(query(&mut anonymous, "SELECT 1").await, "anonymous");

        let (mut ada, ada_token) = login(a, "ada", "ada-pw").await;
        ada.execute_update("CREATE TABLE t (id BIGINT, v STRING)".into(), None)
            .await
            .expect("the admin creates a table");
        ada.execute_update("INSERT INTO t VALUES (1, 'a')".into(), None)
            .await
            .expect("the admin inserts");

        // The token from process A works at process B, and B sees A's rows.
        let mut ada_at_b = with_token(b, &ada_token).await;
        let rows = query(&mut ada_at_b, "SELECT id, v FROM t")
            .await
            .expect("a query at B");
        assert!(rows.contains("| 1  | a |"), "{rows}");
        // A ticket from A's GetFlightInfo, read at B with A's token.
        let info = ada
            .execute("SELECT count(*) AS n FROM t".into(), None)
            .await
            .expect("GetFlightInfo at A");
        let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
        let read: Vec<RecordBatch> = ada_at_b
            .do_get(ticket)
            .await
            .expect("DoGet at B")
            .try_collect()
            .await
            .expect("the rows");
        assert_eq!(read.iter().map(|b| b.num_rows()).sum::<usize>(), 1);

        // The reader reads, at either process with the token of one ...
        let (mut rita, rita_token) = login(a, "rita", "rita-pw").await;
        let mut rita_at_b = with_token(b, &rita_token).await;
        let count = query(&mut rita_at_b, "SELECT count(*) AS n FROM t")
            .await
            .expect("a read");
        assert!(count.contains("| 1 |"), "{count}");
        // ... and is refused every write: statements, DoPut updates,
        // prepared updates and bulk ingest (append or create).
        for client in [&mut rita, &mut rita_at_b] {
            assert_denied(
                client
                    .execute_update("INSERT INTO t VALUES (2, 'b')".into(), None)
                    .await
                    .map_err(|e| e.to_string()),
                "a reader's INSERT by DoPut",
            );
            assert_denied(
                query(client, "DELETE FROM t").await,
                "a reader's DELETE by GetFlightInfo",
            );
            assert_denied(
                query(client, "CREATE TABLE u (a INT)").await,
                "a reader's CREATE TABLE",
            );
            let mut prepared = client
                .prepare("INSERT INTO t VALUES (3, 'c')".into(), None)
                .await
                .expect("preparing is allowed");
            assert_denied(
                prepared.execute_update().await.map_err(|e| e.to_string()),
                "a reader's prepared INSERT",
            );
            assert_denied(
                ingest(
                    client,
                    ingest_command("t", TableNotExistOption::Fail, TableExistsOption::Append),
                )
                .await,
                "a reader's ingest into t",
            );
            assert_denied(
                ingest(
                    client,
                    ingest_command(
                        "fresh",
                        TableNotExistOption::Create,
                        TableExistsOption::Fail,
                    ),
                )
                .await,
                "a reader's ingest creating a table",
            );
        }
        // The reader may not reach another database either.
        ada.execute_update("CREATE DATABASE hr".into(), None)
            .await
            .expect("CREATE DATABASE");
        assert_denied(
            query(&mut rita, "SELECT * FROM hr.nothing").await,
            "a reader in another database",
        );

        // The writer ingests into an existing table, but may not create one.
        let (mut wes, _) = login(b, "wes", "wes-pw").await;
        let n = ingest(
            &mut wes,
            ingest_command("t", TableNotExistOption::Fail, TableExistsOption::Append),
        )
        .await
        .expect("the writer appends");
        assert_eq!(n, 2);
        assert_denied(
            ingest(
                &mut wes,
                ingest_command(
                    "fresh",
                    TableNotExistOption::Create,
                    TableExistsOption::Fail,
                ),
            )
            .await,
            "a writer's ingest creating a table",
        );
        let rows = query(&mut ada, "SELECT count(*) AS n, max(id) AS m FROM t")
            .await
            .expect("a count");
        assert!(
            rows.contains("| 3 | 11 |"),
            "only the writer's rows came in: {rows}"
        );
        let tables = query(&mut ada, "SHOW TABLES").await.expect("SHOW TABLES");
        assert!(
            !tables.contains("fresh") && !tables.contains("| u "),
            "{tables}"
        );

        // Tokens that are altered, expired or signed with another secret.
        let (head, rest) = ada_token.split_once('.').expect("a signed token");
        let (claims, signature) = rest.split_once('.').expect("claims and a signature");
        for (token, what) in [
            (
                format!("{head}.{}.{signature}", flip_first(claims)),
                "altered claims",
            ),
            (
                format!("{head}.{claims}.{}", flip_first(signature)),
                "altered signature",
            ),
            ("made-up".to_string(), "a made-up token"),
        ] {
            let mut client = with_token(b, &token).await;
            assert_unauthenticated(query(&mut client, "SELECT 1").await, what);
        }
        let loaded = Users::load(&users).expect("the users file");
        let secret = loaded.token_secret().expect("a token secret").to_vec();
        let grant = UsersAuthenticator(Arc::new(loaded))
            .grant("ada")
            .expect("ada's grant");
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let expired = Tokens::new(&secret, Duration::from_secs(60)).issue(&grant, an_hour_ago);
        let mut client = with_token(b, &expired).await;
        let e = query(&mut client, "SELECT 1")
            .await
            .expect_err("an expired token");
        assert!(e.contains(UNAUTHENTICATED) && e.contains("expired"), "{e}");
        let foreign =
            Tokens::new(&[42u8; 32], Duration::from_secs(60)).issue(&grant, SystemTime::now());
        let mut client = with_token(a, &foreign).await;
        assert_unauthenticated(
            query(&mut client, "SELECT 1").await,
            "another secret's token",
        );
        // A token made with the file's secret is as good as one from a login.
        let minted = Tokens::new(&secret, Duration::from_secs(60)).issue(&grant, SystemTime::now());
        let mut client = with_token(a, &minted).await;
        assert!(query(&mut client, "SELECT 1 AS one").await.is_ok());
        secret
    });
    first.child.kill();
    second.child.kill();
    // Rotating the secret (which revokes every token at the next start)
    // keeps the users.
    let mut rotate = TIDELAKE.bare();
    rotate
        .args(["user", "rotate-token-secret", "--users"])
        .arg(&users);
    let done = run(&mut rotate, "", TIMEOUT);
    assert!(done.status.success(), "{}", done.stderr);
    let rotated = Users::load(&users).expect("the users file");
    assert_ne!(rotated.token_secret(), Some(&secret[..]));
    assert!(rotated.verify_password("rita", "rita-pw").is_ok());
}

#[test]
fn adbc_python_client_with_users() {
    let Some(python) = python::or_skip("the ADBC Flight SQL client test with users") else {
        return;
    };
    let dir = KeptOnFailure::new("flight-adbc-users");
    let users = users_file(dir.path());
    let (mut server, port) = serve_flight_with_users(&dir.path().join("wh"), &users);
    let script = python::workspace_root().join("tests/server/flight_client.py");
    let mut command = std::process::Command::new(python);
    command.arg(script).arg(port.to_string()).arg("users");
    let done = run(&mut command, "", Duration::from_secs(240));
    assert!(
        done.status.success(),
        "the ADBC client failed\nstdout:\n{}\nstderr:\n{}\nserver stderr:\n{}",
        done.stdout,
        done.stderr,
        server.child.stderr()
    );
    for check in ["wrong_password", "reader_refused", "writer_ingests"] {
        assert!(
            done.stdout.contains(&format!("ok {check}\n")),
            "{}",
            done.stdout
        );
    }
    server.child.kill();
}
