//! Every commit to the warehouse's baseline is fenced by the run lock. A run paused between its
//! lock check and its write (a frozen VM, a long GC, a slow network), whose state connection was
//! cut and whose lock another run took over and used meanwhile, writes nothing when it resumes:
//! the bookkeeping and the destination still agree afterwards.

use std::sync::Arc;
use std::time::Duration;

use crate::common::tables::Tapped;
use crate::common::*;
use ebb::state::{self, RunStatus};
use ebb::sync::{self, RunOptions};

const ROWS: usize = 40;

fn mapping(source: &str, state: &str) -> String {
    format!(
        r#"name: fenced
source:
  postgres:
    url: ${{WAREHOUSE_URL}}
    table: {source}.people
    diff: warehouse
    state_schema: {state}
destination:
  enterpret:
    object: user
    api_key: ${{STANDIN_USERS_KEY:-local-users-key}}
    url: ${{STANDIN_URL}}
    batch_size: 15
    requests_per_minute: 1000000
    concurrency: 1
id: id
created_at: signup_at
attributes:
  name: name
"#
    )
}

/// The names the stand-in holds, sorted.
fn held_names(si: &ebb::standin::StandIn) -> Vec<String> {
    let mut names: Vec<String> = si.records("users").into_iter().map(|r| r.attributes.to_string()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lock_commits_nothing_to_the_warehouse_after_the_takeover() {
    let (source, tables, state_schema) = (
        TempSchema::new("ebb_fsrc"),
        TempSchema::new("ebb_fst"),
        TempSchema::new("ebb_fstate"),
    );
    let pool = admin().await;
    let exec = async |sql: String| sqlx::raw_sql(&sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    exec(format!(
        "CREATE SCHEMA \"{s}\"; CREATE TABLE \"{s}\".people (id text PRIMARY KEY, name text, signup_at timestamptz NOT NULL DEFAULT '2024-01-01'); \
         INSERT INTO \"{s}\".people (id, name) SELECT 'p' || i, 'v1' FROM generate_series(1, {ROWS}) AS i",
        s = source.name
    ))
    .await;
    let si = stand_in().await;
    let ws = Workspace::new();
    let path = ws.write("fenced.yml", &mapping(&source.name, &tables.name));
    let pairs = [("WAREHOUSE_URL", database_url()), ("STANDIN_URL", si.url())];
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store_a: Arc<dyn ebb::state::StateStore> = Arc::from(state::open(&state_schema.state_url(), false).await.expect("open"));
    let store_b = state::open(&state_schema.state_url(), false).await.expect("open");
    let first = run_ok(&load_sync(&path, &pairs), store_a.as_ref()).await;
    assert_eq!(first.counts.sent, ROWS as u64);

    // Run A sends v2 and stops just before its first write to the warehouse.
    exec(format!("UPDATE \"{}\".people SET name = 'v2'", source.name)).await;
    let mut job_a = load_sync(&path, &pairs);
    let tapped = Tapped::install(&mut job_a, true);
    let run_a = {
        let store = store_a.clone();
        tokio::spawn(async move { sync::run(&job_a, store.as_ref(), &RunOptions::default()).await })
    };
    tokio::time::timeout(Duration::from_secs(60), tapped.pause.reached.notified())
        .await
        .expect("run A reaches its first commit");

    // Its state connection is cut and its lease runs out: run B takes the sync over, sends v3
    // and commits it.
    let pid = lock_holder_pid(&pool, &state_schema.name, "fenced").await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&pool)
        .await
        .expect("terminate");
    exec(format!(
        "UPDATE \"{}\".run_leases SET heartbeat_at = now() - interval '1 hour' WHERE sync = 'fenced'",
        state_schema.name
    ))
    .await;
    exec(format!("UPDATE \"{}\".people SET name = 'v3'", source.name)).await;
    let taken_over = run_ok(&load_sync(&path, &pairs), store_b.as_ref()).await;
    assert_eq!(taken_over.counts.sent, ROWS as u64, "{taken_over:?}");
    let after_b: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&pool).await.expect("now");

    // Run A resumes: its write is refused, whole.
    tapped.pause.resume.notify_one();
    let report_a = tokio::time::timeout(Duration::from_secs(60), run_a)
        .await
        .expect("run A ends")
        .expect("joined")
        .expect("run A is recorded");
    assert_eq!(report_a.status, RunStatus::Failed, "{report_a:?}");
    let error = report_a.error.unwrap_or_default();
    assert!(error.contains("lost the run lock") && error.contains("fencing token"), "{error}");
    let late: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".ebb_records WHERE sync = 'fenced' AND synced_at > $1",
        tables.name
    ))
    .bind(after_b)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(late, 0, "no commit of run A landed after the takeover");

    // The bookkeeping and the destination agree: v3 everywhere, and nothing left to send.
    assert!(held_names(&si).iter().all(|n| n.contains("v3")), "{:?}", held_names(&si));
    let after = run_ok(&load_sync(&path, &pairs), store_b.as_ref()).await;
    assert_eq!((after.counts.changed, after.counts.sent), (0, 0), "{after:?}");

    // A state store that starts afresh (lost, or another backend) still outranks the tokens
    // the old one left in the warehouse: its runs commit.
    let fresh = ws.store().await;
    let after_loss = run_ok(&load_sync(&path, &pairs), fresh.as_ref()).await;
    assert_eq!(after_loss.counts.sent, 0, "{after_loss:?}");
    pool.close().await;
}
