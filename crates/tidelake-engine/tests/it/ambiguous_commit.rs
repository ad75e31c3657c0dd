//! Commits whose outcome the store reports ambiguously: an error after the
//! snapshot was created, or `AlreadyExists` for the snapshot this very
//! commit created (an S3 request retried by the HTTP client). The engine
//! must resolve each by reading the snapshot back, never delete what a live
//! snapshot references, and report an outcome it cannot resolve as unknown.
//! Writers and compactions run on a faulty store; a clean view of the same
//! warehouse checks after every step that the table reads, and equals a
//! model of what was acknowledged. Local disk and S3 (moto) alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use futures::TryStreamExt;
use tidelake_engine::{
    Catalog, ColumnSpec, CompactOptions, DataType, DataTypeKind, EngineError, Identifier, RowKind,
    Table, TableSpec,
};
use tidelake_store::{FaultPlan, OpenOptions, WarehouseStore};
use tidelake_testkit::moto::{MotoServer, BUCKET};
use tidelake_testkit::rng::Rng;

type Model = BTreeMap<i64, i64>;

fn spec() -> TableSpec {
    let column = |name: &str, nullable: bool| ColumnSpec {
        name: name.into(),
        data_type: DataType::new(DataTypeKind::BigInt, nullable),
        comment: None,
    };
    TableSpec {
        columns: vec![column("k", false), column("v", true)],
        primary_keys: vec!["k".into()],
        partition_keys: Vec::new(),
        options: BTreeMap::from([
            ("bucket".to_string(), "2".to_string()),
            // Writers compact inline now and then: their commits race too.
            (
                "num-sorted-run.compaction-trigger".to_string(),
                "3".to_string(),
            ),
        ]),
        comment: None,
    }
}

fn batch(table: &Table, rows: &[(i64, i64)]) -> RecordBatch {
    let k: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)));
    let v: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1)));
    RecordBatch::try_new(table.arrow_schema(), vec![k, v]).unwrap()
}

/// Reads the latest snapshot through a store without faults. Panics on a
/// missing file: that is the defect these tests guard against.
async fn read(clean: &Catalog, id: &Identifier) -> Model {
    let table = clean.load_table(id).await.unwrap();
    let plan = table.scan().plan().await.unwrap();
    let batches: Vec<RecordBatch> = plan
        .read_all()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("the table no longer reads: {e}"));
    let mut out = Model::new();
    for b in batches {
        let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            out.insert(k.value(i), v.value(i));
        }
    }
    out
}

async fn latest_id(clean: &Catalog, id: &Identifier) -> Option<i64> {
    let table = clean.load_table(id).await.unwrap();
    table
        .snapshots()
        .latest_snapshot()
        .await
        .unwrap()
        .map(|s| s.id)
}

/// What one step tried: rows upserted and keys deleted.
struct Change {
    upserts: Vec<(i64, i64)>,
    deletes: Vec<i64>,
}

impl Change {
    fn random(rng: &mut Rng, step: i64) -> Change {
        let upserts = (0..1 + rng.below(6))
            .map(|_| (rng.below(40) as i64, step))
            .collect();
        let deletes = (0..rng.below(3)).map(|_| rng.below(40) as i64).collect();
        Change { upserts, deletes }
    }

    fn apply(&self, model: &mut Model) {
        for (k, v) in &self.upserts {
            model.insert(*k, *v);
        }
        for k in &self.deletes {
            model.remove(k);
        }
    }
}

async fn write(table: &Table, change: &Change) -> Result<Option<i64>, EngineError> {
    let mut writer = table.writer();
    writer
        .write(batch(table, &change.upserts), RowKind::Insert)
        .await?;
    if !change.deletes.is_empty() {
        let rows: Vec<(i64, i64)> = change.deletes.iter().map(|k| (*k, 0)).collect();
        writer.write(batch(table, &rows), RowKind::Delete).await?;
    }
    writer.commit().await
}

/// Writes and compacts through `faulty` for `steps` steps; after each, the
/// clean view must read and equal the model of acknowledged commits.
/// Returns how many steps failed with each kind of outcome.
async fn run(clean: &Catalog, faulty: &Catalog, seed: u64, steps: i64) -> (usize, usize) {
    let id = Identifier::new("default", "t");
    clean.create_table(&id, spec(), true).await.unwrap();
    let mut model = read(clean, &id).await;
    let mut rng = Rng::new(seed);
    let (mut failed, mut unknown) = (0, 0);
    for step in 1..=steps {
        let Ok(table) = faulty.load_table(&id).await else {
            failed += 1;
            continue;
        };
        let before = latest_id(clean, &id).await;
        if step % 5 == 0 {
            let full = rng.chance(0.5);
            let result = table
                .compact(CompactOptions {
                    full,
                    partition: None,
                })
                .await;
            if result.is_err() {
                failed += 1;
            }
        } else {
            let change = Change::random(&mut rng, step);
            match write(&table, &change).await {
                Ok(_) => change.apply(&mut model),
                Err(e) if e.is_commit_unknown() => {
                    // The test resolves it as a user would: by looking.
                    unknown += 1;
                    let after = latest_id(clean, &id).await;
                    let table = clean.load_table(&id).await.unwrap();
                    let mine = match after {
                        Some(a) if Some(a) != before => {
                            let s = table.snapshots().snapshot(a).await.unwrap().unwrap();
                            s.commit_kind == tidelake_engine::introspect::CommitKind::Append
                        }
                        _ => false,
                    };
                    if mine {
                        change.apply(&mut model);
                    }
                }
                Err(_) => failed += 1,
            }
        }
        assert_eq!(read(clean, &id).await, model, "seed {seed}, step {step}");
    }
    (failed, unknown)
}

async fn catalogs(store: WarehouseStore, plan: FaultPlan) -> (Catalog, Catalog) {
    let faulty = WarehouseStore::with_faults(store.clone(), plan);
    (Catalog::from_store(store), Catalog::from_store(faulty))
}

fn ambiguous_plan(seed: u64) -> FaultPlan {
    FaultPlan::new(seed)
        .fail_after_create(0.3)
        .report_exists_after_create(0.3)
        .fail_writes(0.03)
        .fail_reads(0.02)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_and_compactions_survive_ambiguous_creates_on_local_disk() {
    for seed in [1u64, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let store = WarehouseStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        let (clean, faulty) = catalogs(store, ambiguous_plan(seed)).await;
        let (failed, _) = run(&clean, &faulty, seed, 40).await;
        let stats = faulty.store().fault_stats().unwrap();
        assert!(stats.injected > 10, "seed {seed}: only {stats:?}");
        assert!(failed < 30, "seed {seed}: {failed} of 40 steps failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_reported_ambiguously_still_commits() {
    for plan in [
        FaultPlan::new(4).fail_after_create(1.0),
        FaultPlan::new(5).report_exists_after_create(1.0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = WarehouseStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        let (clean, faulty) = catalogs(store, plan).await;
        // No other fault: every step must commit, once, and be kept.
        let (failed, unknown) = run(&clean, &faulty, 9, 12).await;
        assert_eq!((failed, unknown), (0, 0));
        let id = Identifier::new("default", "t");
        assert!(latest_id(&clean, &id).await.unwrap() >= 12);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_after_the_create_is_reported_unknown_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = WarehouseStore::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let clean = Catalog::from_store(store.clone());
    let id = Identifier::new("default", "t");
    clean.create_table(&id, spec(), false).await.unwrap();
    let faulty = Catalog::from_store(WarehouseStore::with_faults(
        store,
        FaultPlan::new(6)
            .fail_after_create(1.0)
            .outage_after_ambiguous_create(),
    ));
    let table = faulty.load_table(&id).await.unwrap();
    let change = Change {
        upserts: vec![(1, 10), (2, 20)],
        deletes: Vec::new(),
    };
    let err = write(&table, &change).await.unwrap_err();
    assert!(err.is_commit_unknown(), "{err}");
    assert!(err.to_string().contains("unknown"), "{err}");
    // The snapshot was created: it must read whole.
    assert_eq!(latest_id(&clean, &id).await, Some(1));
    let mut model = Model::new();
    change.apply(&mut model);
    assert_eq!(read(&clean, &id).await, model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_and_compactions_survive_ambiguous_creates_on_s3() {
    let Some(server) = MotoServer::start_or_skip() else {
        return;
    };
    let options: OpenOptions = server.options();
    for seed in [11u64, 12] {
        let uri = format!("s3://{BUCKET}/ambiguous-{seed}");
        let store = WarehouseStore::open_with_options(&uri, &options)
            .await
            .unwrap();
        let (clean, faulty) = catalogs(store, ambiguous_plan(seed)).await;
        let (failed, _) = run(&clean, &faulty, seed, 20).await;
        let stats = faulty.store().fault_stats().unwrap();
        assert!(stats.injected > 5, "seed {seed}: only {stats:?}");
        assert!(failed < 15, "seed {seed}: {failed} of 20 steps failed");
    }
}
