//! The diff's correctness at scale: the benchmark generator's 100k-row
//! snapshots, synced for real into the stand-in, must give exactly the
//! generator's truth file, count by count and record by record.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{generate, load_sync, run_ok, stand_in, Workspace};
use ebb::column::ColumnType;
use ebb::source::{Source, SourceBatch, SourceError, SourceSchema};
use ebb::state::{RunStatus, StateStore};
use ebb::sync::{self, RunOptions, RunReport, SyncJob};
use futures::stream::BoxStream;

const ROWS: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_row_diff_matches_the_generators_truth() {
    let ws = Workspace::new();
    let (data, truth) = generate(&ws, ROWS);
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

/// The real source, counting how often it is read through.
struct Counted {
    inner: Arc<dyn Source>,
    streams: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Source for Counted {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn schema(&self) -> Result<SourceSchema, SourceError> {
        self.inner.schema().await
    }

    fn stream(&self, expected: Arc<Vec<(String, ColumnType)>>) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        self.streams.fetch_add(1, Ordering::SeqCst);
        self.inner.stream(expected)
    }
}

/// One run of the bench mapping on `snapshot`, keeping at most `keep_budget` bytes of records
/// in pass 1; returns the report and how many times the source was read.
async fn counted_run(snapshot: &Path, url: &str, store: &dyn StateStore, keep_budget: usize) -> (RunReport, usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/bench/users.yml");
    let snapshot = snapshot.display().to_string();
    let SyncJob {
        mapping,
        source,
        baseline,
        destination,
    } = load_sync(&path, &[("SNAPSHOT", &snapshot), ("STANDIN_URL", url)]);
    let streams = Arc::new(AtomicUsize::new(0));
    let sync = SyncJob {
        mapping,
        source: Arc::new(Counted {
            inner: source,
            streams: streams.clone(),
        }),
        baseline,
        destination,
    };
    let options = RunOptions {
        keep_budget,
        ..RunOptions::default()
    };
    let report = sync::run(&sync, store, &options).await.expect("run is recorded");
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    (report, streams.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_pass_run_sends_exactly_what_the_two_pass_run_sent() {
    const ROWS: u64 = 20_000;
    let ws = Workspace::new();
    let (data, truth) = generate(&ws, ROWS);
    let t = |k: &str| truth[k].as_u64().unwrap_or_else(|| panic!("truth has {k}"));
    let mut runs = Vec::new();
    for (name, budget) in [("single", sync::KEEP_BUDGET_BYTES), ("two", 0)] {
        let si = stand_in().await;
        let store = ebb::state::open(&format!("sqlite://{}", ws.path().join(format!("{name}.db")).display()), false)
            .await
            .expect("state opens");
        let mut passes = Vec::new();
        let mut reports = Vec::new();
        for snapshot in ["a.parquet", "b.parquet"] {
            let (report, streams) = counted_run(&data.join(snapshot), &si.url(), store.as_ref(), budget).await;
            passes.push(streams);
            reports.push(report.counts);
        }
        let mut bodies: Vec<String> = si.requests().into_iter().map(|r| r.body_digest).collect();
        bodies.sort_unstable();
        let mut held: Vec<(String, String, u64)> = si
            .records("users")
            .into_iter()
            .map(|r| (r.id, r.attributes.to_string(), r.received_count))
            .collect();
        held.sort_unstable();
        runs.push((passes, reports, bodies, held));
    }
    let (single, two) = (&runs[0], &runs[1]);
    assert_eq!(single.0, vec![1, 1], "with the budget, each run reads the source once");
    assert_eq!(
        two.0,
        vec![2, 3],
        "without it, pass 2 reads the source again: once for the first sync's new records, then once for \
         the change run's stale copies and once more for its new records, which are sent after them"
    );
    let b = &single.1[1];
    assert_eq!(
        (b.new, b.changed, b.unchanged, b.gone, b.sent),
        (t("new"), t("changed"), t("unchanged"), t("deleted"), t("new") + t("changed")),
        "the change run's counts are the generator's truth"
    );
    assert_eq!(format!("{:?}", single.1), format!("{:?}", two.1), "the same counts, run by run");
    assert_eq!(
        single.2.len() as u64,
        ROWS.div_ceil(15) + (t("new") + t("changed")).div_ceil(15),
        "requests of 15 records"
    );
    assert!(single.2 == two.2, "the same request bodies");
    assert!(single.3 == two.3, "the same records at the destination");
}
