//! One contract for every StateStore backend: SQLite in memory and on disk, and
//! PostgreSQL (at DATABASE_URL) in a schema of its own per test.

use crate::common;

use crate::common::{lock_holder_pid, TempSchema};
use ebb::hash::id_key;
use ebb::source::ColumnType;
use ebb::state::{
    self, Commit, IndexDelta, IndexEntry, RejectionStage, RunCounts, RunLock, RunOrigin, RunStatus, Sent, StateStore, StoredRejection,
    SuppressReason, MAX_STORED_REJECTIONS,
};

async fn locked(store: &dyn StateStore, sync: &str) -> RunLock {
    store.try_lock(sync).await.expect("lock").expect("the sync is free")
}

/// A change is an upsert or a delete; a commit records the destination it was acknowledged by,
/// and one that replaces the state forgets every record first. The rejections' insertion
/// order survives the multi-row inserts.
async fn changes_contract(store: &dyn StateStore) {
    let lock = locked(store, "c").await;
    let upserts = [("a".to_string(), 1), ("b".to_string(), 2), ("c".to_string(), 3)];
    store
        .commit(&lock, &Commit::upserts(&upserts, "enterpret users at https://one"))
        .await
        .expect("commit");
    let loaded = store.load("c").await.expect("load");
    assert_eq!(loaded.destination.as_deref(), Some("enterpret users at https://one"));
    assert!(!loaded.replace);
    let deleted = ["b".to_string(), "never-there".to_string()];
    let changes = Commit {
        upserted: &[("d".to_string(), 4)],
        deleted: &deleted,
        destination: "enterpret users at https://one",
        replace: false,
        suppress_deleted: Some((SuppressReason::Mirror, Some(7))),
        sent: None,
    };
    assert_eq!(store.commit(&lock, &changes).await.expect("commit deletes"), 2);
    let suppressed = store.suppressions("c").await.expect("suppressions");
    let listed: Vec<(&str, SuppressReason, Option<i64>)> = suppressed.iter().map(|s| (s.id.as_str(), s.reason, s.run)).collect();
    assert_eq!(
        listed,
        [
            ("b", SuppressReason::Mirror, Some(7)),
            ("never-there", SuppressReason::Mirror, Some(7))
        ],
        "deleted ids are suppressed in the commit"
    );
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store
            .suppress("c", &ids(&["b", "m1", "m2"]), SuppressReason::Manual, None)
            .await
            .expect("suppress"),
        2,
        "b kept its first reason"
    );
    assert_eq!(store.unsuppress("c", &ids(&["m1", "nope"])).await.expect("unsuppress"), 1);
    let after: Vec<(String, SuppressReason)> = store
        .suppressions("c")
        .await
        .expect("list")
        .into_iter()
        .map(|s| (s.id, s.reason))
        .collect();
    assert_eq!(
        after,
        [
            ("b".to_string(), SuppressReason::Mirror),
            ("m2".to_string(), SuppressReason::Manual),
            ("never-there".to_string(), SuppressReason::Mirror)
        ]
    );
    assert_eq!(store.suppressions("other").await.expect("list"), [], "per sync");
    let ids = |records: Vec<(String, u128)>| records.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(ids(store.records("c").await.expect("records")), ["a", "c", "d"]);
    let only_z = [("z".to_string(), 9)];
    let replacing = Commit {
        replace: true,
        ..Commit::upserts(&only_z, "enterpret users at https://two")
    };
    store.commit(&lock, &replacing).await.expect("replace");
    assert_eq!(
        ids(store.records("c").await.expect("records")),
        ["z"],
        "the other destination's records are gone"
    );
    let loaded = store.load("c").await.expect("load");
    assert_eq!(loaded.destination.as_deref(), Some("enterpret users at https://two"));
    assert_eq!(loaded.index.len(), 1);
    lock.release().await;

    let run = store.begin_run("c", &ebb::state::RunStart::cli(false)).await.expect("begin");
    let rejections: Vec<StoredRejection> = (0..400)
        .map(|i| StoredRejection {
            stage: if i % 2 == 0 {
                RejectionStage::Mapping
            } else {
                RejectionStage::Destination
            },
            record_id: (i % 3 != 0).then(|| format!("r{i}")),
            position: format!("row {i}"),
            reason: format!("reason {i}"),
        })
        .collect();
    store.add_rejections(run, "c", &rejections).await.expect("rejections");
    assert_eq!(store.rejections(run, 1000).await.expect("read"), rejections, "as added, in order");
}

async fn contract(store: &dyn StateStore) {
    let fresh = store.load("s").await.expect("load");
    assert!(fresh.index.is_empty());
    assert_eq!(fresh.generation, Some(0), "a sync that never ran is at commit 0");

    let held = store.try_lock("s").await.expect("lock").expect("a free sync can be locked");
    assert!(store.try_lock("s").await.expect("lock").is_none(), "a held lock is refused");
    assert!(store.try_lock("other").await.expect("lock").is_some(), "locks are per sync");
    let first_fence = held.fence();
    assert!(first_fence > 0, "every hold has a fencing token");
    drop(held);
    let again = store.try_lock("s").await.expect("lock");
    assert!(again.is_some(), "dropping the guard releases the lock");
    assert!(
        again.as_ref().is_some_and(|l| l.fence() > first_fence),
        "each hold's fencing token is greater than the last one's"
    );
    drop(again);

    // Record state is written through the sync's lock: the lock names the sync.
    let s = locked(store, "s").await;
    let other = locked(store, "other").await;
    assert_eq!(
        store
            .commit(&s, &Commit::upserts(&[("a".into(), 1), ("b".into(), 2)], "test"))
            .await
            .expect("commit"),
        1
    );
    assert_eq!(
        store
            .commit(&other, &Commit::upserts(&[("a".into(), 9)], "test"))
            .await
            .expect("commit other"),
        1
    );
    other.release().await;
    let generation = store
        .commit(&s, &Commit::upserts(&[("b".into(), 3), ("c".into(), u128::MAX)], "test"))
        .await
        .expect("upsert");
    assert_eq!(generation, 2, "every commit advances the sync's counter by one");
    assert_eq!(
        store.records("s").await.expect("records"),
        vec![("a".to_string(), 1), ("b".to_string(), 3), ("c".to_string(), u128::MAX)]
    );
    let loaded = store.load("s").await.expect("load");
    assert!(!loaded.cached, "no index was saved yet, so it is rebuilt from the records");
    assert_eq!(loaded.generation, Some(2));
    assert_eq!(loaded.index.len(), 3);
    assert_eq!(
        (
            loaded.index.get(id_key("a")),
            loaded.index.get(id_key("b")),
            loaded.index.get(id_key("c"))
        ),
        (Some(1), Some(3), Some(u128::MAX))
    );

    // The cache: saved at the current counter it is used; any commit after it makes it stale.
    let cached = loaded.index.merged(vec![]);
    assert!(
        !store.save_index("s", 1, &cached).await.expect("save"),
        "a stale counter is refused"
    );
    assert!(store.save_index("s", 2, &cached).await.expect("save"));
    let from_cache = store.load("s").await.expect("load");
    assert!(from_cache.cached);
    assert_eq!(from_cache.index, loaded.index);
    // A cache that lies is believed while its counter is current: that is what the counter is for.
    let wrong = loaded.index.merged(vec![IndexEntry {
        key: id_key("a"),
        hash: 77,
    }]);
    assert!(store.save_index("s", 2, &wrong).await.expect("save"));
    assert_eq!(store.load("s").await.expect("load").index.get(id_key("a")), Some(77));
    assert_eq!(
        store
            .commit(&s, &Commit::upserts(&[("d".into(), 4)], "test"))
            .await
            .expect("commit"),
        3
    );
    s.release().await;
    let after = store.load("s").await.expect("load");
    assert!(!after.cached, "a commit the cache does not include makes it stale");
    assert_eq!(after.index.get(id_key("a")), Some(1), "rebuilt from the records table");
    assert_eq!(after.index.len(), 4);

    let schema = vec![
        ("age".to_string(), ColumnType::Int),
        ("tags".to_string(), ColumnType::List(Box::new(ColumnType::String))),
    ];
    store.save_schema("s", &schema).await.expect("schema");
    assert_eq!(store.load("s").await.expect("load").schema, Some(schema));

    let run = store.begin_run("s", &ebb::state::RunStart::cli(false)).await.expect("begin");
    let counts = RunCounts {
        source: 10,
        invalid: 1,
        new: 3,
        changed: 2,
        unchanged: 4,
        gone: 1,
        sent: 4,
        deleted: 2,
        suppressed: 3,
        rejected: 1,
        failed: 0,
        changed_without_cursor: Some(2),
        narrowed: true,
        left: Some(7),
        eta_secs: Some(42),
    };
    let many: Vec<StoredRejection> = (0..MAX_STORED_REJECTIONS + 50)
        .map(|i| StoredRejection {
            stage: RejectionStage::Mapping,
            record_id: Some(format!("r{i}")),
            position: format!("f row {i}"),
            reason: "id is null".into(),
        })
        .collect();
    store.add_rejections(run, "s", &many).await.expect("rejections");
    store
        .add_rejections(run, "s", &many[..5])
        .await
        .expect("more rejections are dropped past the cap");
    store.finish_run(run, RunStatus::Completed, &counts, None).await.expect("finish");
    let failed = store.begin_run("s", &ebb::state::RunStart::cli(true)).await.expect("begin 2");
    store
        .finish_run(failed, RunStatus::Failed, &RunCounts::default(), Some("destination: HTTP 401"))
        .await
        .expect("finish 2");

    let runs = store.runs(Some("s"), 10).await.expect("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].id, runs[0].status, runs[0].full_resync), (failed, RunStatus::Failed, true));
    assert_eq!(runs[0].error.as_deref(), Some("destination: HTTP 401"));
    assert_eq!((runs[1].status, &runs[1].counts), (RunStatus::Completed, &counts));
    assert!(runs[1].ended_at.is_some());
    assert_eq!(store.rejections(run, 100).await.expect("rejections").len(), 100);
    assert_eq!(
        store.rejections(run, 100_000).await.expect("rejections").len(),
        MAX_STORED_REJECTIONS
    );
    assert_eq!(store.syncs().await.expect("syncs"), vec!["other".to_string(), "s".to_string()]);

    assert!(store.save_index("s", 3, &after.index).await.expect("save"));
    assert_eq!(store.reset("s").await.expect("reset"), 4);
    let after = store.load("s").await.expect("load");
    assert!(
        after.index.is_empty() && after.schema.is_none() && !after.cached,
        "reset drops the cache too"
    );
    assert_eq!(
        store.load("other").await.expect("load").index.len(),
        1,
        "reset touches one sync only"
    );
    assert_eq!(store.runs(Some("s"), 10).await.expect("runs").len(), 2, "history survives a reset");
    changes_contract(store).await;
}

/// What the worker relies on: slot claims, orphaned runs, retention, ping.
async fn worker_contract(store: &dyn StateStore) {
    store.ping().await.expect("ping");
    let (w, w2) = (locked(store, "w").await, locked(store, "w2").await);
    assert!(store.claim_slot(&w, 100, "a:1").await.expect("claim"), "a fresh slot is claimed");
    assert!(
        !store.claim_slot(&w, 100, "b:2").await.expect("claim"),
        "a claimed slot is not claimed twice"
    );
    assert!(!store.claim_slot(&w, 40, "b:2").await.expect("claim"), "nor an earlier one");
    assert!(store.claim_slot(&w2, 100, "b:2").await.expect("claim"), "slots are per sync");
    assert!(store.claim_slot(&w, 160, "b:2").await.expect("claim"), "a later slot is claimed");
    w.release().await;
    w2.release().await;

    let start = |scheduled_for| state::RunStart {
        full: false,
        origin: RunOrigin::Schedule,
        scheduled_for,
        worker: Some("a:1".into()),
    };
    let orphan = store.begin_run("w", &start(Some(100))).await.expect("begin");
    let next = store.begin_run("w", &start(Some(160))).await.expect("begin");
    let runs = store.runs(Some("w"), 10).await.expect("runs");
    assert_eq!(
        (runs[0].id, runs[0].status, runs[0].scheduled_for),
        (next, RunStatus::Running, Some(160))
    );
    assert_eq!((runs[0].origin, runs[0].worker.as_deref()), (RunOrigin::Schedule, Some("a:1")));
    assert_eq!(
        (runs[1].id, runs[1].status),
        (orphan, RunStatus::Interrupted),
        "a run left `running` by a dead process is closed by the next run, which holds the lock"
    );
    assert!(runs[1].error.as_deref().unwrap_or("").contains("stopped"), "{:?}", runs[1].error);
    store
        .finish_run(next, RunStatus::Completed, &RunCounts::default(), None)
        .await
        .expect("finish");
    // One latest run per sync that has runs, in one query: `w`'s newest, and `s`'s from `contract`.
    let latest = store.latest_runs().await.expect("latest runs");
    let w_latest: Vec<i64> = latest.iter().filter(|r| r.sync == "w").map(|r| r.id).collect();
    assert_eq!(w_latest, vec![next]);
    let s_latest = store.runs(Some("s"), 1).await.expect("runs");
    assert_eq!(
        latest.iter().filter(|r| r.sync == "s").map(|r| r.id).collect::<Vec<_>>(),
        s_latest.iter().map(|r| r.id).collect::<Vec<_>>()
    );
    let mut names: Vec<&str> = latest.iter().map(|r| r.sync.as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), latest.len(), "one run a sync");
    let rejection = StoredRejection {
        stage: RejectionStage::Mapping,
        record_id: None,
        position: "row 1".into(),
        reason: "id is null".into(),
    };
    store
        .add_rejections(orphan, "w", std::slice::from_ref(&rejection))
        .await
        .expect("rejection");
    store.add_rejections(next, "w", &[rejection]).await.expect("rejection");

    let pruned = store.prune(0).await.expect("prune");
    assert_eq!(pruned, state::Pruned::default(), "nothing started before the epoch");
    let pruned = store.prune(i64::MAX).await.expect("prune");
    assert_eq!(
        pruned.runs, 2,
        "every finished run but each sync's latest: w's orphan and s's first"
    );
    assert_eq!(pruned.rejections, 1 + MAX_STORED_REJECTIONS as u64);
    let left: Vec<i64> = store.runs(Some("w"), 10).await.expect("runs").iter().map(|r| r.id).collect();
    assert_eq!(left, vec![next], "the latest run of a sync is kept");
    assert_eq!(store.rejections(next, 10).await.expect("rejections").len(), 1);
    assert_eq!(store.runs(Some("s"), 10).await.expect("runs").len(), 1);
}

/// Each acknowledged upsert keeps its payload and the runs that sent it, newest first, up to
/// four; a commit without payloads (before they were kept) leaves none, and a delete forgets it.
async fn tracking_contract(store: &dyn StateStore) {
    let lock = locked(store, "t").await;
    let record = |age: i64| ebb::record::Record {
        id: "ada".into(),
        created_at: 1_600_000_000,
        attributes: vec![("Age".into(), ebb::record::AttrValue::N(vec![ebb::record::Number::Int(age)]))],
    };
    let plain = [("old".to_string(), 7)];
    store.commit(&lock, &Commit::upserts(&plain, "test")).await.expect("commit");
    for run in 1..=5 {
        let upserts = [("ada".to_string(), run as u128)];
        let payloads = [ebb::payload::encode(&record(40 + run))];
        let commit = Commit {
            sent: Some(Sent { run, payloads: &payloads }),
            ..Commit::upserts(&upserts, "test")
        };
        store.commit(&lock, &commit).await.expect("commit with payloads");
    }
    let ids = ["ada".to_string(), "old".to_string(), "never".to_string()];
    let tracked = store.tracked("t", &ids).await.expect("tracked");
    assert_eq!(tracked.len(), 2, "an id not in state is left out: {tracked:?}");
    assert_eq!(tracked[0].id, "ada");
    assert_eq!(tracked[0].runs, [5, 4, 3, 2], "the last four runs, newest first");
    let payload = tracked[0].payload.as_deref().expect("a payload");
    assert_eq!(ebb::payload::decode("ada", payload).expect("decodes"), record(45));
    assert!(tracked[0].synced_at > 1_700_000_000);
    assert_eq!((tracked[1].runs.is_empty(), tracked[1].payload.is_none()), (true, true));
    let gone = ["ada".to_string()];
    let delete = Commit {
        deleted: &gone,
        ..Commit::upserts(&[], "test")
    };
    store.commit(&lock, &delete).await.expect("delete");
    assert!(store.tracked("t", &gone).await.expect("tracked").is_empty());
}

fn entry(id: &str, hash: u128) -> IndexEntry {
    IndexEntry { key: id_key(id), hash }
}

/// The cached index grows by a delta per run: the whole index and its chain load as the records
/// table has them; a delta that does not start where the cache ends, or a commit it does not
/// cover, is refused or ignored; writing the whole index again clears the chain.
async fn cache_contract(store: &dyn StateStore) {
    let s = locked(store, "c").await;
    let g1 = store
        .commit(&s, &Commit::upserts(&[("a".into(), 1), ("b".into(), 1), ("c".into(), 1)], "test"))
        .await
        .expect("commit");
    let whole = store.load("c").await.expect("load").index;
    assert!(store.save_index("c", g1, &whole).await.expect("save"));
    let g2 = store
        .commit(&s, &Commit::upserts(&[("b".into(), 2), ("d".into(), 2)], "test"))
        .await
        .expect("commit");
    let first = IndexDelta::new(vec![entry("b", 2), entry("d", 2)], vec![]);
    assert!(
        !store.save_index_delta("c", (g1 - 1, g2), &first).await.expect("save"),
        "not where the cache ends"
    );
    assert!(store.save_index_delta("c", (g1, g2), &first).await.expect("save"));
    assert!(
        !store.save_index_delta("c", (g1, g2), &first).await.expect("save"),
        "the chain already ends at g2"
    );
    let (upserted, gone) = ([("e".to_string(), 3)], ["a".to_string()]);
    let mut deleted = Commit::upserts(&upserted, "test");
    deleted.deleted = &gone;
    let g3 = store.commit(&s, &deleted).await.expect("commit");
    let second = IndexDelta::new(vec![entry("e", 3)], vec![id_key("a")]);
    assert!(store.save_index_delta("c", (g2, g3), &second).await.expect("save"));
    let loaded = store.load("c").await.expect("load");
    assert!(loaded.cached, "the whole index and two deltas reach the counter");
    assert_eq!((loaded.deltas.count, loaded.deltas.entries), (2, 4));
    let table = state::RecordIndex::from_records(store.records("c").await.expect("records"));
    assert_eq!(loaded.index, table, "the chain loads as the table has it");

    // A commit no delta covers: the chain stops short, so the index is rebuilt.
    let g4 = store
        .commit(&s, &Commit::upserts(&[("f".into(), 4)], "test"))
        .await
        .expect("commit");
    let stale = store.load("c").await.expect("load");
    assert!(!stale.cached);
    assert_eq!(
        stale.index,
        state::RecordIndex::from_records(store.records("c").await.expect("records"))
    );
    assert!(
        !store.save_index_delta("c", (g4, g4 + 1), &second).await.expect("save"),
        "a counter not yet reached"
    );
    // The whole index again: the chain is gone, and the index loads on its own.
    assert!(store.save_index("c", g4, &stale.index).await.expect("save"));
    let compacted = store.load("c").await.expect("load");
    assert!(compacted.cached);
    assert_eq!((compacted.deltas.count, compacted.index), (0, stale.index));
    s.release().await;
    store.reset("c").await.expect("reset");
    assert!(
        !store.load("c").await.expect("load").cached,
        "reset forgets the cache and its deltas"
    );
}

#[tokio::test]
async fn sqlite_in_memory() {
    let store = state::open("sqlite::memory:", false).await.expect("open");
    cache_contract(store.as_ref()).await;
    contract(store.as_ref()).await;
    worker_contract(store.as_ref()).await;
    tracking_contract(store.as_ref()).await;
}

#[tokio::test]
async fn sqlite_on_disk_reopens_with_its_state() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("nested/state.db").display());
    contract(state::open(&url, false).await.expect("open").as_ref()).await;
    // Migrations are idempotent and the data is still there.
    let again = state::open(&url, false).await.expect("reopen");
    assert_eq!(again.load("other").await.expect("load").index.len(), 1);
}

#[tokio::test]
async fn sqlite_state_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("state-folder/state.db");
    let store = state::open(&format!("sqlite://{}", db.display()), false).await.expect("open");
    contract(store.as_ref()).await;
    assert_eq!(mode(&dir.path().join("state-folder")), 0o700, "the folder ebb made");
    for file in ["state.db", "state.db-wal", "state.db-shm"] {
        assert_eq!(mode(&dir.path().join("state-folder").join(file)), 0o600, "{file}");
    }
    drop(store);
    // A database an older ebb left readable by others is narrowed when it is opened.
    let old = dir.path().join("old.db");
    drop(state::open(&format!("sqlite://{}", old.display()), false).await.expect("open"));
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let store = state::open(&format!("sqlite://{}", old.display()), false).await.expect("reopen");
    assert_eq!(mode(&old), 0o600);
    assert_eq!(mode(&dir.path().join("old.db-wal")), 0o600);
    drop(store);
}

#[tokio::test]
async fn read_only_open_creates_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("absent.db");
    let store = state::open(&format!("sqlite://{}", path.display()), true).await.expect("open");
    assert!(store.load("s").await.expect("load").index.is_empty());
    assert!(!path.exists());
}

#[tokio::test]
async fn unknown_backend_is_refused_without_leaking_a_password() {
    let err = state::open("mysql://ebb:hunter2@db/x", false)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("unsupported state URL") && !err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn postgres_in_its_own_schema() {
    let schema = TempSchema::new("ebb_state");
    let store = state::open(&schema.state_url(), false)
        .await
        .expect("PostgreSQL state store (is PostgreSQL running at DATABASE_URL?)");
    cache_contract(store.as_ref()).await;
    contract(store.as_ref()).await;
    worker_contract(store.as_ref()).await;
    tracking_contract(store.as_ref()).await;
    drop(store);
    // Migrations are idempotent; the data is still there.
    let again = state::open(&schema.state_url(), false).await.expect("reopen");
    assert_eq!(again.load("other").await.expect("load").index.len(), 1);
}

#[tokio::test]
async fn postgres_errors_name_the_host_but_never_the_password() {
    let err = state::open("postgres://ebb:hunter2@127.0.0.1:1/x?schema=ebb", false)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("127.0.0.1") && !err.contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_openers_of_a_new_sqlite_file_all_succeed() {
    // Runs of several syncs start together on a fresh machine: each opens the not-yet-created state file.
    for _ in 0..20 {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("state.db").display());
        let openers: Vec<_> = (0..6)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move {
                    let store = state::open(&url, false).await?;
                    let lock = store.try_lock(&format!("s{i}")).await?.expect("free");
                    store.commit(&lock, &Commit::upserts(&[("a".into(), 1)], "test")).await
                })
            })
            .collect();
        for opener in openers {
            opener.await.expect("join").expect("open and commit");
        }
        let store = state::open(&url, false).await.expect("open");
        assert_eq!(store.syncs().await.expect("syncs").len(), 6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_lost_lock_commits_nothing_claims_nothing_and_keeps_others_out_until_it_ends() {
    let schema = TempSchema::new("ebb_lost");
    let store = state::open(&schema.state_url(), false).await.expect("open");
    let other_host = state::open(&schema.state_url(), false).await.expect("open");
    let admin = sqlx::PgPool::connect(&common::database_url()).await.expect("admin");
    let lock = locked(store.as_ref(), "s").await;
    store
        .commit(&lock, &Commit::upserts(&[("a".into(), 1)], "test"))
        .await
        .expect("a held lock commits");
    assert!(store.claim_slot(&lock, 100, "a:1").await.expect("claim"));

    let pid = lock_holder_pid(&admin, &schema.name, "s").await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&admin)
        .await
        .expect("terminate");
    let err = store
        .commit(&lock, &Commit::upserts(&[("b".into(), 2)], "test"))
        .await
        .expect_err("a lost lock commits nothing");
    assert!(
        err.to_string()
            .starts_with("lost the run lock (state connection dropped) on state store postgres://"),
        "{err}"
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), lock.lost())
        .await
        .expect("the loss is signalled to the run");
    let err = store.claim_slot(&lock, 160, "a:1").await.expect_err("nor claims a slot");
    assert!(err.to_string().contains("lost the run lock"), "{err}");
    assert_eq!(store.records("s").await.expect("records"), vec![("a".to_string(), 1)]);

    assert!(
        other_host.try_lock("s").await.expect("try").is_none(),
        "the advisory lock is free, but the lost holder may still be sending: its lease keeps others out"
    );
    lock.release().await;
    let next = other_host
        .try_lock("s")
        .await
        .expect("try")
        .expect("a released lease lets the next run in");
    assert!(
        other_host.claim_slot(&next, 160, "b:2").await.expect("claim"),
        "the slot the lost holder could not claim is the next holder's"
    );
    next.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_lease_from_another_machine_holds_the_sync_until_it_runs_out() {
    let schema = TempSchema::new("ebb_lease");
    let store = state::open(&schema.state_url(), false).await.expect("open");
    let admin = sqlx::PgPool::connect(&common::database_url()).await.expect("admin");
    locked(store.as_ref(), "s").await.release().await;
    let lease = async |sql: &str| sqlx::query(&sql.replace("{s}", &schema.name)).execute(&admin).await.map(|_| ());
    // As a holder on another machine whose session dropped would leave it: unreleased, renewed just now.
    lease("UPDATE \"{s}\".run_leases SET token = 'elsewhere', holder = 'other-host:42', process = 'linux/other-boot/1/42/7', heartbeat_at = now(), released_at = NULL")
        .await
        .expect("lease");
    assert!(
        store.try_lock("s").await.expect("try").is_none(),
        "a fresh lease of another machine holds"
    );
    lease("UPDATE \"{s}\".run_leases SET heartbeat_at = now() - interval '14 seconds'")
        .await
        .expect("lease");
    assert!(store.try_lock("s").await.expect("try").is_none(), "until it has run out");
    lease("UPDATE \"{s}\".run_leases SET heartbeat_at = now() - interval '16 seconds'")
        .await
        .expect("lease");
    let lock = store.try_lock("s").await.expect("try").expect("a lease that ran out is taken over");
    let holder: String = sqlx::query_scalar(&format!("SELECT holder FROM \"{}\".run_leases", schema.name))
        .fetch_one(&admin)
        .await
        .expect("holder");
    assert_eq!(holder, ebb::state::holder::me().label, "the lease names its new holder");
    lock.release().await;

    // A holder on this machine that has died is known dead at once; `--wait` takes over.
    lease("UPDATE \"{s}\".run_leases SET token = 'dead', process = 'linux/other-boot/1/42/7', heartbeat_at = now(), released_at = NULL")
        .await
        .expect("lease");
    let me = ebb::state::holder::me().process.clone();
    if let Some((machine, _)) = me.rsplit_once('/').and_then(|(head, _)| head.rsplit_once('/')) {
        lease(&format!("UPDATE \"{{s}}\".run_leases SET process = '{machine}/999999999/1'"))
            .await
            .expect("lease");
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), store.lock("s"))
            .await
            .expect("a dead holder is not waited for")
            .expect("lock");
        waited.release().await;
    }
}

/// Damage no version of ebb writes, such as a hand edit or a newer version's values: each is an
/// error that says what is wrong, never a silent guess (a schema read as none would turn the
/// drift check off; an unknown status read as `running` would look like a run in progress).
#[tokio::test]
async fn damaged_state_is_an_error_that_names_the_damage() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("state.db");
    let url = format!("sqlite://{}", path.display());
    let store = state::open(&url, false).await.expect("open");
    store
        .save_schema("s", &[("age".to_string(), ColumnType::Int)])
        .await
        .expect("schema");
    let run = store.begin_run("s", &ebb::state::RunStart::cli(false)).await.expect("begin");
    store
        .finish_run(run, RunStatus::Completed, &RunCounts::default(), None)
        .await
        .expect("finish");
    assert_eq!(store.runs(Some("s"), 5).await.expect("runs").len(), 1);

    let raw = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display())).await.expect("raw");
    sqlx::query("UPDATE syncs SET schema_json = '{not json' WHERE name = 's'")
        .execute(&raw)
        .await
        .expect("damage the schema");
    sqlx::query("UPDATE runs SET status = 'paused' WHERE id = ?")
        .bind(run)
        .execute(&raw)
        .await
        .expect("damage the status");
    raw.close().await;

    let err = store.load("s").await.expect_err("a damaged schema is refused").to_string();
    assert!(
        err.contains("stored schema of sync `s` cannot be read") && err.contains("ebb reset"),
        "{err}"
    );
    let err = store
        .runs(Some("s"), 5)
        .await
        .expect_err("an unknown status is refused")
        .to_string();
    assert!(err.contains(&format!("run {run} has an unknown status `paused`")), "{err}");
}
