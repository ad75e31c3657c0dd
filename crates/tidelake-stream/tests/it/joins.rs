//! Joins of two streams: the sink follows changes on either side and ends
//! equal to the join run in batch; what cannot be maintained is refused.

use super::*;

const JOIN_TABLES: &str =
    "CREATE TABLE db.orders (id BIGINT NOT NULL, customer_id INT, amount INT, \
       PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '2'); \
     CREATE TABLE db.customers (id INT NOT NULL, name STRING, tier INT, \
       PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '2', 'changelog-producer' = 'lookup'); \
     CREATE TABLE db.enriched (id BIGINT NOT NULL, amount INT, name STRING, tier INT, \
       PRIMARY KEY (id) NOT ENFORCED)";

const INNER_JOB: &str = "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier \
     FROM db.orders AS o JOIN db.customers AS c ON o.customer_id = c.id WHERE o.amount > 0";
const INNER_BATCH: &str = "SELECT o.id, o.amount, c.name, c.tier \
     FROM db.orders AS o JOIN db.customers AS c ON o.customer_id = c.id WHERE o.amount > 0";
const LEFT_JOB: &str = "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier \
     FROM db.orders AS o LEFT JOIN db.customers AS c ON o.customer_id = c.id AND c.tier > 0";
const LEFT_BATCH: &str = "SELECT o.id, o.amount, c.name, c.tier \
     FROM db.orders AS o LEFT JOIN db.customers AS c ON o.customer_id = c.id AND c.tier > 0";

#[tokio::test]
async fn inner_join_of_two_streams_follows_updates_and_deletes_on_both_sides() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1), (2, 'bob', 2), (3, 'cyd', 0); \
         INSERT INTO db.orders VALUES (10, 1, 5), (11, 2, 6), (12, 4, 7), (13, 1, 0)",
    )
    .await;
    let first = job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!((first.commits, first.rows_out), (1, 2));
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|ada|1", "11|6|bob|2"]
    );
    // An order changes its customer, a customer its name, one is deleted,
    // the customer of an orphan order appears.
    sql(
        &s,
        "UPDATE db.orders SET customer_id = 3 WHERE id = 10; \
         UPDATE db.customers SET name = 'bobby' WHERE id = 2; \
         INSERT INTO db.customers VALUES (4, 'dan', 3)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|cyd|0", "11|6|bobby|2", "12|7|dan|3"]
    );
    sql(
        &s,
        "DELETE FROM db.customers WHERE id = 4; DELETE FROM db.orders WHERE id = 11; \
         UPDATE db.orders SET amount = 0 WHERE id = 10; INSERT INTO db.orders VALUES (14, 2, 9)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["14|9|bobby|2"]
    );
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, INNER_BATCH).await
    );
    // Nothing new: nothing committed.
    assert_eq!(job_ok(&s, "enrich", INNER_JOB).await.commits, 0);
    let properties = latest_properties(&s, "enriched").await;
    assert_eq!(
        properties["tidelake.progress.job.enrich.db.orders"],
        (latest_source_snapshot(&s, "orders").await + 1).to_string()
    );
    assert_eq!(
        properties["tidelake.progress.job.enrich.db.customers"],
        (latest_source_snapshot(&s, "customers").await + 1).to_string()
    );
}

/// INSERT OVERWRITE replaces rows without naming the ones it drops: the
/// keys it removes must leave the sink too, on either side of the join.
#[tokio::test]
async fn overwriting_a_joined_table_drops_the_rows_it_replaced() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1), (2, 'bob', 2); \
         INSERT INTO db.orders VALUES (10, 1, 5), (11, 2, 6), (12, 1, 7)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(rows(&s, "SELECT * FROM db.enriched").await.len(), 3);
    sql(
        &s,
        "INSERT OVERWRITE db.orders VALUES (12, 2, 8), (13, 1, 9)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["12|8|bob|2", "13|9|ada|1"]
    );
    sql(&s, "INSERT OVERWRITE db.customers VALUES (2, 'bea', 5)").await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(rows(&s, "SELECT * FROM db.enriched").await, ["12|8|bea|5"]);
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, INNER_BATCH).await
    );
}

#[tokio::test]
async fn left_join_null_extension_appears_and_disappears() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1); \
         INSERT INTO db.orders VALUES (10, 1, 5), (11, 2, 6), (12, NULL, 7)",
    )
    .await;
    job_ok(&s, "enrich", LEFT_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|ada|1", "11|6|NULL|NULL", "12|7|NULL|NULL"]
    );
    // Customer 2 appears: order 11 gains its match; ada's tier drops to 0,
    // which the ON condition rejects: order 10 loses its match.
    sql(
        &s,
        "INSERT INTO db.customers VALUES (2, 'bob', 2); UPDATE db.customers SET tier = 0 WHERE id = 1",
    )
    .await;
    job_ok(&s, "enrich", LEFT_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|NULL|NULL", "11|6|bob|2", "12|7|NULL|NULL"]
    );
    // Customer 2 goes; order 12 gets a customer; order 10 is deleted.
    sql(
        &s,
        "DELETE FROM db.customers WHERE id = 2; UPDATE db.orders SET customer_id = 1 WHERE id = 12; \
         UPDATE db.customers SET tier = 5 WHERE id = 1; DELETE FROM db.orders WHERE id = 10",
    )
    .await;
    job_ok(&s, "enrich", LEFT_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["11|6|NULL|NULL", "12|7|ada|5"]
    );
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, LEFT_BATCH).await
    );
}

#[tokio::test]
async fn right_join_keeps_every_row_of_the_right_table() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1); \
         INSERT INTO db.orders VALUES (10, 1, 5), (11, 2, 6)",
    )
    .await;
    let job = "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier \
               FROM db.customers c RIGHT JOIN db.orders o ON c.id = o.customer_id";
    let batch = "SELECT o.id, o.amount, c.name, c.tier \
                 FROM db.customers c RIGHT JOIN db.orders o ON c.id = o.customer_id";
    job_ok(&s, "enrich", job).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (2, 'bob', 2); DELETE FROM db.customers WHERE id = 1; \
         INSERT INTO db.orders VALUES (12, 1, 1)",
    )
    .await;
    job_ok(&s, "enrich", job).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        ["10|5|NULL|NULL", "11|6|bob|2", "12|1|NULL|NULL"]
    );
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, batch).await
    );
}

/// splitmix64, for reproducible random changes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// A random change to one of the two tables, join-key changes included.
fn random_change(rng: &mut Rng) -> String {
    let order = rng.below(30);
    let customer = rng.below(8);
    match rng.below(7) {
        0 | 1 => {
            let values: Vec<String> = (0..1 + rng.below(5))
                .map(|_| format!("({}, {}, {})", rng.below(30), rng.below(9), rng.below(20)))
                .collect();
            format!("INSERT INTO db.orders VALUES {}", values.join(", "))
        }
        2 => format!(
            "UPDATE db.orders SET customer_id = {customer} WHERE id % 5 = {}",
            order % 5
        ),
        3 => format!("DELETE FROM db.orders WHERE id % 7 = {}", order % 7),
        4 => format!(
            "INSERT INTO db.customers VALUES ({customer}, 'c{}', {})",
            rng.below(100),
            rng.below(3)
        ),
        5 => format!(
            "UPDATE db.customers SET tier = {} WHERE id = {customer}",
            rng.below(3)
        ),
        _ => format!("DELETE FROM db.customers WHERE id = {customer}"),
    }
}

#[tokio::test]
async fn random_changes_to_both_streams_end_equal_to_the_batch_join() {
    for seed in [1u64, 2, 3] {
        let (_dir, s) = session().await;
        sql(&s, JOIN_TABLES).await;
        sql(
            &s,
            "CREATE TABLE db.enriched_inner (id BIGINT NOT NULL, amount INT, name STRING, tier INT, \
               PRIMARY KEY (id) NOT ENFORCED)",
        )
        .await;
        let inner = INNER_JOB.replace("db.enriched", "db.enriched_inner");
        let mut rng = Rng(seed);
        for round in 0..6 {
            for _ in 0..1 + rng.below(6) {
                sql(&s, &random_change(&mut rng)).await;
            }
            job_ok(&s, "left", LEFT_JOB).await;
            job_ok(&s, "inner", &inner).await;
            assert_eq!(
                rows(&s, "SELECT * FROM db.enriched").await,
                rows(&s, LEFT_BATCH).await,
                "seed {seed}, round {round}: left join"
            );
            assert_eq!(
                rows(&s, "SELECT * FROM db.enriched_inner").await,
                rows(&s, INNER_BATCH).await,
                "seed {seed}, round {round}: inner join"
            );
        }
    }
}

#[tokio::test]
async fn joins_of_two_streams_refuse_what_they_cannot_maintain() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "CREATE TABLE db.log (id BIGINT NOT NULL, customer_id INT); \
         CREATE TABLE db.by_name (name STRING NOT NULL, id BIGINT, PRIMARY KEY (name) NOT ENFORCED); \
         CREATE TABLE db.totals (id BIGINT NOT NULL, amount INT, PRIMARY KEY (id) NOT ENFORCED) \
           WITH ('merge-engine' = 'aggregation', 'fields.amount.aggregate-function' = 'sum'); \
         CREATE TABLE db.plain (id BIGINT, amount INT, name STRING, tier INT)",
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.plain SELECT l.id, 0, c.name, c.tier FROM db.log l JOIN db.customers c ON l.customer_id = c.id",
        &["'db.log' has none", "FOR SYSTEM_TIME AS OF PROCTIME()"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.plain SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.customers c ON o.customer_id = c.id",
        &["sink 'db.plain'", "deduplicate"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.totals SELECT o.id, o.amount FROM db.orders o JOIN db.customers c ON o.customer_id = c.id",
        &["sink 'db.totals'", "deduplicate"],
    )
    .await;
    // Customers are matched by tier, not by key: several per order.
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.customers c ON o.customer_id = c.tier",
        &["must identify each output row", "'db.customers'", "missing: id"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o LEFT JOIN db.customers c ON o.customer_id = c.tier",
        &["left join", "right table 'db.customers' must match at most one row", "missing: id"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.by_name SELECT c.name, o.id FROM db.customers c LEFT JOIN db.orders o ON o.customer_id = c.id",
        &["left join", "'db.orders' must match at most one row"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.by_name SELECT c.name, o.id FROM db.orders o LEFT JOIN db.customers c ON o.customer_id = c.id",
        &["primary key of sink 'db.by_name' must include", "missing: id"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o FULL OUTER JOIN db.customers c ON o.customer_id = c.id",
        &["FULL OUTER JOIN"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.customers c ON o.amount > c.tier",
        &["non-equi join"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.customers c ON o.id = o.customer_id",
        &["non-equi join"],
    )
    .await;
    refused(
        &s,
        "INSERT INTO db.enriched SELECT o.id, o.amount, c.name, c.tier FROM db.orders o JOIN db.orders c ON o.customer_id = c.id",
        &["with itself"],
    )
    .await;
}

#[tokio::test]
async fn a_join_job_pins_its_versions_and_names_one_that_expired() {
    let (_dir, s) = session().await;
    sql(&s, JOIN_TABLES).await;
    sql(
        &s,
        "INSERT INTO db.customers VALUES (1, 'ada', 1); INSERT INTO db.orders VALUES (10, 1, 5)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    let orders = s
        .catalog()
        .load_table(&Identifier::new("db", "orders"))
        .await
        .unwrap();
    let pinned = orders.consumer("enrich").await.unwrap();
    assert_eq!(pinned, Some(latest_source_snapshot(&s, "orders").await));
    for i in 0..4 {
        sql(
            &s,
            &format!("INSERT INTO db.orders VALUES ({}, 1, 1)", 20 + i),
        )
        .await;
    }
    // The consumer keeps the version the sink reflects.
    sql(
        &s,
        "CALL sys.expire_snapshots(table => 'db.orders', retain_max => 1, retain_min => 1)",
    )
    .await;
    job_ok(&s, "enrich", INNER_JOB).await;
    assert_eq!(
        rows(&s, "SELECT * FROM db.enriched").await,
        rows(&s, INNER_BATCH).await
    );
    // Without the consumer, expiration takes it: the job says so.
    sql(&s, "INSERT INTO db.orders VALUES (30, 1, 1)").await;
    sql(&s, "INSERT INTO db.orders VALUES (31, 1, 1)").await;
    assert!(orders.delete_consumer("enrich").await.unwrap());
    sql(
        &s,
        "CALL sys.expire_snapshots(table => 'db.orders', retain_max => 1, retain_min => 1)",
    )
    .await;
    let error = run_job(&s, "enrich", INNER_JOB)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("enrich") && error.contains("db.orders") && error.contains("expired"),
        "{error}"
    );
}
