//! A run never acts on part of its source. Each reader is made to fail part-way with a real
//! broken input (Parquet files corrupt after a good one, on disk and in a bucket; a PostgreSQL
//! query that errors after its first batch, in process and in the warehouse-side diff; a broken
//! company source and suppression list; `ebb init`'s sample), and each time: the run fails and
//! names what broke, nothing is deleted, suppressed or sent, state is as it was, and the next
//! good run sends exactly what changed.

use crate::common::s3;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::*;
use ebb::standin::StandIn;
use ebb::state::{RunStatus, StateStore};
use ebb::sync::{RunReport, SyncJob};

/// A mirror mapping of the fixture users as profiles. `guards: {}` takes mirror's default
/// guard away, so that only a whole snapshot stands between a broken read and a delete.
fn people_yaml(url: &str, source: &str, extra: &str) -> String {
    format!(
        r#"name: people
source:
{source}destination:
  profiles:
    url: {url}
    token: ${{T:-local-profiles-token}}
    requests_per_minute: 60000
    retry_budget_secs: 2
mode: mirror
guards: {{}}
email: email
full_name: full_name
properties:
  age: {{ column: age, type: number }}
{extra}"#
    )
}

/// What a failed run must have left alone.
struct Before {
    requests: u64,
    records: Vec<(String, u128)>,
}

async fn before(si: &StandIn, store: &dyn StateStore) -> Before {
    Before {
        requests: si.stats().requests,
        records: records(store).await,
    }
}

async fn records(store: &dyn StateStore) -> Vec<(String, u128)> {
    let mut records = store.records("people").await.expect("records");
    records.sort();
    records
}

/// The run failed, named `words` in its error, and changed nothing anywhere.
async fn failed_and_changed_nothing(report: &RunReport, words: &[&str], si: &StandIn, store: &dyn StateStore, was: &Before) {
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    let error = report.error.clone().unwrap_or_default();
    for word in words {
        assert!(error.contains(word), "the error names {word:?}: {error}");
    }
    assert_eq!((report.counts.deleted, report.counts.sent), (0, 0), "{report:?}");
    assert_eq!(si.stats().requests, was.requests, "nothing was sent: no upsert, no delete");
    assert!(
        store.suppressions("people").await.expect("suppressions").is_empty(),
        "nothing suppressed"
    );
    assert_eq!(records(store).await, was.records, "state is as it was");
}

/// The users of `tests/fixtures/users`, copied into `dir` as one snapshot.
fn fill(dir: &Path, files: &[PathBuf]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("snapshot folder");
    for (i, file) in files.iter().enumerate() {
        std::fs::copy(file, dir.join(format!("part-{i}.parquet"))).expect("copy");
    }
}

fn broken(case: &str) -> Vec<PathBuf> {
    vec![
        fixture(&format!("corrupt/{case}/part-0.parquet")),
        fixture(&format!("corrupt/{case}/part-1.parquet")),
    ]
}

/// `decoder_panic.parquet` is one of the corrupt files' second part as `cargo fuzz` (fuzz/)
/// rewrote it: pyarrow refuses it, and the parquet crate panics decoding the levels of its
/// `age`, now text ("offset + len out of bounds", in arrow-buffer). ebb reports that as the
/// internal error it is. It follows the users with `age` as text.
fn panicking() -> Vec<PathBuf> {
    vec![fixture("users_age_as_text.parquet"), fixture("corrupt/decoder_panic.parquet")]
}

/// [`people_yaml`] with no extra keys.
fn people(url: &str, source: &str) -> String {
    people_yaml(url, source, "")
}

/// [`people_yaml`], with `age` read as the text it is in the files [`panicking`] gives.
fn people_with_text_age(url: &str, source: &str) -> String {
    people(url, source).replace("age: { column: age, type: number }", "age: { column: age, type: string }")
}

/// Where a test's snapshot lives: a folder on disk, or a bucket of the S3-compatible server.
enum Place {
    Folder(PathBuf),
    Bucket(s3::S3Server),
}

/// A people mapping over a snapshot whose files a test swaps between runs.
struct Snapshot {
    place: Place,
    si: StandIn,
    store: Box<dyn StateStore>,
    path: PathBuf,
    env: Vec<(&'static str, String)>,
    ws: Workspace,
}

impl Snapshot {
    async fn new(in_bucket: bool, mapping: fn(&str, &str) -> String) -> Snapshot {
        let (si, ws) = (stand_in().await, Workspace::new());
        let store = ws.store().await;
        let (place, source, env) = match in_bucket {
            false => {
                let dir = ws.path().join("snapshot");
                let env = vec![("SNAPSHOT", dir.display().to_string())];
                (Place::Folder(dir), "  parquet: ${SNAPSHOT}\n", env)
            }
            true => {
                let server = s3::S3Server::start();
                let env = server.env();
                let source = "  parquet: s3://exports/people/\n  store:\n    region: us-east-1\n    endpoint: ${S3_ENDPOINT}\n    allow_http: true\n";
                (Place::Bucket(server), source, env)
            }
        };
        let path = ws.write("m.yml", &mapping(&si.url(), source));
        Snapshot {
            place,
            si,
            store,
            path,
            env,
            ws,
        }
    }

    /// Makes `files` the snapshot, as `part-0.parquet`, `part-1.parquet`, ….
    fn put(&self, files: &[PathBuf]) {
        match &self.place {
            Place::Folder(dir) => fill(dir, files),
            Place::Bucket(server) => {
                let _ = std::fs::remove_dir_all(server.bucket("exports").join("people"));
                for (i, file) in files.iter().enumerate() {
                    server.put("exports", &format!("people/part-{i}.parquet"), file);
                }
            }
        }
    }

    fn sync(&self) -> SyncJob {
        let pairs: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        load_sync(&self.path, &pairs)
    }

    /// A good first run over `files`, which sends all 40 people; what state then holds.
    async fn first(&self, files: &[PathBuf]) -> Before {
        self.put(files);
        assert_eq!(run_ok(&self.sync(), self.store.as_ref()).await.counts.sent, 40);
        before(&self.si, self.store.as_ref()).await
    }

    /// A run over `files` fails, names `words`, and changes nothing.
    async fn fails_on(&self, files: &[PathBuf], words: &[&str], was: &Before) {
        self.put(files);
        let report = run(&self.sync(), self.store.as_ref(), false).await;
        failed_and_changed_nothing(&report, words, &self.si, self.store.as_ref(), was).await;
    }
}

/// A good first run, a run over each case's broken snapshot, then a good run over the users
/// with three of them changed (two in mapped columns).
async fn broken_snapshots_change_nothing(in_bucket: bool, cases: &[(&str, &[&str])]) {
    let s = Snapshot::new(in_bucket, people).await;
    let was = s.first(&[fixture("users/pyarrow.parquet")]).await;
    for (case, words) in cases {
        s.fails_on(&broken(case), words, &was).await;
    }
    s.put(&[fixture("users_3_changed.parquet")]);
    let next = run_ok(&s.sync(), s.store.as_ref()).await;
    assert_eq!(
        (next.counts.changed, next.counts.sent, next.counts.deleted, next.counts.gone),
        (2, 2, 0, 0),
        "{next:?}"
    );
}

#[tokio::test]
async fn a_footer_with_a_negative_offset_fails_the_run_and_deletes_nothing() {
    let words: &[&str] = &["part-1.parquet", "its footer is corrupt", "bytes -4"];
    broken_snapshots_change_nothing(false, &[("negative_offset", words)]).await;
}

#[tokio::test]
async fn a_footer_that_claims_more_rows_than_were_read_fails_the_run() {
    let words: &[&str] = &["part-1.parquet", "10 rows were read, but its footer says it holds 11"];
    broken_snapshots_change_nothing(false, &[("short_footer", words)]).await;
}

#[tokio::test]
async fn a_broken_page_after_a_good_file_fails_the_run() {
    broken_snapshots_change_nothing(false, &[("bad_page", &["part-1.parquet"])]).await;
}

#[tokio::test]
async fn a_panic_in_the_decoder_part_way_fails_the_run_as_an_internal_error_naming_the_file() {
    let s = Snapshot::new(false, people_with_text_age).await;
    let was = s.first(&panicking()[..1]).await;
    let words = [
        "internal error in reading",
        "part-1.parquet: offset + len out of bounds (please report)",
    ];
    s.fails_on(&panicking(), &words, &was).await;
}

#[tokio::test]
async fn a_broken_link_in_the_snapshot_folder_fails_the_listing() {
    let s = Snapshot::new(false, people).await;
    let was = s.first(&[fixture("users/pyarrow.parquet")]).await;
    let link = s.ws.path().join("snapshot/part-1.parquet");
    s.put(&broken("bad_page")[..1]);
    std::os::unix::fs::symlink(s.ws.path().join("gone.parquet"), &link).expect("link");
    let report = run(&s.sync(), s.store.as_ref(), false).await;
    failed_and_changed_nothing(&report, &["cannot list", "part-1.parquet"], &s.si, s.store.as_ref(), &was).await;
}

#[tokio::test]
async fn the_cli_reports_a_panic_as_an_internal_error_and_prints_rusts_report_only_when_asked() {
    let (si, ws) = (stand_in().await, Workspace::new());
    let dir = ws.path().join("snapshot");
    ws.write("m.yml", &people_with_text_age(&si.url(), "  parquet: snapshot/\n"));
    fill(&dir, &panicking());
    let state = ws.state_url();
    let sync = |backtrace: &'static str| {
        let (dir, state) = (ws.path().to_path_buf(), state.clone());
        tokio::task::spawn_blocking(move || ebb(&dir, &["sync", "m.yml"], &[("EBB_STATE", &state), ("RUST_BACKTRACE", backtrace)]))
    };
    let out = sync("0").await.expect("ebb ran");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("people: failed"), "{stdout}");
    assert!(
        stdout.contains("internal error in reading") && stdout.contains("part-1.parquet") && stdout.contains("(please report)"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "no Rust panic text: {stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
    let asked = sync("1").await.expect("ebb ran");
    let (_, stderr) = text(&asked);
    assert_eq!(asked.status.code(), Some(1));
    assert!(
        stderr.contains("panicked at") && stderr.contains("offset + len out of bounds"),
        "{stderr}"
    );
    assert_eq!(si.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_object_after_a_good_one_fails_the_run_and_deletes_nothing() {
    let object = "s3://exports/people/part-1.parquet";
    broken_snapshots_change_nothing(
        true,
        &[
            ("negative_offset", &[object, "its footer is corrupt"]),
            ("short_footer", &[object, "its footer says it holds 11"]),
            ("bad_page", &[object]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_decoding_an_object_fails_the_run_as_an_internal_error_naming_the_object() {
    let s = Snapshot::new(true, people_with_text_age).await;
    let was = s.first(&panicking()[..1]).await;
    let words = ["internal error in reading s3://exports/people/part-1.parquet: offset + len out of bounds"];
    s.fails_on(&panicking(), &words, &was).await;
}

#[tokio::test]
async fn a_broken_suppression_list_fails_the_run_rather_than_send_who_it_lists() {
    let (si, ws) = (stand_in().await, Workspace::new());
    let store = ws.store().await;
    let users = fixture("users/pyarrow.parquet").display().to_string();
    let path = ws.write(
        "m.yml",
        &people_yaml(&si.url(), &format!("  parquet: {users}\n"), "suppress:\n  parquet: ${SUPPRESS}\n"),
    );
    let list = |s: &str| load_sync(&path, &[("SUPPRESS", s)]);
    let was = before(&si, store.as_ref()).await;
    let broken = fixture("corrupt/suppress").display().to_string();
    let report = run(&list(&broken), store.as_ref(), false).await;
    failed_and_changed_nothing(
        &report,
        &["corrupt/suppress/part-1.parquet", "its footer is corrupt"],
        &si,
        store.as_ref(),
        &was,
    )
    .await;
    let whole = fixture("corrupt/suppress_whole.parquet").display().to_string();
    let next = run_ok(&list(&whole), store.as_ref()).await;
    assert_eq!(
        (next.counts.sent, next.counts.suppressed),
        (0, 40),
        "every user is on the list: {next:?}"
    );
}

#[tokio::test]
async fn a_broken_company_source_fails_the_run() {
    let (si, ws) = (stand_in().await, Workspace::new());
    let store = ws.store().await;
    let people = fixture("profiles/people.parquet").display().to_string();
    let yaml = format!(
        "name: people\nsource:\n  parquet: {people}\ndestination:\n  profiles:\n    url: {}\n    token: ${{T:-local-profiles-token}}\n    requests_per_minute: 60000\nmode: mirror\nguards: {{}}\nemail: email\nfull_name: full_name\ncompany:\n  source: {{ parquet: \"${{COMPANIES}}\" }}\n  join: {{ column: account_id, key: id }}\n  properties:\n    size: {{ column: employees, type: number }}\n",
        si.url()
    );
    let path = ws.write("m.yml", &yaml);
    let sync = |companies: &str| load_sync(&path, &[("COMPANIES", companies)]);
    let good = fixture("profiles/companies.parquet").display().to_string();
    let first = run_ok(&sync(&good), store.as_ref()).await;
    assert!(first.counts.sent > 0, "{first:?}");
    let was = before(&si, store.as_ref()).await;
    let report = run(&sync(&fixture("corrupt/companies").display().to_string()), store.as_ref(), false).await;
    failed_and_changed_nothing(&report, &["corrupt/companies/part-1.parquet"], &si, store.as_ref(), &was).await;
    let changed = fixture("profiles/companies_changed.parquet").display().to_string();
    let next = run_ok(&sync(&changed), store.as_ref()).await;
    assert_eq!(
        (next.counts.changed, next.counts.deleted),
        (2, 0),
        "only acc-2's size changed, and two people work there: {next:?}"
    );
}

#[test]
fn init_fails_on_a_sample_that_breaks_part_way() {
    let ws = Workspace::new();
    let source = fixture("corrupt/bad_page").display().to_string();
    let out = ebb(ws.path(), &["init", "--parquet", &source, "--destination", "profiles"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("part-1.parquet"), "{stderr}");
    assert!(stdout.is_empty(), "no mapping from half a sample: {stdout}");
}

/// 8,200 people in PostgreSQL, whose `seats` is `n / boom`: setting one row's `boom` to 0
/// makes the query fail at that row, after its first batch of 8,192 was read.
struct Table {
    pg: PgSchema,
}

impl Table {
    async fn new() -> Table {
        let pg = PgSchema::new("ebb_partial").await;
        pg.exec(
            "CREATE TABLE {s}.people (n int, email text, name text, boom int DEFAULT 1);
             INSERT INTO {s}.people (n, email, name) SELECT i, 'p' || i || '@example.com', 'Person ' || i FROM generate_series(1, 8200) i",
        )
        .await;
        Table { pg }
    }

    fn mapping(&self, url: &str, extra_source: &str) -> String {
        let source = format!(
            "  postgres:\n    url: ${{WAREHOUSE_URL}}\n    query: \"select email, name as full_name, n / boom as age from {}.people\"\n{extra_source}",
            self.pg.name
        );
        people_yaml(url, &source, "")
    }
}

async fn a_query_failing_after_its_first_batch_changes_nothing(extra_source: &str) {
    let table = Table::new().await;
    let (si, ws) = (stand_in().await, Workspace::new());
    let store = ws.store().await;
    let path = ws.write("m.yml", &table.mapping(&si.url(), extra_source));
    let sync = || -> SyncJob { load_sync(&path, &[("WAREHOUSE_URL", &database_url())]) };
    assert_eq!(run_ok(&sync(), store.as_ref()).await.counts.sent, 8200);
    let was = before(&si, store.as_ref()).await;
    table.pg.exec("UPDATE {s}.people SET boom = 0 WHERE n = 8195").await;
    let report = run(&sync(), store.as_ref(), false).await;
    failed_and_changed_nothing(&report, &["query", "division by zero"], &si, store.as_ref(), &was).await;
    table
        .pg
        .exec("UPDATE {s}.people SET boom = 1; UPDATE {s}.people SET name = 'Renamed' WHERE n = 7")
        .await;
    let next = run_ok(&sync(), store.as_ref()).await;
    assert_eq!((next.counts.sent, next.counts.deleted), (1, 0), "{next:?}");
    let names: BTreeSet<String> = si.profiles().into_iter().filter(|p| p.name == "Renamed").map(|p| p.email).collect();
    assert_eq!(names, BTreeSet::from(["p7@example.com".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_query_failing_after_its_first_batch_fails_the_run_and_deletes_nothing() {
    a_query_failing_after_its_first_batch_changes_nothing("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warehouse_side_diff_failing_part_way_fails_the_run_and_deletes_nothing() {
    let state = TempSchema::new("ebb_partial_state");
    a_query_failing_after_its_first_batch_changes_nothing(&format!("    diff: warehouse\n    state_schema: {}\n", state.name)).await;
}

/// A good file whose last eight bytes claim a footer of `length` bytes.
fn with_footer_length(ws: &Workspace, length: u32) -> PathBuf {
    let mut bytes = std::fs::read(fixture("corrupt/negative_offset/part-0.parquet")).expect("fixture");
    let at = bytes.len() - 8;
    bytes[at..at + 4].copy_from_slice(&length.to_le_bytes());
    let path = ws.path().join(format!("footer-{length}.parquet"));
    std::fs::write(&path, bytes).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_whose_footer_claims_gigabytes_fails_the_run_without_fetching_them() {
    let s = Snapshot::new(true, people).await;
    let was = s.first(&[fixture("users/pyarrow.parquet")]).await;
    let object = "s3://exports/people/part-1.parquet";
    for length in [u32::MAX, 0x7fff_fff0, 1 << 20] {
        let files = [fixture("corrupt/negative_offset/part-0.parquet"), with_footer_length(&s.ws, length)];
        s.fails_on(&files, &[object], &was).await;
    }
}
