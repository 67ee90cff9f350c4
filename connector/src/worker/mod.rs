//! `ebb worker`: runs the syncs of a mappings folder on their schedules, as a
//! long-lived service.
//!
//! Each valid mapping gets a driver task. A driver sleeps until its sync's next
//! schedule slot or a trigger, then runs the sync, and only then looks at the clock
//! again, so one process never runs a sync twice at once; a slot or trigger that
//! comes up meanwhile leads to one run after, not one per slot.
//!
//! Across processes sharing a state store, a run first takes the sync's lock
//! (waiting while another worker runs it), then a permit of `--concurrency`, then,
//! for a scheduled run, claims the slot due now in the store. Only the first
//! claimer of a slot runs it, which makes each due slot run exactly once however
//! many workers there are, and coalesces slots missed during a long run.
//!
//! Shutdown: stop starting runs, let runs stop at their next safe point (no new
//! batches; in-flight requests finish and are committed), and after the grace
//! period abandon what is still in flight. Runs are recorded as `interrupted`.

pub mod auth;
mod driver;
mod folder;
mod headers;
mod hosts;
pub mod http;
pub mod metrics;
mod page;
mod progress;
mod reload;
pub mod serve;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Schedule, WorkerConfig};
use crate::destination::DestinationError;
use crate::error::Error;
use crate::panic::lock;
use crate::selection::Selection;
use crate::ship::pacing::Pacers;
use crate::spec::Mapping;
use crate::state::{RunRecord, StateStore};
use crate::sync::{RunReport, Throughput};
use auth::{Access, AccessOptions};
use driver::Driver;
use folder::{scan, spawn_polling};
use metrics::Metrics;

/// How often a run waiting for another process's run of the same sync checks the lock.
const LOCK_POLL: Duration = Duration::from_millis(500);
/// How often run history older than the retention period is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub struct WorkerOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// Runs at once across all syncs.
    pub concurrency: usize,
    /// How long in-flight requests may take to finish after a stop signal.
    pub grace: Duration,
    /// How often the folder is checked for changed mappings; zero checks only on SIGHUP.
    pub poll: Duration,
    pub config: WorkerConfig,
    /// Which of the folder's mappings this worker runs (`--select`, `--exclude`).
    pub selection: Selection,
    /// Who may use the HTTP endpoints.
    pub access: AccessOptions,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<crate::tls::TlsFiles>,
    /// `--max-run`: every run's box, over the mappings' `max_run:` and the schedule's default.
    pub max_run: Option<Duration>,
}

/// A mapping file the worker could not load.
#[derive(Clone, Debug, Serialize)]
pub struct InvalidMapping {
    pub file: PathBuf,
    pub errors: Vec<String>,
}

/// What this worker knows of one sync, for `/syncs`.
#[derive(Clone, Debug, Default)]
pub struct SyncView {
    pub running: bool,
    pub next_run: Option<DateTime<Utc>>,
    /// A trigger or a slot is waiting for the current run to end.
    pub queued: bool,
    pub last_report: Option<RunReport>,
    /// How far the running sync's sending has got.
    pub progress: Option<Throughput>,
}

/// A sync as the HTTP endpoints show it.
pub(crate) struct SyncInfo {
    pub name: String,
    pub file: PathBuf,
    pub mapping: Arc<Mapping>,
    pub view: SyncView,
}

impl SyncInfo {
    fn of(name: &str, handle: &SyncHandle) -> SyncInfo {
        SyncInfo {
            name: name.to_string(),
            file: handle.file.clone(),
            mapping: handle.mapping.borrow().clone(),
            view: lock(&handle.view).clone(),
        }
    }

    pub fn schedule(&self) -> Option<&Schedule> {
        self.mapping.schedule.as_ref()
    }
}

struct SyncHandle {
    file: PathBuf,
    text: String,
    mapping: watch::Sender<Arc<Mapping>>,
    trigger: Arc<Trigger>,
    stop: CancellationToken,
    view: Arc<Mutex<SyncView>>,
}

#[derive(Default)]
struct Trigger {
    notify: Notify,
    full: AtomicBool,
}

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) id: String,
    pub(crate) access: Access,
    dir: PathBuf,
    selection: Selection,
    config: WorkerConfig,
    max_run: Option<Duration>,
    permits: Arc<Semaphore>,
    /// Stop starting runs; running ones stop at their next safe point.
    pub(crate) shutdown: CancellationToken,
    /// The grace period is over: abandon requests in flight.
    abandon: CancellationToken,
    /// One pace per destination credential, across every sync of this worker.
    pacers: Arc<Pacers>,
    tracker: TaskTracker,
    syncs: Mutex<BTreeMap<String, SyncHandle>>,
    invalid: Mutex<Vec<InvalidMapping>>,
    /// Serialises reloads (SIGHUP and polling may coincide).
    reloading: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    /// The status page's previews: one at a time per sync, kept a minute.
    previews: page::preview::Previews,
}

pub struct Worker {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
    background: CancellationToken,
}

/// How a trigger request went.
#[derive(Debug, PartialEq, Eq)]
pub enum TriggerOutcome {
    Queued { running: bool },
    Unknown { known: Vec<String> },
    Invalid { errors: Vec<String> },
    ShuttingDown,
}

/// The worker's HTTP endpoints. They stay up through the grace period, so that `/healthz` and
/// `/syncs` show the shutdown.
fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, tls: Option<tokio_rustls::TlsAcceptor>) -> tokio::task::JoinHandle<()> {
    let app = http::router(shared);
    tokio::spawn(serve::serve(listener, app, tls))
}

impl Worker {
    /// Loads the folder, starts every valid sync's driver and the HTTP endpoints.
    pub async fn start(options: WorkerOptions, store: Box<dyn StateStore>) -> Result<Worker, Error> {
        if !options.dir.is_dir() {
            return Err(Error::Io {
                context: format!("mappings folder {}", options.dir.display()),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
            });
        }
        auth::check_listen(options.listen, &options.access)?;
        let tls = options.tls.as_ref().map(crate::tls::tls_acceptor).transpose()?;
        if tls.is_none() && options.access.token.is_some() && !options.listen.ip().is_loopback() {
            tracing::warn!(listen = %options.listen, "the worker listens beyond this machine without TLS: its token travels in clear (serve with --tls-cert and --tls-key, or behind a TLS-terminating proxy)");
        }
        let http = crate::alerts::client().map_err(|e| Error::Destination(DestinationError::Client(e)))?;
        let shared = Arc::new(Shared {
            store: Arc::from(store),
            metrics: Arc::new(Metrics::new()),
            // `host:pid`, recorded with each run so history says which worker ran it.
            id: crate::state::holder::me().label.clone(),
            access: Access::new(options.access, options.listen),
            dir: options.dir.clone(),
            selection: options.selection,
            config: options.config,
            max_run: options.max_run,
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            shutdown: CancellationToken::new(),
            abandon: CancellationToken::new(),
            pacers: Arc::default(),
            tracker: TaskTracker::new(),
            syncs: Mutex::default(),
            invalid: Mutex::default(),
            reloading: tokio::sync::Mutex::new(()),
            http,
            previews: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind(options.listen).await.map_err(|source| Error::Io {
            context: format!("the worker cannot listen on {}", options.listen),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Io {
            context: "the worker's listen address".into(),
            source,
        })?;
        shared.reload().await;
        let server = serve(listener, shared.clone(), tls);
        let background = CancellationToken::new();
        spawn_pruning(shared.clone(), background.clone());
        if !options.poll.is_zero() {
            spawn_polling(shared.clone(), options.poll, background.clone());
        }
        tracing::info!(worker = %shared.id, %addr, "worker started");
        Ok(Worker {
            shared,
            addr,
            server,
            background,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads the folder again: new syncs start, changed ones use the new mapping from their
    /// next run, removed ones stop after their current run.
    pub async fn reload(&self) {
        self.shared.reload().await;
    }

    /// Runs a sync as soon as it is free.
    pub fn trigger(&self, name: &str, full: bool) -> TriggerOutcome {
        self.shared.trigger(name, full)
    }

    /// Stops starting runs, waits up to `grace` for running ones to stop at a safe point,
    /// then abandons requests still in flight and waits for the runs to be recorded.
    pub async fn shutdown(self, grace: Duration) {
        let shared = &self.shared;
        shared.shutdown.cancel();
        self.background.cancel();
        shared.tracker.close();
        let running: Vec<String> = lock(&shared.syncs)
            .iter()
            .filter(|(_, h)| lock(&h.view).running)
            .map(|(n, _)| n.clone())
            .collect();
        if !running.is_empty() {
            tracing::warn!(?running, grace_secs = grace.as_secs(), "stopping: waiting for in-flight requests");
        }
        if tokio::time::timeout(grace, shared.tracker.wait()).await.is_err() {
            tracing::warn!("grace period over: abandoning requests still in flight");
            shared.abandon.cancel();
            // Committing what was acknowledged and recording the run takes a moment; not forever.
            let _ = tokio::time::timeout(Duration::from_secs(10), shared.tracker.wait()).await;
        }
        self.server.abort();
        tracing::info!("worker stopped");
    }
}

fn spawn_pruning(shared: Arc<Shared>, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let before = Utc::now().timestamp() - shared.config.retention.as_secs() as i64;
            match shared.store.prune(before).await {
                Ok(p) if p.runs > 0 => tracing::info!(runs = p.runs, rejections = p.rejections, "pruned run history past retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot prune run history"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(PRUNE_EVERY) => {}
            }
        }
    });
}
