//! The conformance suite of the `WarehouseStore` contract: one set of checks,
//! run against memory, a local folder (tempdir) and a real S3-compatible
//! server (moto on loopback).

use bytes::Bytes;
use object_store::ObjectStoreExt;
use tidelake_store::{FaultPlan, OpenOptions, PutOutcome, StoreError, WarehouseStore};
use tidelake_testkit::moto::{MotoServer, BUCKET};

/// A store under test, and how to open it again.
struct Backend {
    store: WarehouseStore,
    options: OpenOptions,
    /// The backend keeps data across opens (not `memory://`).
    persistent: bool,
    /// Bytes for the "large object" checks; smaller against moto, which
    /// serves one request at a time.
    large: usize,
}

impl Backend {
    async fn reopen(&self) -> WarehouseStore {
        WarehouseStore::open_with_options(&self.store.uri(), &self.options)
            .await
            .expect("reopen by normalized URI")
    }
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn paths(entries: &[tidelake_store::ObjectEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

async fn put_get_overwrite(t: &Backend) {
    let s = &t.store;
    s.put("a/b/one.txt", b("first")).await.unwrap();
    assert_eq!(s.get("a/b/one.txt").await.unwrap(), b("first"));
    s.put("a/b/one.txt", b("second, longer")).await.unwrap();
    assert_eq!(s.get("a/b/one.txt").await.unwrap(), b("second, longer"));
    s.put("a/b/one.txt", Bytes::new()).await.unwrap();
    assert_eq!(s.get("a/b/one.txt").await.unwrap(), Bytes::new());
    assert!(s.exists("a/b/one.txt").await.unwrap());
    s.put("top", b("root level")).await.unwrap();
    assert_eq!(s.get("top").await.unwrap(), b("root level"));
}

async fn missing_objects_are_not_found(t: &Backend) {
    let s = &t.store;
    let expect_not_found = |r: Result<(), StoreError>, what: &str| match r {
        Err(StoreError::NotFound { path }) => assert_eq!(path, "no/such", "{what}"),
        other => panic!("{what}: expected NotFound, got {other:?}"),
    };
    expect_not_found(s.get("no/such").await.map(|_| ()), "get");
    expect_not_found(s.head("no/such").await.map(|_| ()), "head");
    expect_not_found(s.get_range("no/such", 0..1).await.map(|_| ()), "get_range");
    expect_not_found(
        s.get_range("no/such", 0..0).await.map(|_| ()),
        "empty get_range",
    );
    assert!(!s.exists("no/such").await.unwrap());
    let err = s.get("no/such").await.unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("no/such"), "{err}");
}

async fn put_if_absent_creates_once(t: &Backend) {
    let s = &t.store;
    let path = "t/snapshot/snapshot-1";
    assert_eq!(
        s.put_if_absent(path, b("winner")).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        s.put_if_absent(path, b("loser")).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(s.get(path).await.unwrap(), b("winner"));
    // A plain put over it still works (hints are overwritten this way).
    s.put(path, b("replaced")).await.unwrap();
    assert_eq!(
        s.put_if_absent(path, b("again")).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(s.get(path).await.unwrap(), b("replaced"));
}

async fn put_if_absent_race_has_one_winner(t: &Backend) {
    for round in 0..3 {
        let path = format!("race/snapshot-{round}");
        let mut tasks = Vec::new();
        for contender in 0..16 {
            let store = t.store.clone();
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let body = Bytes::from(format!("contender {contender} ").repeat(100));
                let outcome = store.put_if_absent(&path, body.clone()).await.unwrap();
                (outcome, body)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (outcome, body) = task.await.unwrap();
            if outcome == PutOutcome::Created {
                winners.push(body);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {} winners", winners.len());
        assert_eq!(
            t.store.get(&path).await.unwrap(),
            winners[0],
            "round {round}"
        );
    }
}

async fn readers_never_see_partial_objects(t: &Backend) {
    let size = t.large / 2;
    let path = "atomic/overwritten";
    t.store
        .put(path, Bytes::from(vec![0u8; size]))
        .await
        .unwrap();
    let writer = {
        let store = t.store.clone();
        tokio::spawn(async move {
            for version in 1..=8u8 {
                store
                    .put(path, Bytes::from(vec![version; size]))
                    .await
                    .unwrap();
            }
        })
    };
    let created = "atomic/created";
    let creator = {
        let store = t.store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            store
                .put_if_absent(created, Bytes::from(vec![7u8; size]))
                .await
                .unwrap()
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || !creator.is_finished() || reads < 4 {
        let bytes = t.store.get(path).await.unwrap();
        assert_eq!(bytes.len(), size, "overwrite exposed a partial object");
        assert!(
            bytes.iter().all(|x| *x == bytes[0]),
            "overwrite mixed two versions"
        );
        // Listings never show in-flight or partial objects either.
        for entry in t.store.list("atomic").await.unwrap() {
            assert!(
                entry.path == path || entry.path == created,
                "listed {entry:?}"
            );
            assert_eq!(entry.size, size as u64, "listed a partial {entry:?}");
        }
        match t.store.get(created).await {
            Ok(bytes) => assert!(
                bytes.len() == size && bytes.iter().all(|x| *x == 7),
                "partial create seen"
            ),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => panic!("reading a racing create: {e}"),
        }
        reads += 1;
    }
    writer.await.unwrap();
    assert_eq!(creator.await.unwrap(), PutOutcome::Created);
    assert_eq!(
        t.store.get(path).await.unwrap(),
        Bytes::from(vec![8u8; size])
    );
}

async fn list_is_recursive_sorted_and_segment_based(t: &Backend) {
    let s = &t.store;
    for p in ["d/b/2", "d/a", "d/b/1", "d/b/c/3", "d/bc/x", "d2/y", "z"] {
        s.put(p, b(p)).await.unwrap();
    }
    let all = s.list("").await.unwrap();
    assert_eq!(
        paths(&all),
        ["d/a", "d/b/1", "d/b/2", "d/b/c/3", "d/bc/x", "d2/y", "z"]
    );
    assert_eq!(
        paths(&s.list("d/b").await.unwrap()),
        ["d/b/1", "d/b/2", "d/b/c/3"]
    );
    assert_eq!(
        paths(&s.list("d/b/").await.unwrap()),
        ["d/b/1", "d/b/2", "d/b/c/3"]
    );
    assert_eq!(
        paths(&s.list("d").await.unwrap()),
        ["d/a", "d/b/1", "d/b/2", "d/b/c/3", "d/bc/x"]
    );
    assert!(s.list("missing").await.unwrap().is_empty());
    assert!(s.list("d/b/missing/deeper").await.unwrap().is_empty());
    assert!(
        s.list("z").await.unwrap().is_empty(),
        "an object is not a folder"
    );
    let entry = all.iter().find(|e| e.path == "d/b/c/3").unwrap();
    assert_eq!(entry.size, "d/b/c/3".len() as u64);
}

async fn list_dir_shows_one_level(t: &Backend) {
    let s = &t.store;
    for p in [
        "w/x.db/t1/schema/schema-0",
        "w/x.db/t2/f",
        "w/x.db/readme",
        "w/y.db/t/f",
        "w/top",
    ] {
        s.put(p, b(p)).await.unwrap();
    }
    let (dirs, objects) = s.list_dir("w").await.unwrap();
    assert_eq!(dirs, ["w/x.db", "w/y.db"]);
    assert_eq!(paths(&objects), ["w/top"]);
    let (dirs, objects) = s.list_dir("w/x.db/").await.unwrap();
    assert_eq!(dirs, ["w/x.db/t1", "w/x.db/t2"]);
    assert_eq!(paths(&objects), ["w/x.db/readme"]);
    assert_eq!(objects[0].size, "w/x.db/readme".len() as u64);
    let (dirs, objects) = s.list_dir("").await.unwrap();
    assert_eq!(dirs, ["w"]);
    assert!(objects.is_empty());
    let (dirs, objects) = s.list_dir("w/nothing").await.unwrap();
    assert!(dirs.is_empty() && objects.is_empty());
    let (dirs, objects) = s.list_dir("w/top").await.unwrap();
    assert!(
        dirs.is_empty() && objects.is_empty(),
        "an object is not a folder"
    );
}

async fn create_dir_is_listed_until_deleted(t: &Backend) {
    let s = &t.store;
    s.create_dir("empty.db").await.unwrap();
    s.create_dir("empty.db").await.unwrap(); // idempotent
    s.create_dir("nested/deep/er").await.unwrap();
    s.put("full.db/t/f", b("x")).await.unwrap();
    let (dirs, objects) = s.list_dir("").await.unwrap();
    assert_eq!(dirs, ["empty.db", "full.db", "nested"]);
    assert!(objects.is_empty(), "markers must stay hidden: {objects:?}");
    let (dirs, objects) = s.list_dir("empty.db").await.unwrap();
    assert!(
        dirs.is_empty() && objects.is_empty(),
        "{dirs:?} {objects:?}"
    );
    assert_eq!(
        s.list_dir("nested/deep").await.unwrap().0,
        ["nested/deep/er"]
    );
    assert_eq!(paths(&s.list("").await.unwrap()), ["full.db/t/f"]);
    // Writing into a created folder keeps it listed once.
    s.create_dir("full.db").await.unwrap();
    assert_eq!(
        s.list_dir("").await.unwrap().0,
        ["empty.db", "full.db", "nested"]
    );
    s.delete_dir("empty.db").await.unwrap();
    s.delete_dir("nested").await.unwrap();
    assert_eq!(s.list_dir("").await.unwrap().0, ["full.db"]);
    assert!(
        !s.exists("empty.db").await.unwrap(),
        "a folder is not an object"
    );
}

async fn delete_is_idempotent(t: &Backend) {
    let s = &t.store;
    s.put("del/me", b("x")).await.unwrap();
    s.delete("del/me").await.unwrap();
    assert!(!s.exists("del/me").await.unwrap());
    s.delete("del/me").await.unwrap();
    s.delete("never/was").await.unwrap();
}

async fn delete_dir_removes_the_subtree_only(t: &Backend) {
    let s = &t.store;
    for p in [
        "db.db/t/a",
        "db.db/t/sub/b",
        "db.db/u/c",
        "db.db/tt/keep",
        "db.db/t2",
        "other/keep",
    ] {
        s.put(p, b(p)).await.unwrap();
    }
    s.create_dir("db.db/t/empty").await.unwrap();
    s.delete_dir("db.db/t").await.unwrap();
    assert_eq!(
        paths(&s.list("").await.unwrap()),
        ["db.db/t2", "db.db/tt/keep", "db.db/u/c", "other/keep"]
    );
    assert_eq!(
        s.list_dir("db.db").await.unwrap().0,
        ["db.db/tt", "db.db/u"]
    );
    s.delete_dir("db.db/t").await.unwrap(); // already gone
    s.delete_dir("db.db/t2").await.unwrap(); // an object, not a folder: untouched
    assert!(s.exists("db.db/t2").await.unwrap());
    s.delete_dir("db.db/").await.unwrap();
    assert_eq!(paths(&s.list("").await.unwrap()), ["other/keep"]);
    assert_eq!(s.list_dir("").await.unwrap().0, ["other"]);
    let err = s.delete_dir("").await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidPath { .. }), "{err}");
}

async fn invalid_paths_are_rejected(t: &Backend) {
    let s = &t.store;
    s.put("ok/file", b("x")).await.unwrap();
    for bad in [
        "",
        "/abs",
        "a//b",
        "../escape",
        "a/../../b",
        "a/./b",
        "dir/",
        "a/\u{1}b",
        "x/.tidelake-keep",
        "a#12",
        "t/.snapshot-1.abc.tmp",
    ] {
        let results = [
            ("get", s.get(bad).await.map(|_| ())),
            ("get_range", s.get_range(bad, 0..1).await.map(|_| ())),
            ("head", s.head(bad).await.map(|_| ())),
            ("exists", s.exists(bad).await.map(|_| ())),
            ("put", s.put(bad, b("x")).await),
            (
                "put_if_absent",
                s.put_if_absent(bad, b("x")).await.map(|_| ()),
            ),
            ("delete", s.delete(bad).await),
        ];
        for (op, result) in results {
            match result {
                Err(StoreError::InvalidPath { path, message }) => {
                    assert_eq!(path, bad, "{op}");
                    assert!(!message.is_empty());
                }
                other => panic!("{op}({bad:?}): expected InvalidPath, got {other:?}"),
            }
        }
    }
    for bad in ["/", "/abs", "a//b", "..", "a/../b", "a/./"] {
        assert!(
            matches!(s.list(bad).await, Err(StoreError::InvalidPath { .. })),
            "list {bad:?}"
        );
        assert!(
            matches!(s.list_dir(bad).await, Err(StoreError::InvalidPath { .. })),
            "list_dir {bad:?}"
        );
        assert!(
            matches!(s.create_dir(bad).await, Err(StoreError::InvalidPath { .. })),
            "create_dir {bad:?}"
        );
        assert!(
            matches!(s.delete_dir(bad).await, Err(StoreError::InvalidPath { .. })),
            "delete_dir {bad:?}"
        );
    }
    // Nothing escaped the warehouse or landed anywhere.
    assert_eq!(paths(&s.list("").await.unwrap()), ["ok/file"]);
}

async fn get_range_reads_exact_bytes(t: &Backend) {
    let s = &t.store;
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    s.put("r/data", Bytes::from(data.clone())).await.unwrap();
    assert_eq!(s.get_range("r/data", 0..1000).await.unwrap(), data[..]);
    assert_eq!(s.get_range("r/data", 10..20).await.unwrap(), data[10..20]);
    assert_eq!(s.get_range("r/data", 999..1000).await.unwrap(), data[999..]);
    assert!(s.get_range("r/data", 5..5).await.unwrap().is_empty());
    assert!(s.get_range("r/data", 1000..1000).await.unwrap().is_empty());
    for bad in [990..1001, 1000..1001, 2000..3000, 1001..1001] {
        match s.get_range("r/data", bad.clone()).await {
            Err(StoreError::InvalidRange {
                path,
                start,
                end,
                size,
                ..
            }) => {
                assert_eq!(
                    (path.as_str(), start, end, size),
                    ("r/data", bad.start, bad.end, 1000)
                );
            }
            other => panic!("range {bad:?}: expected InvalidRange, got {other:?}"),
        }
    }
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = s.get_range("r/data", 20..10).await;
    assert!(
        matches!(reversed, Err(StoreError::InvalidRange { .. })),
        "{reversed:?}"
    );
}

async fn large_objects_round_trip(t: &Backend) {
    let s = &t.store;
    let size = t.large + 12_345;
    let data: Bytes = (0..size)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    s.put("big/blob", data.clone()).await.unwrap();
    assert_eq!(s.get("big/blob").await.unwrap(), data);
    assert_eq!(s.head("big/blob").await.unwrap().size, size as u64);
    let middle = (size as u64 / 3)..(size as u64 / 3 + 1_000_000);
    let expected = data.slice(middle.start as usize..middle.end as usize);
    assert_eq!(s.get_range("big/blob", middle).await.unwrap(), expected);
    assert_eq!(
        s.put_if_absent("big/created", data.clone()).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(s.get("big/created").await.unwrap(), data);
}

async fn head_reports_size_and_time(t: &Backend) {
    let s = &t.store;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    s.put("h/x", b("12345")).await.unwrap();
    let entry = s.head("h/x").await.unwrap();
    assert_eq!(entry.path, "h/x");
    assert_eq!(entry.size, 5);
    assert!(
        entry.last_modified >= before,
        "{} < {before}",
        entry.last_modified
    );
    assert!(entry.last_modified <= chrono::Utc::now() + chrono::Duration::seconds(5));
    let listed = s.list("h").await.unwrap();
    assert_eq!(listed, vec![entry]);
}

async fn object_store_reads_full_paths(t: &Backend) {
    let s = &t.store;
    s.put("p/q/data.parquet", b("parquet bytes")).await.unwrap();
    let raw = s.object_store();
    let location = s.full_path("p/q/data.parquet");
    let got = raw.get(&location).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, b("parquet bytes"));
    assert_eq!(raw.head(&location).await.unwrap().size, 13);
}

async fn names_keep_their_characters(t: &Backend) {
    // Paimon escapes partition values itself ("a/b" -> "a%2Fb"); the store
    // must keep such names byte for byte, not escape them again.
    let s = &t.store;
    let names = [
        "dt=2024-01-01/a%2Fb/f 1.parquet",
        "dt=x#y/ü€/data-0.orc",
        "k=v,w/{brace}[b]~^!@$&'()+;",
    ];
    for name in names {
        s.put(name, b(name)).await.unwrap();
        assert_eq!(s.get(name).await.unwrap(), b(name), "{name}");
    }
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort();
    assert_eq!(paths(&s.list("").await.unwrap()), expected);
    let (dirs, _) = s.list_dir("dt=2024-01-01").await.unwrap();
    assert_eq!(dirs, ["dt=2024-01-01/a%2Fb"]);
    if t.persistent {
        let again = t.reopen().await;
        assert_eq!(again.get(names[0]).await.unwrap(), b(names[0]));
    }
}

async fn reopen_by_uri_sees_the_same_data(t: &Backend) {
    t.store.put("reopen/x", b("kept")).await.unwrap();
    let again = t.reopen().await;
    assert_eq!(again.uri(), t.store.uri());
    if t.persistent {
        assert_eq!(again.get("reopen/x").await.unwrap(), b("kept"));
    } else {
        assert!(
            again.list("").await.unwrap().is_empty(),
            "memory:// is fresh per open"
        );
    }
}

async fn faults_wrap_any_backend(t: &Backend) {
    let plan = FaultPlan::new(9).fail_operation(2).fail_after_create(1.0);
    let faulty = WarehouseStore::with_faults(t.store.clone(), plan);
    faulty.put("f/a", b("1")).await.unwrap(); // operation 1
    let err = faulty.get("f/a").await.unwrap_err(); // operation 2: injected
    assert!(
        matches!(err, StoreError::Injected { written: false, .. }),
        "{err}"
    );
    assert_eq!(faulty.get("f/a").await.unwrap(), b("1"));
    // The ambiguous commit: written, yet reported as failed.
    let err = faulty.put_if_absent("f/commit", b("c")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Injected { written: true, .. }),
        "{err}"
    );
    assert_eq!(t.store.get("f/commit").await.unwrap(), b("c"));
    assert_eq!(
        faulty.put_if_absent("f/commit", b("d")).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    let stats = faulty.fault_stats().unwrap();
    assert_eq!((stats.operations, stats.injected), (5, 2));
    assert!(t.store.fault_stats().is_none());
}

async fn held_operations_wait_for_their_release(t: &Backend) {
    let faulty = WarehouseStore::with_faults(t.store.clone(), FaultPlan::new(4));
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    assert!(faulty.hold_operation(2, release.clone()));
    assert!(!t.store.hold_operation(1, release.clone()));
    faulty.put("h/a", b("1")).await.unwrap(); // operation 1
    let reader = faulty.clone();
    let held = tokio::spawn(async move { reader.get("h/a").await }); // operation 2
    while faulty.fault_stats().unwrap().operations < 2 {
        tokio::task::yield_now().await;
    }
    // Held before it reads: what is written meanwhile is what it sees.
    t.store.put("h/a", b("2")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(!held.is_finished());
    release.notify_one();
    assert_eq!(held.await.unwrap().unwrap(), b("2"));
    assert_eq!(faulty.fault_stats().unwrap().injected, 0);
}

async fn exists_fault_reports_our_own_create(t: &Backend) {
    let plan = FaultPlan::new(3).report_exists_after_create(1.0);
    let faulty = WarehouseStore::with_faults(t.store.clone(), plan);
    // An S3 request retried after its first try created the object: the
    // caller hears AlreadyExists for its own object, and must read it back.
    assert_eq!(
        faulty.put_if_absent("f/retried", b("mine")).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(t.store.get("f/retried").await.unwrap(), b("mine"));
    assert_eq!(faulty.fault_stats().unwrap().injected, 1);
}

async fn create_if_absent_resolves_ambiguous_outcomes(t: &Backend) {
    // An error after the create: the identical create is repeated, finds
    // the object, reads it back and recognises it.
    let lost_ack =
        WarehouseStore::with_faults(t.store.clone(), FaultPlan::new(1).fail_after_create(1.0));
    assert_eq!(
        lost_ack.create_if_absent("r/a", b("mine")).await.unwrap(),
        PutOutcome::Created
    );
    // AlreadyExists for our own object: read back, recognised.
    let retried = WarehouseStore::with_faults(
        t.store.clone(),
        FaultPlan::new(2).report_exists_after_create(1.0),
    );
    assert_eq!(
        retried.create_if_absent("r/b", b("mine")).await.unwrap(),
        PutOutcome::Created
    );
    // Another writer's object stays theirs, whatever the faults.
    assert_eq!(
        lost_ack.create_if_absent("r/b", b("theirs")).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(t.store.get("r/b").await.unwrap(), b("mine"));
    // Nothing can be read back: unknown, never a guess.
    let outage = WarehouseStore::with_faults(
        t.store.clone(),
        FaultPlan::new(3)
            .fail_after_create(1.0)
            .outage_after_ambiguous_create(),
    );
    let err = outage.create_if_absent("r/c", b("mine")).await.unwrap_err();
    assert!(matches!(err, StoreError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(t.store.get("r/c").await.unwrap(), b("mine"));
    // A request refused before it is sent is a plain failure.
    let err = t.store.create_if_absent("../x", b("x")).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidPath { .. }), "{err}");
}

/// Declares every check once; runs each on memory and local disk as its own
/// test, and all of them in sequence against one moto server.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let backend = super::Backend {
                        store: super::WarehouseStore::open("memory://").await.unwrap(),
                        options: super::OpenOptions::default(),
                        persistent: false,
                        large: 4 << 20,
                    };
                    super::$check(&backend).await;
                }
            )*
        }

        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let root = dir.path().join("warehouse");
                    let backend = super::Backend {
                        store: super::WarehouseStore::open(root.to_str().unwrap()).await.unwrap(),
                        options: super::OpenOptions::default(),
                        persistent: true,
                        large: 4 << 20,
                    };
                    super::$check(&backend).await;
                }
            )*
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn s3_moto_conformance() {
            let Some(server) = MotoServer::start_or_skip() else { return };
            let options = server.options();
            $(
                let uri = format!("s3://{BUCKET}/{}", stringify!($check));
                let backend = Backend {
                    store: WarehouseStore::open_with_options(&uri, &options).await.unwrap(),
                    options: options.clone(),
                    persistent: true,
                    large: 3 << 20,
                };
                eprintln!("s3 conformance: {}", stringify!($check));
                $check(&backend).await;
            )*
            s3_specific_checks(&server).await;
        }
    };
}

conformance!(
    put_get_overwrite,
    missing_objects_are_not_found,
    put_if_absent_creates_once,
    put_if_absent_race_has_one_winner,
    readers_never_see_partial_objects,
    list_is_recursive_sorted_and_segment_based,
    list_dir_shows_one_level,
    create_dir_is_listed_until_deleted,
    delete_is_idempotent,
    delete_dir_removes_the_subtree_only,
    invalid_paths_are_rejected,
    get_range_reads_exact_bytes,
    large_objects_round_trip,
    head_reports_size_and_time,
    object_store_reads_full_paths,
    names_keep_their_characters,
    reopen_by_uri_sees_the_same_data,
    faults_wrap_any_backend,
    held_operations_wait_for_their_release,
    exists_fault_reports_our_own_create,
    create_if_absent_resolves_ambiguous_outcomes,
);

/// What only S3 has: the open-time check of conditional writes.
async fn s3_specific_checks(server: &MotoServer) {
    let options = server.options();
    // The bucket root works as a warehouse too, and the check leaves no probe behind.
    let root = WarehouseStore::open_with_options(&format!("s3://{BUCKET}"), &options)
        .await
        .unwrap();
    assert_eq!(root.uri(), format!("s3://{BUCKET}"));
    let leftovers: Vec<String> = root
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .filter(|p| p.contains("tidelake-probe"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // moto honours If-None-Match; a store configured without conditional
    // writes stands in for an endpoint that does not.
    let mut unsafe_options = options.clone();
    unsafe_options
        .s3_options
        .push(("aws_conditional_put".to_string(), "disabled".to_string()));
    let uri = format!("s3://{BUCKET}/unsafe");
    match WarehouseStore::open_with_options(&uri, &unsafe_options).await {
        Err(StoreError::UnsafeCommits { uri: shown, reason }) => {
            assert_eq!(shown, uri);
            assert!(reason.contains("conditional"), "{reason}");
        }
        other => panic!("expected UnsafeCommits, got {other:?}"),
    }
    unsafe_options.allow_unsafe_commits = true;
    let opted_in = WarehouseStore::open_with_options(&uri, &unsafe_options)
        .await
        .unwrap();
    assert_eq!(
        opted_in.put_if_absent("s", b("1")).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        opted_in.put_if_absent("s", b("2")).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(opted_in.get("s").await.unwrap(), b("1"));

    // Folder keys written by other S3 tools ("dir/") are folders, not objects.
    let foreign = "foreign";
    let store = WarehouseStore::open_with_options(&format!("s3://{BUCKET}/{foreign}"), &options)
        .await
        .unwrap();
    store.put("db.db/t/f", b("x")).await.unwrap();
    put_folder_key(server, &format!("{foreign}/db.db/")).await;
    put_folder_key(server, &format!("{foreign}/empty.db/")).await;
    assert_eq!(
        paths(&store.list("").await.unwrap()),
        ["db.db/t/f", "empty.db"]
    );
    assert_eq!(paths(&store.list("db.db").await.unwrap()), ["db.db/t/f"]);
    assert_eq!(store.list_dir("").await.unwrap().0, ["db.db", "empty.db"]);
    let (dirs, objects) = store.list_dir("db.db").await.unwrap();
    assert_eq!(
        (dirs, paths(&objects)),
        (vec!["db.db/t".to_string()], vec![])
    );

    // Unknown options are refused with the key named.
    let mut bad = options.clone();
    bad.s3_options
        .push(("aws_no_such_thing".to_string(), "1".to_string()));
    let err = WarehouseStore::open_with_options(&uri, &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("aws_no_such_thing"), "{err}");
}

/// Writes a zero-byte key ending in '/', as the AWS CLI or Hadoop do for
/// folders (object_store cannot name such keys).
async fn put_folder_key(server: &MotoServer, key: &str) {
    use std::io::{Read, Write};
    let port = server.port;
    let key = key.to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let request = format!(
            "PUT /{BUCKET}/{key} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
            "{response}"
        );
    })
    .await
    .unwrap();
}
