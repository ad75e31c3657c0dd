//! The MySQL source against a real MySQL 9 (127.0.0.1:3307, gtid_mode=ON:
//! scripts/setup/40-mysql.sh): the MariaDB scenarios that matter for MySQL
//! (snapshot, stream and resume, types, the sink with a restart) with GTID
//! set positions, and a resume by GTID set after the binlog files holding
//! the recorded file and offset were purged.
//!
//! Each test holds the server's lock for its run (one of them purges the
//! binlogs); without a reachable server they are skipped with a note,
//! except in CI (CI=true), where they fail: see tidelake_testkit::mysql9.

use std::fs::File;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tidelake_cdc::event::{ChangeKind, SourceEvent, SourcePosition};
use tidelake_cdc::mysql::{BinlogPosition, StartMode};
use tidelake_cdc::ChangeSource;

use crate::events::{is_change_of, read_until};
use crate::mysql::{
    changes, commit_position, fresh_database_on, int, resume_at,
    snapshot_under_concurrent_writes_equals_source, source_on, streaming_empty_table,
    streams_and_resumes_without_loss_or_duplicate, type_mapping_golden,
};
use crate::mysql_sink::through_the_sink_snapshot_stream_and_restart;
use tidelake_testkit::mysql9;

const MYSQL: &str = mysql9::URL;

/// The server, locked for this test; `None` (skip) when it is not
/// reachable outside CI.
async fn mysql() -> Option<File> {
    tokio::task::spawn_blocking(mysql9::lock_or_skip)
        .await
        .unwrap()
}

/// Ends the binlog dumps of dropped sources: the server notices a closed
/// connection only when it next sends an event, and PURGE leaves a file
/// that a dump still reads. (The tests hold the lock: no other test's dump
/// is running.)
async fn end_binlog_dumps(conn: &mut Conn) {
    let dumps: Vec<u64> = conn
        .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
        .await
        .unwrap();
    for id in dumps {
        // A dump may end by itself meanwhile.
        let _ = conn.query_drop(format!("KILL {id}")).await;
    }
}

/// The error a source resumed from `position` (for table `t`) stops with.
async fn resume_error(db: &str, server_id: u32, position: SourcePosition) -> String {
    let start = StartMode::Resume(resume_at(db, "t", position.clone()));
    let mut src = source_on(MYSQL, db, server_id, start).await;
    loop {
        match src.next_event().await {
            Err(e) => return e.to_string(),
            Ok(Some(SourceEvent::Heartbeat { .. })) => continue,
            Ok(other) => panic!("resumed from {position}: {other:?}"),
        }
    }
}

/// A position's GTID set, which must be MySQL's (`uuid:intervals`).
fn gtid_set(position: &SourcePosition) -> String {
    let parsed = BinlogPosition::parse(position).unwrap();
    assert!(
        !parsed.gtid_set.is_empty() && parsed.gtids.is_empty(),
        "not a MySQL GTID set position: {position}"
    );
    parsed.gtid_set.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql9_snapshot_under_concurrent_writes_equals_source() {
    let Some(_lock) = mysql().await else { return };
    let positions = snapshot_under_concurrent_writes_equals_source(MYSQL, 93_001).await;
    // Each commit's set holds the one before it (the snapshot's first).
    let parsed: Vec<BinlogPosition> = positions
        .iter()
        .map(|p| {
            gtid_set(p);
            BinlogPosition::parse(p).unwrap()
        })
        .collect();
    for pair in parsed.windows(2) {
        assert!(pair[0].gtid_set.is_subset(&pair[1].gtid_set));
        assert!(pair[0].compare(&pair[1]).is_lt());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql9_streams_and_resumes_by_gtid_set_without_loss_or_duplicate() {
    let Some(_lock) = mysql().await else { return };
    let resumed_from = streams_and_resumes_without_loss_or_duplicate(MYSQL, 93_011).await;
    gtid_set(&resumed_from);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql9_type_mapping_golden() {
    let Some(_lock) = mysql().await else { return };
    type_mapping_golden(MYSQL, 93_021).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql9_through_the_sink_snapshot_stream_and_restart() {
    let Some(_lock) = mysql().await else { return };
    through_the_sink_snapshot_stream_and_restart(MYSQL, 93_031).await;
}

/// A consumer caught up at P; the binlog rotates and the files up to and
/// including P's are purged. The file and offset of P are gone, the GTID
/// set is not: a resume from P delivers exactly what was written after it.
/// A set that lacks purged transactions is refused, naming gtid_purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql9_resumes_by_gtid_set_after_binlogs_are_purged() {
    let Some(_lock) = mysql().await else { return };
    let db = "cdc_it_purge";
    let (mut conn, mut src, snapshot_at) = streaming_empty_table(MYSQL, db, 93_041).await;
    for sql in [
        "INSERT INTO t VALUES (1, 1, 'one')",
        "FLUSH BINARY LOGS",
        "INSERT INTO t VALUES (2, 2, 'two')",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    read_until(&mut src, |e| is_change_of(e, "t", 2)).await;
    let caught_up = read_until(&mut src, |e| commit_position(e).is_some()).await;
    let at = commit_position(caught_up.last().unwrap()).unwrap();
    drop(src);
    end_binlog_dumps(&mut conn).await;

    let parsed = BinlogPosition::parse(&at).unwrap();
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let current: mysql_async::Row = conn
        .query_first("SHOW BINARY LOG STATUS")
        .await
        .unwrap()
        .unwrap();
    let current: String = current.get(0).unwrap();
    assert_ne!(current, parsed.file);
    conn.query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
        .await
        .unwrap();
    let files: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
    let files: Vec<String> = files.iter().map(|r| r.get(0).unwrap()).collect();
    assert!(
        !files.contains(&parsed.file),
        "{} purged: {files:?}",
        parsed.file
    );
    for sql in [
        "INSERT INTO t VALUES (3, 3, 'three')",
        "BEGIN; UPDATE t SET v = 20 WHERE id = 2; DELETE FROM t WHERE id = 1; COMMIT",
    ] {
        conn.query_drop(sql).await.unwrap();
    }

    let mut resumed = source_on(
        MYSQL,
        db,
        93_042,
        StartMode::Resume(resume_at(db, "t", at.clone())),
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let events = read_until(&mut resumed, |e| commit_position(e).is_some()).await;
        let position = commit_position(events.last().unwrap()).unwrap();
        let changed = changes(&events);
        if !changed.is_empty() {
            seen.push((changed, position));
        }
    }
    let row = |id, v, s: &str| {
        vec![
            int(id),
            int(v),
            tidelake_cdc::event::CdcValue::String(s.into()),
        ]
    };
    assert_eq!(seen[0].0, vec![(ChangeKind::Insert, row(3, 3, "three"))]);
    assert_eq!(
        seen[1].0,
        vec![
            (ChangeKind::UpdateBefore, row(2, 2, "two")),
            (ChangeKind::UpdateAfter, row(2, 20, "two")),
            (ChangeKind::Delete, row(1, 1, "one")),
        ]
    );
    // The set grows by one GTID a transaction, from the recorded one.
    let last = BinlogPosition::parse(&seen[1].1).unwrap();
    assert!(parsed.gtid_set.is_subset(&last.gtid_set));
    assert_eq!(last.file, current);
    drop(resumed);

    // The same position as file and offset only: its file is gone.
    let file_only = SourcePosition(format!("gtid=;file={};pos={}", parsed.file, parsed.offset));
    let err = resume_error(db, 93_043, file_only).await;
    assert!(err.contains(&parsed.file), "{err}");
    // The snapshot's set lacks the purged transactions 1 and 2.
    let err = resume_error(db, 93_044, snapshot_at).await;
    assert!(err.contains("gtid_purged"), "{err}");
    assert!(err.contains("copied anew"), "{err}");
}

/// A MariaDB position is refused by MySQL, and the other way round, with
/// the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql9_refuses_positions_of_the_other_flavour() {
    let Some(_lock) = mysql().await else { return };
    let db = "cdc_it_flavour";
    fresh_database_on(MYSQL, db, &["CREATE TABLE t (id INT PRIMARY KEY)"]).await;
    let maria = SourcePosition("gtid=0-1-42;file=mysql-bin.000001;pos=4".into());
    let err = resume_error(db, 93_051, maria).await;
    assert!(
        err.contains("MariaDB GTID, but the server is MySQL"),
        "{err}"
    );
}

/// A position recorded by file and offset alone (before GTID sets, or
/// while gtid_mode was off) resumes on a server with GTIDs: from the start
/// of its file, skipping what the offset covers, and the positions after it
/// carry the full GTID set again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql9_resumes_a_file_and_offset_position_and_learns_the_gtid_set() {
    let Some(_lock) = mysql().await else { return };
    let db = "cdc_it_learn";
    let (mut conn, mut src, _) = streaming_empty_table(MYSQL, db, 93_061).await;
    conn.query_drop("INSERT INTO t VALUES (1, 1, 'one')")
        .await
        .unwrap();
    let first = read_until(&mut src, |e| commit_position(e).is_some()).await;
    assert_eq!(changes(&first).len(), 1);
    let at = BinlogPosition::parse(&commit_position(first.last().unwrap()).unwrap()).unwrap();
    conn.query_drop("INSERT INTO t VALUES (2, 2, 'two')")
        .await
        .unwrap();
    let second = read_until(&mut src, |e| commit_position(e).is_some()).await;
    let after_second = commit_position(second.last().unwrap()).unwrap();
    drop(src);

    let file_only = SourcePosition(format!("gtid=;file={};pos={}", at.file, at.offset));
    let mut resumed = source_on(
        MYSQL,
        db,
        93_062,
        StartMode::Resume(resume_at(db, "t", file_only)),
    )
    .await;
    let again = read_until(&mut resumed, |e| is_change_of(e, "t", 2)).await;
    assert_eq!(
        changes(&again),
        vec![(ChangeKind::Insert, changes(&second)[0].1.clone())],
        "only the transaction after the offset"
    );
    let committed = read_until(&mut resumed, |e| commit_position(e).is_some()).await;
    let position = commit_position(committed.last().unwrap()).unwrap();
    assert_eq!(gtid_set(&position), gtid_set(&after_second));
    assert_eq!(position, after_second);
}

/// Transactions that MySQL compresses (binlog_transaction_compression=ON:
/// one TRANSACTION_PAYLOAD event holding the rows) are read as any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql9_reads_compressed_transactions() {
    let Some(_lock) = mysql().await else { return };
    let db = "cdc_it_compressed";
    let (mut conn, mut src, _) = streaming_empty_table(MYSQL, db, 93_071).await;
    conn.query_drop("SET SESSION binlog_transaction_compression = ON")
        .await
        .unwrap();
    let values: Vec<String> = (1..=200).map(|i| format!("({i}, {i}, 'row{i}')")).collect();
    conn.query_drop(format!("INSERT INTO t VALUES {}", values.join(",")))
        .await
        .unwrap();
    conn.query_drop("UPDATE t SET v = -v WHERE id <= 10")
        .await
        .unwrap();
    let events = read_until(&mut src, |e| {
        is_change_of(e, "t", 10)
            && matches!(e, SourceEvent::Change(c) if c.kind == ChangeKind::UpdateAfter)
    })
    .await;
    let kinds: Vec<ChangeKind> = changes(&events).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds.len(), 200 + 2 * 10);
    assert!(kinds[..200].iter().all(|k| *k == ChangeKind::Insert));
    let committed = read_until(&mut src, |e| commit_position(e).is_some()).await;
    let position = commit_position(committed.last().unwrap()).unwrap();
    gtid_set(&position);
}

/// Tagged GTIDs (MySQL 8.4+, `uuid:tag:n`): tracked in the set, and a
/// resume from a set holding tags is understood by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql9_tagged_gtids_are_tracked_and_resumed_from() {
    let Some(_lock) = mysql().await else { return };
    let db = "cdc_it_tagged";
    let (mut conn, mut src, _) = streaming_empty_table(MYSQL, db, 93_081).await;
    for sql in [
        "SET gtid_next = 'AUTOMATIC:tl_tag'",
        "INSERT INTO t VALUES (1, 1, 'one')",
        "SET gtid_next = 'AUTOMATIC'",
        "INSERT INTO t VALUES (2, 2, 'two')",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    let first = read_until(&mut src, |e| commit_position(e).is_some()).await;
    assert_eq!(changes(&first).len(), 1);
    let tagged = commit_position(first.last().unwrap()).unwrap();
    assert!(gtid_set(&tagged).contains(":tl_tag:"), "{tagged}");
    let second = read_until(&mut src, |e| commit_position(e).is_some()).await;
    let after = commit_position(second.last().unwrap()).unwrap();
    drop(src);

    let start = StartMode::Resume(resume_at(db, "t", tagged));
    let mut resumed = source_on(MYSQL, db, 93_082, start).await;
    let again = read_until(&mut resumed, |e| commit_position(e).is_some()).await;
    assert_eq!(changes(&again), changes(&second));
    assert_eq!(commit_position(again.last().unwrap()).unwrap(), after);
}
