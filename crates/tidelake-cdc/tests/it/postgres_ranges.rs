//! The PostgreSQL initial copy of a table split into ranges of pages
//! (`copy_range_bytes` set small so that test tables split): several
//! connections read one table under the slot's exported snapshot while
//! writers change it, and the Paimon table must end equal to the source,
//! whatever the table's key.

use tidelake_engine::Catalog;
use tidelake_testkit::rng::{seed, Rng};
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::postgres::{create_items, run_script, sink, start, wait_equal, workload, PgDb, ITEMS};

/// Ranges of 16 pages: a table of a few hundred pages gets as many ranges
/// as there are copy connections.
const RANGE_BYTES: u64 = 16 * 8192;

fn pages(db: &PgDb, table: &str) -> u64 {
    db.sql(&format!(
        "SELECT pg_relation_size('{table}') / current_setting('block_size')::int8"
    ))
    .parse()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_table_copied_in_ranges_under_concurrent_writes() {
    let db = PgDb::new("ranges");
    create_items(&db, 30_000);
    assert!(
        pages(&db, "items") >= 4 * 16,
        "items is large enough for 4 ranges"
    );
    let dir = KeptOnFailure::new("cdc-pg-ranges");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut rng = Rng::new(seed("postgres_ranges", "TIDELAKE_CDC_SEED"));
    // Writes before, during and after the copy: inserts past the last
    // page, updates moving rows to other pages, deletes.
    let writer = run_script(&db.name, workload(&mut rng, 800, 40_000));
    let mut source = db.source("ranges");
    source.copy_parallelism = 4;
    source.copy_range_bytes = RANGE_BYTES;
    let mut running = start(&catalog, sink("ranges"), source).await;
    writer.join().unwrap();
    wait_equal(&catalog, &db, "items", ITEMS, &mut running).await;
    // The stream goes on from the copy's point.
    db.sql("UPDATE items SET v = 'after' WHERE id % 1000 = 0");
    db.sql("DELETE FROM items WHERE id BETWEEN 100 AND 120");
    wait_equal(&catalog, &db, "items", ITEMS, &mut running).await;
    running.stop().await;
}

/// Text and composite keys split the same way (ranges are of pages, not of
/// key values); two such tables and their ranges share the connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tables_without_integer_keys_copied_in_ranges() {
    let db = PgDb::new("ranges_text");
    db.sql("CREATE TABLE tags (name text PRIMARY KEY, score numeric(10,2), note text)");
    db.sql(
        "INSERT INTO tags SELECT md5(i::text), i / 100.0, repeat('n', i % 50) \
         FROM generate_series(1, 20000) i",
    );
    db.sql("CREATE TABLE pairs (a uuid, b text, v int, PRIMARY KEY (a, b))");
    db.sql(
        "INSERT INTO pairs SELECT md5(i::text)::uuid, 'b' || (i % 3), i \
         FROM generate_series(1, 15000) i",
    );
    assert!(pages(&db, "tags") >= 2 * 16 && pages(&db, "pairs") >= 2 * 16);
    let dir = KeptOnFailure::new("cdc-pg-ranges-text");
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut rng = Rng::new(seed("postgres_ranges_text", "TIDELAKE_CDC_SEED"));
    let mut script = String::new();
    for _ in 0..400 {
        let i = rng.range(1, 25_000);
        script.push_str(&match rng.below(4) {
            0 => format!("UPDATE tags SET score = score + 1, note = 'u' WHERE name = md5('{i}');\n"),
            1 => format!(
                "INSERT INTO tags VALUES (md5('{i}'), 1, 'ins') ON CONFLICT (name) DO UPDATE SET note = NULL;\n"
            ),
            2 => format!("DELETE FROM pairs WHERE a = md5('{i}')::uuid;\n"),
            _ => format!("DELETE FROM tags WHERE name = md5('{i}');\n"),
        });
    }
    let writer = run_script(&db.name, script);
    let mut source = db.source("ranges_text");
    source.copy_parallelism = 3;
    source.copy_range_bytes = RANGE_BYTES;
    let mut running = start(&catalog, sink("ranges_text"), source).await;
    writer.join().unwrap();
    let tags = "SELECT concat_ws('|', name, score, coalesce(note, 'NULL')) FROM tags";
    let pairs = "SELECT concat_ws('|', a, b, v) FROM pairs";
    wait_equal(&catalog, &db, "tags", tags, &mut running).await;
    wait_equal(&catalog, &db, "pairs", pairs, &mut running).await;
    running.stop().await;
}
