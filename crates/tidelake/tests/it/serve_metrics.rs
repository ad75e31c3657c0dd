//! `/metrics` scraped over HTTP from a real `tidelake serve`: the
//! engine's counters (commits, rows, bytes and files scanned), connections
//! and queries of every protocol (Flight SQL and HTTP included), refused
//! Flight logins and the worker's gauges appear, and move with the work.

use std::collections::BTreeMap;

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tidelake_testkit::process::wait_until;
use tidelake_testkit::warehouse::KeptOnFailure;
use tonic::transport::Channel;

use crate::flight::runtime;
use crate::serve::{http, port_after, psql_ok, serve, TIMEOUT};

/// Every sample of a scrape by its series (name and labels).
pub(crate) fn scrape(port: u16) -> BTreeMap<String, f64> {
    let (status, body) = http(port, "GET", "/metrics", "text/plain", "");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

pub(crate) fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[test]
fn metrics_cover_the_engine_every_protocol_and_the_worker() {
    let dir = KeptOnFailure::new("serve-metrics-all");
    let mut server = serve(
        dir.path(),
        &["--flight", "127.0.0.1:0", "--worker-slots", "3"],
    );
    let flight =
        port_after(&server.child.stdout(), "Flight SQL: listening on").expect("a Flight SQL port");
    let (p, h) = (server.pg, server.http);

    let before = scrape(h);
    for series in [
        "tidelake_engine_commits_total",
        "tidelake_engine_commit_conflicts_total",
        "tidelake_engine_commit_retries_total",
        "tidelake_engine_rows_scanned_total",
        "tidelake_engine_bytes_scanned_total",
        "tidelake_engine_data_files_read_total",
        "tidelake_connections_opened_total{protocol=\"http\"}",
        "tidelake_worker_pending_work",
        "tidelake_worker_jobs_running",
    ] {
        value(&before, series);
    }
    // The worker reports its slots once its first round is done.
    wait_until(TIMEOUT, "the worker's slots on /metrics", || {
        scrape(h).get("tidelake_worker_slots") == Some(&3.0)
    });

    psql_ok(
        p,
        &[
            "-c",
            "CREATE TABLE src (id BIGINT, v STRING)",
            "-c",
            "CREATE TABLE sink (id BIGINT, v STRING)",
            "-c",
            "INSERT INTO src VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            "-c",
            "SELECT * FROM src",
        ],
    );
    runtime().block_on(async {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{flight}"))
            .expect("a URI")
            .connect_timeout(TIMEOUT)
            .connect()
            .await
            .expect("connect to the Flight port");
        let mut client = FlightSqlServiceClient::new(channel.clone());
        client.handshake("tester", "any").await.expect("a login");
        let info = client
            .execute("SELECT count(*) AS n FROM src".into(), None)
            .await
            .expect("GetFlightInfo");
        let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
        let rows: Vec<_> = client
            .do_get(ticket)
            .await
            .expect("DoGet")
            .try_collect()
            .await
            .expect("the rows");
        assert_eq!(rows.len(), 1);
        // A token this server never issued: refused, and counted.
        let mut stranger = FlightSqlServiceClient::new(channel);
        stranger.set_token("made-up".into());
        assert!(stranger.execute("SELECT 1".into(), None).await.is_err());
    });

    let after = scrape(h);
    let grew = |series: &str, by: f64| {
        let (b, a) = (
            before.get(series).copied().unwrap_or(0.0),
            value(&after, series),
        );
        assert!(a >= b + by, "{series}: {b} -> {a}");
    };
    grew("tidelake_engine_commits_total", 1.0);
    // The psql SELECT and the Flight count each read src's three rows.
    grew("tidelake_engine_rows_scanned_total", 6.0);
    grew("tidelake_engine_bytes_scanned_total", 1.0);
    grew("tidelake_engine_data_files_read_total", 2.0);
    grew("tidelake_connections_opened_total{protocol=\"http\"}", 1.0);
    grew(
        "tidelake_connections_opened_total{protocol=\"flight\"}",
        1.0,
    );
    grew("tidelake_connections_opened_total{protocol=\"pg\"}", 1.0);
    grew(
        "tidelake_queries_total{protocol=\"flight\",outcome=\"ok\"}",
        1.0,
    );
    grew(
        "tidelake_connections_refused_total{protocol=\"flight\",reason=\"auth\"}",
        1.0,
    );
    grew(
        "tidelake_query_duration_seconds_count{protocol=\"flight\"}",
        1.0,
    );
    grew("tidelake_rows_returned_total{protocol=\"flight\"}", 1.0);
    // The status page has the engine's counters too.
    let (status, body) = http(h, "GET", "/v1/status", "text/plain", "");
    assert_eq!(status, 200, "{body}");
    let status = crate::serve::json(&body);
    assert!(
        status["engine"]["rows_scanned"].as_u64() >= Some(6),
        "{status}"
    );

    // A job: the worker's gauges follow it, and its commits (made by this
    // process's worker) count among the engine's.
    let committed = value(&scrape(h), "tidelake_engine_commits_total");
    psql_ok(
        p,
        &[
            "-c",
            "CREATE JOB copy AS INSERT INTO sink SELECT id, v FROM src",
        ],
    );
    wait_until(TIMEOUT, "the job running on /metrics", || {
        let now = scrape(h);
        now.get("tidelake_worker_jobs_running") == Some(&1.0)
            && now.get("tidelake_worker_slots_busy") >= Some(&1.0)
    });
    psql_ok(p, &["-c", "INSERT INTO src VALUES (10, 'x'), (11, 'y')"]);
    let copied = "SELECT count(*) FROM sink WHERE id >= 10";
    wait_until(TIMEOUT, "the job's rows in the sink", || {
        psql_ok(p, &["-A", "-t", "-c", copied]).trim() == "2"
    });
    assert!(value(&scrape(h), "tidelake_engine_commits_total") > committed);
    server.child.kill();
}
