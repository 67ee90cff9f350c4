//! The diff's correctness at scale: the benchmark generator's 100k-row
//! snapshots, synced for real into the stand-in, must give exactly the
//! generator's truth file, count by count and record by record.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{load_sync, run_ok, stand_in, Workspace};
use serde_json::Value;

const ROWS: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_row_diff_matches_the_generators_truth() {
    let ws = Workspace::new();
    let data = ws.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebb-bench"))
        .args(["generate", "--rows", &ROWS.to_string(), "--seed", "7", "--out"])
        .arg(&data)
        .output()
        .expect("ebb-bench runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let truth: Value = serde_json::from_slice(&std::fs::read(data.join("truth.json")).expect("truth file")).expect("truth is JSON");
    let t = |k: &str| truth[k].as_u64().unwrap_or_else(|| panic!("truth has {k}"));
    assert_eq!(t("rows_a"), ROWS);
    assert!(t("changed") > 500 && t("deleted") > 250 && t("new") == ROWS / 200, "{truth}");

    let si = stand_in().await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/bench/users.yml");
    let url = si.url();
    let store = ws.store().await;
    let (a, b) = (
        data.join("a.parquet").display().to_string(),
        data.join("b.parquet").display().to_string(),
    );

    let first = run_ok(&load_sync(&path, &[("SNAPSHOT", &a), ("STANDIN_URL", &url)]), store.as_ref()).await;
    assert_eq!((first.counts.source, first.counts.new, first.counts.sent), (ROWS, ROWS, ROWS));
    assert_eq!(si.stats().records_received, ROWS);

    let second = run_ok(&load_sync(&path, &[("SNAPSHOT", &b), ("STANDIN_URL", &url)]), store.as_ref()).await;
    let c = &second.counts;
    assert_eq!(
        (c.source, c.new, c.changed, c.unchanged, c.gone, c.invalid),
        (t("rows_b"), t("new"), t("changed"), t("unchanged"), t("deleted"), 0),
        "{second:?} against {truth}"
    );
    assert_eq!(c.sent, t("new") + t("changed"));

    // Record by record: what was sent twice is exactly the changed rows, and nothing else moved.
    let held = si.records("users");
    assert_eq!(held.len() as u64, ROWS + t("new"), "deleted records stay where they are");
    let twice: BTreeSet<&str> = held.iter().filter(|r| r.received_count == 2).map(|r| r.id.as_str()).collect();
    assert_eq!(twice.len() as u64, t("changed"));
    assert!(held.iter().all(|r| r.received_count <= 2));

    let third = run_ok(&load_sync(&path, &[("SNAPSHOT", &b), ("STANDIN_URL", &url)]), store.as_ref()).await;
    assert_eq!(
        (third.counts.sent, third.counts.unchanged),
        (0, t("rows_b")),
        "B again changes nothing"
    );
}
