//! Mirror mode and guards, against a real PostgreSQL source and the profiles stand-in: deletes
//! go only for records ebb sent that left the source, are committed only when acknowledged,
//! and no run passes a guard unless a person lets it.

use std::collections::BTreeSet;

use crate::common::*;
use ebb::standin::{Fault, StandIn};
use ebb::state::{RunStatus, StateStore};
use ebb::sync::{self, AllowGuards, RunOptions, RunReport, SyncJob};
use serde_json::json;

/// A PostgreSQL schema of one test's own, holding `people`.
struct Warehouse {
    pg: PgSchema,
}

impl std::ops::Deref for Warehouse {
    type Target = PgSchema;

    fn deref(&self) -> &PgSchema {
        &self.pg
    }
}

impl Warehouse {
    async fn new(rows: usize) -> Warehouse {
        let wh = Warehouse {
            pg: PgSchema::new("ebb_mirror").await,
        };
        wh.exec("CREATE TABLE {s}.people (email text, name text, plan text)").await;
        for i in 1..=rows {
            wh.exec(&format!(
                "INSERT INTO {{s}}.people VALUES ('p{i}@example.com', 'Person {i}', 'free')"
            ))
            .await;
        }
        wh
    }

    fn mapping(&self, url: &str, guards: &str) -> String {
        format!(
            r#"name: mirrored
source:
  postgres:
    url: ${{WAREHOUSE_URL}}
    table: {s}.people
destination:
  profiles:
    url: {url}
    token: ${{PROFILES_TOKEN:-local-profiles-token}}
    requests_per_minute: 60000
    retry_budget_secs: 2
mode: mirror
email: email
full_name: name
properties:
  plan: plan
{guards}"#,
            s = self.name
        )
    }
}

/// An empty `guards:` block: it replaces mirror mode's default, so that a test of deletes can
/// delete more than a tenth of what it sent.
const NO_GUARDS: &str = "guards: {}\n";

struct Setup {
    wh: Warehouse,
    si: StandIn,
    ws: Workspace,
    store: Box<dyn StateStore>,
}

impl Setup {
    async fn new(rows: usize, guards: &str) -> Setup {
        let wh = Warehouse::new(rows).await;
        let si = stand_in().await;
        let ws = Workspace::new();
        ws.write("m.yml", &wh.mapping(&si.url(), guards));
        let store = ws.store().await;
        Setup { wh, si, ws, store }
    }

    fn sync(&self) -> SyncJob {
        let url = database_url();
        load_sync(&self.ws.path().join("m.yml"), &[("WAREHOUSE_URL", url.as_str())])
    }

    async fn run(&self, allow: AllowGuards) -> RunReport {
        let options = RunOptions {
            allow_guards: allow,
            ..RunOptions::default()
        };
        sync::run(&self.sync(), self.store.as_ref(), &options)
            .await
            .expect("run is recorded")
    }

    fn held(&self) -> BTreeSet<String> {
        self.si.profiles().into_iter().map(|p| p.email).collect()
    }

    async fn in_state(&self) -> BTreeSet<String> {
        self.store
            .records("mirrored")
            .await
            .expect("records")
            .into_iter()
            .map(|r| r.0)
            .collect()
    }
}

fn emails(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|e| e.to_string()).collect()
}

/// A profile someone else created at the destination, not through ebb.
async fn import_directly(si: &StandIn, email: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/users/import", si.url()))
        .header("authorization", "Token local-profiles-token")
        .json(&json!({"users": [{"email": email, "name": "Made Elsewhere", "properties": [], "segments": []}]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn mirror_deletes_exactly_the_acknowledged_records_that_left_the_source() {
    let s = Setup::new(5, NO_GUARDS).await;
    import_directly(&s.si, "outsider@example.com").await;
    let first = s.run(AllowGuards::None).await;
    assert_eq!(
        (first.status, first.counts.sent, first.counts.deleted),
        (RunStatus::Completed, 5, 0)
    );

    // p1 and p2 leave the source; p3's row turns invalid, which is not a deletion.
    s.wh.exec("DELETE FROM {s}.people WHERE email IN ('p1@example.com', 'p2@example.com'); UPDATE {s}.people SET name = NULL WHERE email = 'p3@example.com'").await;
    let preview = sync::preview(&s.sync(), s.store.as_ref(), 5).await.expect("preview");
    assert_eq!(preview.to_delete, ["p1@example.com", "p2@example.com"]);
    let deletes: Vec<&str> = preview
        .requests
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.url.as_str())
        .collect();
    assert_eq!(
        deletes,
        [
            format!("{}/users/p1@example.com", s.si.url()),
            format!("{}/users/p2@example.com", s.si.url())
        ]
    );
    assert_eq!(s.held().len(), 6, "a preview deletes nothing");

    let second = s.run(AllowGuards::None).await;
    assert_eq!(
        (second.status, second.counts.deleted, second.counts.invalid, second.counts.gone),
        (RunStatus::Completed, 2, 1, 2),
        "{second:?}"
    );
    assert_eq!(
        s.held(),
        emails(&["outsider@example.com", "p3@example.com", "p4@example.com", "p5@example.com"]),
        "the invalid row's profile stays, and so does one ebb never sent"
    );
    assert_eq!(s.in_state().await, emails(&["p3@example.com", "p4@example.com", "p5@example.com"]));
    let third = s.run(AllowGuards::None).await;
    assert_eq!((third.counts.sent, third.counts.deleted), (0, 0), "nothing is deleted twice");
}

#[tokio::test]
async fn a_delete_refused_with_a_5xx_is_retried_and_stays_pending_until_it_gets_through() {
    let s = Setup::new(3, NO_GUARDS).await;
    s.run(AllowGuards::None).await;
    s.wh.exec("DELETE FROM {s}.people WHERE email = 'p1@example.com'").await;

    // Two 503s, then through: retried within the run.
    s.si.push_faults([503, 503].map(|status| Fault {
        status,
        retry_after_secs: None,
    }));
    let retried = s.run(AllowGuards::None).await;
    assert_eq!((retried.status, retried.counts.deleted), (RunStatus::Completed, 1), "{retried:?}");
    assert_eq!(s.si.stats().by_status.get(&503), Some(&2));
    assert!(!s.held().contains("p1@example.com"));

    // A 500 past the retry budget: the run fails, the record stays in state, and the next run deletes it.
    s.wh.exec("DELETE FROM {s}.people WHERE email = 'p2@example.com'").await;
    s.si.push_faults((0..1000).map(|_| Fault {
        status: 500,
        retry_after_secs: None,
    }));
    let failed = s.run(AllowGuards::None).await;
    assert_eq!(
        (failed.status, failed.counts.deleted, failed.counts.failed),
        (RunStatus::Failed, 0, 1),
        "{failed:?}"
    );
    assert!(
        s.in_state().await.contains("p2@example.com"),
        "an unacknowledged delete is not committed"
    );
    assert!(s.held().contains("p2@example.com"));
    s.si.clear_faults();
    let later = s.run(AllowGuards::None).await;
    assert_eq!((later.status, later.counts.deleted), (RunStatus::Completed, 1), "{later:?}");
    assert!(!s.held().contains("p2@example.com") && !s.in_state().await.contains("p2@example.com"));
}

#[tokio::test]
async fn a_delete_of_a_profile_already_gone_counts_as_done() {
    let s = Setup::new(2, NO_GUARDS).await;
    s.run(AllowGuards::None).await;
    let gone = reqwest::Client::new()
        .delete(format!("{}/users/p1@example.com", s.si.url()))
        .header("authorization", "Token local-profiles-token")
        .send()
        .await
        .expect("sent");
    assert_eq!(gone.status(), 204);
    s.wh.exec("DELETE FROM {s}.people WHERE email = 'p1@example.com'").await;
    let report = s.run(AllowGuards::None).await;
    assert_eq!(
        (report.status, report.counts.deleted),
        (RunStatus::Completed, 1),
        "a 404 to a delete is done: {report:?}"
    );
    assert_eq!(s.si.stats().by_status.get(&404), Some(&1));
    assert_eq!(s.in_state().await, emails(&["p2@example.com"]));
}

/// The guard blocks with nothing sent and state unchanged; letting it through once works.
async fn blocked_then_let_through(s: &Setup, guard: &str, planned: &str) {
    let requests = s.si.stats().requests;
    let state = s.in_state().await;
    let blocked = s.run(AllowGuards::None).await;
    assert_eq!(blocked.status, RunStatus::Blocked, "{guard}: {blocked:?}");
    let error = blocked.error.clone().unwrap_or_default();
    assert!(error.starts_with(&format!("blocked by guard `{guard}`: {planned}")), "{error}");
    assert!(error.contains("--allow-guard"), "{error}");
    assert_eq!((blocked.counts.sent, blocked.counts.deleted), (0, 0));
    assert_eq!(s.si.stats().requests, requests, "{guard}: nothing was sent, upserts included");
    assert_eq!(s.in_state().await, state, "{guard}: state is unchanged");
    let runs = s.store.runs(Some("mirrored"), 1).await.expect("runs");
    assert_eq!(runs[0].status, RunStatus::Blocked, "recorded as blocked");
    let other = s.run(AllowGuards::Some(vec!["some_other_guard".into()])).await;
    assert_eq!(
        other.status,
        RunStatus::Blocked,
        "allowing another guard does not let this one through"
    );
    let through = s.run(AllowGuards::Some(vec![guard.to_string()])).await;
    assert_eq!(through.status, RunStatus::Completed, "{guard}: {through:?}");
}

#[tokio::test]
async fn each_guard_blocks_a_run_with_nothing_sent_and_allow_guard_lets_one_through() {
    let s = Setup::new(10, "guards:\n  max_deletes: 2\n").await;
    s.run(AllowGuards::None).await;
    s.wh.exec("DELETE FROM {s}.people WHERE email IN ('p1@example.com', 'p2@example.com', 'p3@example.com'); UPDATE {s}.people SET plan = 'pro' WHERE email = 'p4@example.com'").await;
    blocked_then_let_through(&s, "max_deletes", "3 deletes planned, over the limit of 2").await;
    assert_eq!(s.held().len(), 7);

    let s = Setup::new(10, "guards:\n  max_delete_ratio: 0.1\n").await;
    s.run(AllowGuards::None).await;
    s.wh.exec("DELETE FROM {s}.people WHERE email IN ('p1@example.com', 'p2@example.com')")
        .await;
    blocked_then_let_through(
        &s,
        "max_delete_ratio",
        "2 deletes of 10 records in state (20%), over the limit of 10%",
    )
    .await;

    let s = Setup::new(10, "guards:\n  max_change_ratio: 0.3\n").await;
    let first = s.run(AllowGuards::None).await;
    assert_eq!(
        first.status,
        RunStatus::Completed,
        "ratios do not apply to the first run: {first:?}"
    );
    s.wh.exec("UPDATE {s}.people SET plan = 'pro' WHERE email IN ('p1@example.com', 'p2@example.com', 'p3@example.com'); DELETE FROM {s}.people WHERE email = 'p4@example.com'").await;
    blocked_then_let_through(
        &s,
        "max_change_ratio",
        "4 new, changed and deleted of 10 records in state (40%), over the limit of 30%",
    )
    .await;
}

#[tokio::test]
async fn an_empty_snapshot_is_refused_in_mirror_mode_unless_allowed() {
    let s = Setup::new(3, NO_GUARDS).await;
    s.run(AllowGuards::None).await;
    s.wh.exec("DELETE FROM {s}.people").await;
    blocked_then_let_through(
        &s,
        "allow_empty_source",
        "the snapshot has no rows, so mirror mode would delete all 3 records in state",
    )
    .await;
    assert!(
        s.held().is_empty() && s.in_state().await.is_empty(),
        "let through, it deletes everything"
    );

    let s = Setup::new(2, "guards:\n  allow_empty_source: true\n").await;
    s.run(AllowGuards::None).await;
    s.wh.exec("DELETE FROM {s}.people").await;
    let report = s.run(AllowGuards::None).await;
    assert_eq!((report.status, report.counts.deleted), (RunStatus::Completed, 2), "{report:?}");
}

#[tokio::test]
async fn a_mirror_mapping_without_guards_deletes_at_most_a_tenth_of_its_records_unless_let_through() {
    let s = Setup::new(20, "").await;
    s.run(AllowGuards::None).await;
    s.wh.exec("DELETE FROM {s}.people WHERE email IN ('p1@example.com', 'p2@example.com')")
        .await;
    let sync = load_sync(&s.ws.path().join("m.yml"), &[("WAREHOUSE_URL", &database_url())]);
    let preview = sync::preview(&sync, s.store.as_ref(), 1).await.expect("preview");
    assert!(
        preview
            .guards
            .iter()
            .any(|g| g.starts_with("max_delete_ratio 10% (mirror mode's default")),
        "the preview shows the default: {:?}",
        preview.guards
    );
    assert_eq!(preview.blocked, None, "2 of 20 is a tenth, which the default lets through");
    let report = s.run(AllowGuards::None).await;
    assert_eq!((report.status, report.counts.deleted), (RunStatus::Completed, 2), "{report:?}");
    s.wh.exec("DELETE FROM {s}.people WHERE email IN ('p3@example.com', 'p4@example.com', 'p5@example.com')")
        .await;
    blocked_then_let_through(
        &s,
        "max_delete_ratio",
        "3 deletes of 18 records in state (16.7%), over the limit of 10%",
    )
    .await;
}

#[tokio::test]
async fn a_change_ratio_above_one_lets_new_records_through_up_to_that_many_times_the_state() {
    let s = Setup::new(4, "guards:\n  max_change_ratio: 2\n").await;
    s.run(AllowGuards::None).await;
    s.wh.exec("INSERT INTO {s}.people SELECT 'n' || i || '@example.com', 'New ' || i, 'free' FROM generate_series(1, 8) AS i")
        .await;
    let report = s.run(AllowGuards::None).await;
    assert_eq!(
        (report.status, report.counts.new),
        (RunStatus::Completed, 8),
        "8 new of 4 in state is 2x: {report:?}"
    );
    s.wh.exec("INSERT INTO {s}.people SELECT 'm' || i || '@example.com', 'More ' || i, 'free' FROM generate_series(1, 25) AS i")
        .await;
    blocked_then_let_through(
        &s,
        "max_change_ratio",
        "25 new, changed and deleted of 12 records in state (208.3%), over the limit of 200%",
    )
    .await;
}

#[tokio::test]
async fn the_cli_exits_3_on_a_blocked_sync_names_the_guard_and_lets_it_through_with_allow_guard() {
    let s = Setup::new(4, "guards:\n  max_deletes: 0\n").await;
    s.run(AllowGuards::None).await;
    s.wh.exec("DELETE FROM {s}.people WHERE email = 'p1@example.com'").await;
    let url = database_url();
    let state = s.ws.state_url();
    let envs = [("WAREHOUSE_URL", url.as_str()), ("EBB_STATE", state.as_str())];
    let dir = s.ws.path().to_path_buf();
    let blocked = tokio::task::spawn_blocking({
        let (dir, envs) = (dir.clone(), envs.map(|(k, v)| (k, v.to_string())));
        move || {
            ebb(
                &dir,
                &["sync", "m.yml"],
                &envs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            )
        }
    })
    .await
    .expect("ran");
    let (stdout, _) = text(&blocked);
    assert_eq!(blocked.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("mirrored: blocked") && stdout.contains("blocked by guard `max_deletes`: 1 delete planned, over the limit of 0"),
        "{stdout}"
    );
    let bad = tokio::task::spawn_blocking({
        let (dir, envs) = (dir.clone(), envs.map(|(k, v)| (k, v.to_string())));
        move || {
            ebb(
                &dir,
                &["sync", "m.yml", "--allow-guard", "max_delets"],
                &envs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            )
        }
    })
    .await
    .expect("ran");
    assert_eq!(bad.status.code(), Some(2), "a guard name that does not exist is a usage error");
    let through = tokio::task::spawn_blocking({
        let (dir, envs) = (dir.clone(), envs.map(|(k, v)| (k, v.to_string())));
        move || {
            ebb(
                &dir,
                &["sync", "m.yml", "--allow-guard", "max_deletes"],
                &envs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            )
        }
    })
    .await
    .expect("ran");
    let (stdout, _) = text(&through);
    assert_eq!(through.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("deleted 1"), "{stdout}");
    assert!(!s.held().contains("p1@example.com"));
}

#[test]
fn guards_and_mirror_are_checked_at_validate_time() {
    let env = env(&[]);
    let parse = |yaml: &str| match ebb::spec::parse(std::path::Path::new("/tmp/m.yml"), yaml, &env) {
        Ok(m) => Ok(m),
        Err(e) => Err(e.to_string()),
    };
    let head = "name: g\nsource:\n  parquet: p.parquet\ndestination:\n  profiles:\n    token: ${T:-t}\nemail: email\nfull_name: who\n";
    let bad = parse(&format!("{head}guards:\n  max_delete_ratio: 5\n")).expect_err("out of range");
    assert!(bad.contains("guards.max_delete_ratio: must be a share from 0 to 1"), "{bad}");
    let bad = parse(&format!("{head}guards:\n  max_change_ratio: -0.5\n")).expect_err("negative");
    assert!(bad.contains("guards.max_change_ratio: must be 0 or more"), "{bad}");
    let twice = parse(&format!("{head}guards:\n  max_change_ratio: 2\n")).expect("new records can take it past 1");
    assert_eq!(twice.guards.max_change_ratio, Some(2.0));
    let mirror = parse(&format!("{head}mode: mirror\n")).expect("valid");
    assert_eq!(
        (mirror.guards.max_delete_ratio, mirror.guards.defaulted),
        (Some(0.1), true),
        "a mirror mapping without guards gets a default"
    );
    let replaced = parse(&format!("{head}mode: mirror\nguards: {{}}\n")).expect("valid");
    assert_eq!(
        replaced.guards.max_delete_ratio, None,
        "any guards block, even an empty one, replaces the default"
    );
    let upsert = parse(head).expect("valid");
    assert_eq!(upsert.guards.max_delete_ratio, None, "only mirror mode has a default");
    let bad = parse(&format!("{head}guards:\n  max_deletes: -1\n")).expect_err("negative");
    assert!(bad.contains("guards.max_deletes: must be 0 or more"), "{bad}");
    let bad = parse(&format!("{head}guards:\n  max_delets: 1\n")).expect_err("typo");
    assert!(bad.contains("max_delets"), "{bad}");
    let ok = parse(&format!(
        "{head}mode: mirror\nguards:\n  max_deletes: 10\n  max_change_ratio: 0.5\n"
    ))
    .expect("valid");
    assert_eq!(ok.guards.max_deletes, Some(10));
    let enterpret = "name: e\nsource:\n  parquet: p.parquet\ndestination:\n  enterpret:\n    object: user\n    api_key: ${K:-k}\nid: a\ncreated_at: b\nmode: mirror\n";
    assert!(parse(enterpret)
        .expect_err("no delete API")
        .contains("`mirror` needs a destination that can delete records"));
}

/// Runs the `ebb` binary in the setup's workspace, with its source and state.
async fn cli(s: &Setup, args: &[&str]) -> (Option<i32>, String) {
    let url = database_url();
    let state = s.ws.state_url();
    let dir = s.ws.path().to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ebb(&dir, &args, &[("WAREHOUSE_URL", url.as_str()), ("EBB_STATE", state.as_str())])
    })
    .await
    .expect("ran");
    let (stdout, stderr) = text(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

#[tokio::test]
async fn a_record_mirror_deleted_is_never_sent_again_when_its_row_comes_back_until_unsuppressed() {
    let s = Setup::new(3, NO_GUARDS).await;
    s.run(AllowGuards::None).await;
    s.wh.exec("DELETE FROM {s}.people WHERE email = 'p1@example.com'").await;
    assert_eq!(s.run(AllowGuards::None).await.counts.deleted, 1);
    s.wh.exec("INSERT INTO {s}.people VALUES ('P1@Example.com', 'Person 1 again', 'pro')")
        .await;
    for full in [false, true] {
        let options = RunOptions {
            full,
            ..RunOptions::default()
        };
        let back = sync::run(&s.sync(), s.store.as_ref(), &options).await.expect("run");
        assert_eq!(
            (back.status, back.counts.suppressed, back.counts.gone),
            (RunStatus::Completed, 1, 0),
            "full {full}: {back:?}"
        );
        assert!(!s.held().contains("p1@example.com"), "never re-created, --full included");
    }
    let (code, listed) = cli(&s, &["suppressed", "m.yml", "--json"]).await;
    assert_eq!(code, Some(0), "{listed}");
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed[0]["id"], "p1@example.com");
    assert_eq!(listed[0]["reason"], "mirror");
    assert!(listed[0]["run"].as_i64().is_some(), "by which run: {listed}");
    let (code, out) = cli(&s, &["reset", "m.yml"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(s.run(AllowGuards::None).await.counts.suppressed, 1, "reset keeps the list");
    let (code, out) = cli(&s, &["unsuppress", "m.yml", "p1@EXAMPLE.com"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("lifted 1 of 1"), "{out}");
    let restored = s.run(AllowGuards::None).await;
    assert_eq!((restored.counts.suppressed, restored.counts.sent), (0, 1), "{restored:?}");
    assert!(s.held().contains("p1@example.com"));
}

#[tokio::test]
async fn ebb_delete_deletes_at_the_destination_and_suppresses_and_ebb_suppress_sends_nothing() {
    let s = Setup::new(3, NO_GUARDS).await;
    s.run(AllowGuards::None).await;
    let (code, out) = cli(&s, &["delete", "m.yml", "P2@example.com"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("p2@example.com: deleted, and suppressed"), "{out}");
    assert!(!s.held().contains("p2@example.com") && !s.in_state().await.contains("p2@example.com"));
    let (code, out) = cli(&s, &["delete", "m.yml", "not an email"]).await;
    assert_eq!(code, Some(1));
    assert!(out.contains("is not an address"), "{out}");

    let (code, out) = cli(&s, &["suppress", "m.yml", "p3@example.com", "new@example.com"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("suppressed 2"), "{out}");
    s.wh.exec("UPDATE {s}.people SET plan = 'pro'; INSERT INTO {s}.people VALUES ('new@example.com', 'New', 'free')")
        .await;
    let requests = s.si.stats().requests;
    let preview = sync::preview(&s.sync(), s.store.as_ref(), 5).await.expect("preview");
    assert_eq!(
        preview.counts.suppressed, 3,
        "p2 (delete), p3 and new (manual): {:?}",
        preview.counts
    );
    let report = s.run(AllowGuards::None).await;
    assert_eq!(
        (report.counts.suppressed, report.counts.sent, report.counts.deleted),
        (3, 1, 0),
        "only p1 changed and goes: {report:?}"
    );
    assert_eq!(s.si.stats().requests, requests + 1);
    assert!(!s.held().contains("new@example.com"));
    assert!(
        s.in_state().await.contains("p3@example.com"),
        "a manual suppression deletes nothing, even in mirror mode"
    );
    let (_, listed) = cli(&s, &["suppressed", "m.yml"]).await;
    assert!(
        listed.contains("p2@example.com  delete") && listed.contains("p3@example.com  manual"),
        "{listed}"
    );
    let (_, status) = cli(&s, &["status", "m.yml"]).await;
    assert!(status.contains("suppressed 3"), "{status}");
}

#[tokio::test]
async fn a_suppression_source_is_read_every_run_and_its_identities_are_never_sent() {
    let s = Setup::new(3, NO_GUARDS).await;
    s.wh.exec("CREATE TABLE {s}.deleted_in_ui (email text); INSERT INTO {s}.deleted_in_ui VALUES ('P1@example.com'), ('not-an-email')")
        .await;
    let with_source = format!(
        "{}suppress:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: {}.deleted_in_ui\n",
        s.wh.mapping(&s.si.url(), NO_GUARDS),
        s.wh.name
    );
    s.ws.write("m.yml", &with_source);
    let first = s.run(AllowGuards::None).await;
    assert_eq!((first.counts.sent, first.counts.suppressed), (2, 1), "{first:?}");
    assert!(!s.held().contains("p1@example.com"));
    s.wh.exec("INSERT INTO {s}.deleted_in_ui VALUES ('p2@example.com')").await;
    let second = s.run(AllowGuards::None).await;
    assert_eq!(
        (second.counts.suppressed, second.counts.deleted),
        (2, 0),
        "a suppressed record in state is not deleted: {second:?}"
    );
    let reasons: Vec<(String, String)> = s
        .store
        .suppressions("mirrored")
        .await
        .expect("list")
        .into_iter()
        .map(|x| (x.id, x.reason.as_str().to_string()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("p1@example.com".to_string(), "source".to_string()),
            ("p2@example.com".to_string(), "source".to_string())
        ]
    );

    let two_columns = with_source.replace(".deleted_in_ui\n", ".people\n");
    s.ws.write("m.yml", &two_columns);
    let err = s.sync().compile().await.expect_err("a list is one column").to_string();
    assert!(
        err.contains("suppress.postgres.url") && err.contains("it has 3 readable columns; it must have one"),
        "{err}"
    );
}

#[tokio::test]
async fn suppression_works_for_an_enterpret_mapping_too() {
    let si = stand_in().await;
    let ws = Workspace::new();
    let mapping = ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let store = ws.store().await;
    store
        .suppress("users", &["u-00003".to_string()], ebb::state::SuppressReason::Manual, None)
        .await
        .expect("suppress");
    let users = fixture("users/pyarrow.parquet").display().to_string();
    let sync = load_sync(&mapping, &[("USERS_SOURCE", users.as_str())]);
    let report = run_ok(&sync, store.as_ref()).await;
    assert_eq!(report.counts.suppressed, 1, "{report:?}");
    let ids: BTreeSet<String> = si.records("users").into_iter().map(|r| r.id).collect();
    assert!(!ids.contains("u-00003") && ids.contains("u-00004"), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_during_deletes_loses_nothing_and_the_next_run_finishes_them() {
    let s = Setup::new(30, NO_GUARDS).await;
    s.run(AllowGuards::None).await;
    let leaving: Vec<String> = (1..=20).map(|i| format!("p{i}@example.com")).collect();
    s.wh.exec(
        "DELETE FROM {s}.people WHERE email <> ALL (ARRAY[{list}])"
            .replace(
                "{list}",
                &(21..=30).map(|i| format!("'p{i}@example.com'")).collect::<Vec<_>>().join(", "),
            )
            .as_str(),
    )
    .await;
    s.si.set_latency(std::time::Duration::from_millis(150));
    let url = database_url();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"))
        .current_dir(s.ws.path())
        .args(["--state", &s.ws.state_url(), "sync", "m.yml"])
        .env("WAREHOUSE_URL", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ebb starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.held().len() > 27 {
        assert!(std::time::Instant::now() < deadline, "the run never deleted");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(s.held().len() > 10, "killed mid-run, with deletes left to do");
    s.si.set_latency(std::time::Duration::ZERO);
    let after = s.run(AllowGuards::None).await;
    assert_eq!(after.status, RunStatus::Completed, "{after:?}");
    let staying: BTreeSet<String> = (21..=30).map(|i| format!("p{i}@example.com")).collect();
    assert_eq!(s.held(), staying, "every record that left the source is gone from the destination");
    assert_eq!(s.in_state().await, staying, "and from state");
    let suppressed: BTreeSet<String> = s
        .store
        .suppressions("mirrored")
        .await
        .expect("list")
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(suppressed, leaving.into_iter().collect(), "each acknowledged delete is suppressed");
    // A delete acknowledged but not committed when the process died is sent again and answered
    // 404: at most the requests in flight and the last commit window's.
    let again = s.si.stats().by_status.get(&404).copied().unwrap_or(0);
    assert!(again <= 8, "{again} deletes sent twice");
}
