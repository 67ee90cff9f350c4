//! `ebb rejected`: the records a sync rejects now, with the streak of runs that rejected each,
//! from the mapping and from the destination; and the count in `ebb status --json`.

use crate::common::*;
use ebb::state::{self, RejectionStage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_lists_what_the_last_run_rejected_with_its_streak() {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("users.yml", &users_yaml("bad-users", &si.url(), ""));
    let store = ws.store().await;
    let source = fixture("users_invalid.parquet").display().to_string();
    let envs = [("USERS_SOURCE", source.as_str())];

    // Run 1: the mapping rejects 8 rows (7 rejections: one is a duplicated id, twice), and the
    // destination refuses u-00009. Run 2 sends it again, refused again; run 3 it is taken.
    si.refuse_ids(["u-00009".to_string()]);
    let first = run_ok(&load_sync(&mapping, &envs), store.as_ref()).await;
    let second = run_ok(&load_sync(&mapping, &envs), store.as_ref()).await;
    assert_eq!((second.counts.invalid, second.counts.rejected), (8, 1), "{second:?}");
    let after_second = state::rejected_now(store.as_ref(), "bad-users").await.expect("rejected now");
    assert_eq!((after_second.by_mapping, after_second.by_destination), (8, 1));
    let refused = after_second
        .records
        .iter()
        .find(|r| r.stage == RejectionStage::Destination)
        .expect("the destination's refusal");
    assert_eq!(refused.identity.as_deref(), Some("u-00009"));
    assert_eq!(
        (refused.first_run, refused.last_run, refused.runs_in_a_row),
        (first.run_id.unwrap(), second.run_id.unwrap(), 2)
    );

    si.accept_ids(["u-00009".to_string()]);
    let third = run_ok(&load_sync(&mapping, &envs), store.as_ref()).await;
    assert_eq!(third.counts.sent, 1, "the refused record is sent again: {third:?}");
    let now = state::rejected_now(store.as_ref(), "bad-users").await.expect("rejected now");
    assert_eq!(now.run, third.run_id);
    assert_eq!(
        (now.by_mapping, now.by_destination, now.records.len(), now.complete),
        (8, 0, 7, true)
    );
    for r in &now.records {
        assert_eq!(r.stage, RejectionStage::Mapping, "{r:?}");
        assert_eq!(
            (r.first_run, r.last_run, r.runs_in_a_row),
            (first.run_id.unwrap(), third.run_id.unwrap(), 3),
            "{r:?}"
        );
    }

    let dir = ws.path().to_path_buf();
    let source2 = source.clone();
    let state_url = ws.state_url();
    let (text_out, json_out, status_out) = tokio::task::spawn_blocking(move || {
        let envs = [("USERS_SOURCE", source2.as_str())];
        (
            ebb(&dir, &["--state", &state_url, "rejected", "users.yml"], &envs),
            ebb(&dir, &["--state", &state_url, "rejected", "users.yml", "--json"], &envs),
            ebb(&dir, &["--state", &state_url, "status", "users.yml", "--json"], &envs),
        )
    })
    .await
    .expect("join");
    let (out, err) = text(&text_out);
    assert_eq!(text_out.status.code(), Some(0), "{out}{err}");
    assert!(
        out.starts_with("bad-users: run 3 rejected 8 rows by the mapping and 0 records by the destination\n"),
        "{out}"
    );
    assert!(out.contains("u-00004 · mapping · rejected by runs 1–3, 3 in a row"), "{out}");
    assert!(out.contains("      id `u-00004` occurs 2 times in the snapshot"), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 100), "fits in 100 columns:\n{out}");
    let doc: serde_json::Value = serde_json::from_slice(&json_out.stdout).expect("JSON");
    assert_eq!(doc["sync"], "bad-users");
    assert_eq!(doc["rejected"]["by_mapping"], 8);
    assert_eq!(doc["rejected"]["records"].as_array().map(Vec::len), Some(7));
    let null_id = doc["rejected"]["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["reason"] == "id is null")
        .expect("the null id");
    assert_eq!(null_id["identity"], serde_json::Value::Null);
    assert_eq!(null_id["runs_in_a_row"], 3);
    let status: serde_json::Value = serde_json::from_slice(&status_out.stdout).expect("JSON");
    assert_eq!(status[0]["rejected_now"], 8);
}

#[test]
fn rejected_before_any_run_and_with_nothing_rejected_say_so() {
    let ws = Workspace::new();
    ws.write("users.yml", &users_yaml("users", "http://127.0.0.1:9", ""));
    let source = fixture("users/pyarrow.parquet").display().to_string();
    let out = ebb(ws.path(), &["rejected", "users.yml"], &[("USERS_SOURCE", &source)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "users: no completed run yet\n");
}
