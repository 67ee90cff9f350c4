//! One sync, end to end: the only module that sees every seam.
//!
//! 1. **Plan** (pass 1, `plan.rs`): the mapping is checked and the suppressions read, and the
//!    sync's [`Baseline`] (chosen once, from the mapping) reads the source, maps and hashes its
//!    rows, and diffs them against what the destination already has.
//! 2. **Send** (pass 2, `pass2.rs`): the records the baseline hands out, in batches
//!    ([`crate::ship`]), sent concurrently under the rate limit.
//! 3. **Commit** (`commit.rs`) what the destination acknowledged, in windows, through the
//!    baseline and fenced by the run lock. A record's hash changes only after a 2xx, so a run
//!    that stops anywhere leaves state exact for what was delivered.
//!
//! `preview` runs the plan and renders requests without sending; `test_send` sends a few
//! records without touching state (`preview.rs`).

pub mod check;
mod commit;
pub mod cost;
pub mod explain;
mod pass2;
mod plan;
mod preview;
mod run_box;
mod suppress;
mod throughput;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::baseline::{self, Baseline, CommitAt, Plan};
use crate::config::{GuardBlocked, Mode, Planned};
use crate::cursor::CursorColumn;
use crate::destination::Destination;
use crate::error::Error;
use crate::mapping::CompiledMapping;
use crate::priority::PriorityColumn;
use crate::ship::pacing::Pacers;
use crate::ship::AttemptObserver;
use crate::source::{self, Source};
use crate::spec::Mapping;
use crate::state::{RunCounts, RunLock, RunOrigin, RunProgress, RunStart, RunStatus, StateStore, SuppressReason};
pub use baseline::KEEP_BUDGET_BYTES;
use commit::CommitBuffer;
use pass2::{CommitWindow, Delivered};
pub use plan::plan;
pub use preview::{preview, preview_with, test_send, Preview, PreviewOptions, PreviewRequest, TestExchange};
pub use throughput::{ProgressSnapshot, Throughput};

/// How a sync's source, baseline and destination were built; tests swap in their own.
pub struct SyncJob {
    pub mapping: Mapping,
    /// Shared with pass 2's reads, which may read it again after the run's first read ends.
    pub source: Arc<dyn Source>,
    /// What the destination already has: chosen once, from the mapping.
    pub baseline: Arc<dyn Baseline>,
    pub destination: Arc<dyn Destination>,
}

impl SyncJob {
    pub fn from_mapping(mapping: Mapping) -> Result<SyncJob, Error> {
        let source: Arc<dyn Source> = Arc::from(source::build(&mapping.source)?);
        let baseline = baseline::for_mapping(&mapping)?;
        let destination: Arc<dyn Destination> = Arc::from(mapping.destination.build()?);
        Ok(SyncJob {
            mapping,
            source,
            baseline,
            destination,
        })
    }

    pub fn name(&self) -> &str {
        &self.mapping.name
    }

    /// Checks the mapping against the source's schema, and the suppression source's; reads no rows.
    pub async fn compile(&self) -> Result<CompiledMapping, Error> {
        Ok(self.compile_with_cursor().await?.0)
    }

    /// [`SyncJob::compile`], with the mapping's cursor column checked against the same schema.
    pub async fn compile_with_cursor(&self) -> Result<(CompiledMapping, Option<crate::cursor::CursorColumn>), Error> {
        let (compiled, cursor, _) = self.compile_with_columns().await?;
        Ok((compiled, cursor))
    }

    /// [`SyncJob::compile`], with the cursor and priority columns checked against the source.
    pub async fn compile_with_columns(&self) -> Result<(CompiledMapping, Option<CursorColumn>, Option<PriorityColumn>), Error> {
        let schema = self.source.schema().await?;
        let compiled = CompiledMapping::compile(&self.mapping, &schema, &self.source.describe(), chrono::Utc::now().timestamp())?;
        let cursor = crate::cursor::check(&self.mapping, &schema)?;
        let priority = crate::priority::check(&self.mapping, &schema)?;
        if let Some(config) = &self.mapping.suppress {
            suppress::list_column(self, source::build(config)?.as_ref(), config).await?;
        }
        Ok((compiled, cursor, priority))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub sync: String,
    pub run_id: Option<i64>,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Every record was planned regardless of state: `--full`, or state was empty (a
    /// first run, a reset, lost state or a new hash version).
    pub full_resync: bool,
    /// The destination the stored state was for, when it was not this one: the run started
    /// from empty state and sent everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_was_for: Option<String>,
    /// The snapshot folders read (and skipped), when `latest:` or `require_marker:` chose them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folders: Option<crate::folders::SnapshotFolders>,
    /// With `source.cursor:`: whether the run read only the rows past the watermark, or all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<crate::cursor::CursorSummary>,
}

/// What a run learns as it goes, kept whatever way it ends.
#[derive(Default)]
struct Learnt {
    counts: RunCounts,
    full_resync: bool,
    state_was_for: Option<String>,
    cursor: Option<crate::cursor::CursorSummary>,
}

/// Where a run reports its progress through pass 2; the CLI draws a bar.
pub trait Progress: Send + Sync {
    /// Pass 2 of `sync` begins, with `total` records to deliver.
    fn start(&self, sync: &str, total: u64);
    /// `records` more were acknowledged, rejected or given up on.
    fn advance(&self, records: u64);
    fn finish(&self);
}

pub struct RunOptions {
    pub full: bool,
    /// Read every row, even with a cursor (`--full-diff`).
    pub full_diff: bool,
    pub progress: Option<Arc<dyn Progress>>,
    /// Cancelled on Ctrl-C or SIGTERM: no new batches start; in-flight ones finish and commit.
    pub cancel: CancellationToken,
    /// Cancelled when waiting for in-flight requests must stop (a shutdown's grace is over):
    /// what was acknowledged is committed, the rest counts as failed and is sent next run.
    pub abandon: CancellationToken,
    /// Wait for another run of the same sync to finish, instead of giving up at once.
    pub wait_for_lock: bool,
    /// Recorded with the run.
    pub origin: RunOrigin,
    pub scheduled_for: Option<i64>,
    pub worker: Option<String>,
    /// Sees every delivery attempt (the worker's metrics).
    pub observer: Option<Arc<dyn AttemptObserver>>,
    /// The guards this run may pass (`--allow-guard NAME`), or all of them (`--allow-guards`).
    pub allow_guards: AllowGuards,
    /// The request pace of each destination credential, shared by every run made with these
    /// options (one `ebb sync` of several mappings) or with the same pacers (a worker's runs).
    pub pacers: Arc<Pacers>,
    /// How much memory pass 1 may spend keeping the records to send, so that pass 2 need not
    /// read the source again ([`KEEP_BUDGET_BYTES`]); 0 always reads it twice.
    pub keep_budget: usize,
    /// `--max-run`: how long a run keeps starting batches, over the mapping's `max_run:`.
    pub max_run: Option<Duration>,
}

/// Which guards a run may pass, once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AllowGuards {
    #[default]
    None,
    Some(Vec<String>),
    All,
}

impl AllowGuards {
    pub fn allows(&self, guard: &str) -> bool {
        match self {
            AllowGuards::None => false,
            AllowGuards::Some(names) => names.iter().any(|n| n == guard),
            AllowGuards::All => true,
        }
    }
}

/// The guard the plan passes, if one does and the run may not pass it.
pub(crate) fn guard(sync: &SyncJob, plan: &Plan, allow: &AllowGuards) -> Option<GuardBlocked> {
    let planned = Planned {
        source_rows: plan.counts.source,
        new: plan.counts.new,
        changed: plan.counts.changed,
        deletes: plan.to_delete().len() as u64,
        in_state: plan.in_state as u64,
        mirror: sync.mapping.mode == Mode::Mirror,
    };
    let blocked = sync.mapping.guards.check(&planned, &|g| allow.allows(g))?;
    tracing::warn!(sync = %sync.name(), guard = blocked.guard, "run blocked by a guard");
    Some(blocked)
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            full: false,
            full_diff: false,
            progress: None,
            cancel: CancellationToken::new(),
            abandon: CancellationToken::new(),
            wait_for_lock: false,
            origin: RunOrigin::Cli,
            scheduled_for: None,
            worker: None,
            observer: None,
            allow_guards: AllowGuards::None,
            pacers: Arc::default(),
            keep_budget: KEEP_BUDGET_BYTES,
            max_run: None,
        }
    }
}

/// A real run: plan, deliver, commit. Always records the run, even when it fails, unless
/// another run of the same sync holds the lock: then nothing happens at all.
pub async fn run(sync: &SyncJob, store: &dyn StateStore, options: &RunOptions) -> Result<RunReport, Error> {
    let name = sync.name();
    // Held to the end of the run, commits included; released on drop, or by the OS or server if the process dies.
    let lock = if options.wait_for_lock {
        store.lock(name).await?
    } else {
        store.try_lock(name).await?.ok_or_else(|| Error::AlreadyRunning(name.to_string()))?
    };
    let report = run_locked(sync, store, options, &lock).await;
    lock.release().await;
    report
}

/// [`run`] for a caller that already holds the sync's lock, such as the worker, which takes
/// it before claiming a schedule slot. If the lock is lost meanwhile, the run stops at once,
/// commits nothing more, and is recorded as failed.
pub async fn run_locked(sync: &SyncJob, store: &dyn StateStore, options: &RunOptions, lock: &RunLock) -> Result<RunReport, Error> {
    let started = Instant::now();
    let name = sync.name().to_string();
    let start = RunStart {
        full: options.full,
        origin: options.origin,
        scheduled_for: options.scheduled_for,
        worker: options.worker.clone(),
    };
    lock.check()?;
    let run_id = store.begin_run(&name, &start).await?;
    let mut learnt = Learnt {
        full_resync: options.full,
        ..Learnt::default()
    };
    let context = RunContext {
        sync,
        store,
        options,
        lock,
        run_id,
        destination: sync.mapping.destination.fingerprint(),
        started: tokio::time::Instant::now(),
    };
    let result = match crate::panic::catch("sync", context.run(&mut learnt)).await {
        Ok(result) => result,
        Err(internal) => Err(Error::Internal(internal)),
    };
    let (status, error) = match &result {
        Ok(Ending::Completed) => (RunStatus::Completed, None),
        Ok(Ending::Continued) => (RunStatus::Continued, None),
        Err(Error::Interrupted) => (RunStatus::Interrupted, Some("interrupted".to_string())),
        Err(Error::Blocked(blocked)) => (RunStatus::Blocked, Some(blocked.to_string())),
        Err(e) => (RunStatus::Failed, Some(e.to_string())),
    };
    // Known once the source was listed, whatever happened after.
    let folders = sync.source.folders();
    if let Some(folders) = &folders {
        store.note_folders(run_id, folders).await?;
    }
    store.finish_run(run_id, status, &learnt.counts, error.as_deref()).await?;
    tracing::info!(sync = %name, run_id, status = status.as_str(), sent = learnt.counts.sent, "run finished");
    Ok(RunReport {
        sync: name,
        run_id: Some(run_id),
        status,
        counts: learnt.counts,
        error,
        duration_ms: started.elapsed().as_millis() as u64,
        full_resync: learnt.full_resync,
        state_was_for: learnt.state_was_for,
        folders,
        cursor: learnt.cursor,
    })
}

/// What every stage of one run shares.
pub(super) struct RunContext<'a> {
    pub sync: &'a SyncJob,
    pub store: &'a dyn StateStore,
    pub options: &'a RunOptions,
    pub lock: &'a RunLock,
    pub run_id: i64,
    /// The destination's fingerprint, committed with every acknowledgement.
    pub destination: String,
    /// When the run started: its box counts from here.
    pub started: tokio::time::Instant,
}

/// How a run that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Completed,
    /// Its box was over with records left to send.
    Continued,
}

impl RunContext<'_> {
    async fn run(&self, learnt: &mut Learnt) -> Result<Ending, Error> {
        let (sync, store, name) = (self.sync, self.store, self.sync.name());
        // Nothing is sent while planning, so a stop request ends the run at once.
        let plan = tokio::select! {
            biased;
            () = self.options.cancel.cancelled() => return Err(Error::Interrupted),
            planned = plan(sync, store, self.asked(), self.options.keep_budget, self.lock.fence()) => planned?,
        };
        learnt.state_was_for.clone_from(&plan.state_was_for);
        learnt.full_resync |= plan.sends_everything;
        learnt.counts = plan.counts.clone();
        learnt.cursor = plan.cursor.as_ref().map(|c| c.summary());
        let counts = &mut learnt.counts;
        store.add_rejections(self.run_id, name, &plan.rejections).await?;
        if let Some(blocked) = guard(sync, &plan, &self.options.allow_guards) {
            // Nothing is sent and nothing is committed: the schema is not saved either.
            return Err(Error::Blocked(blocked));
        }
        if !plan.suppress_from_source.is_empty() {
            store
                .suppress(name, &plan.suppress_from_source, SuppressReason::Source, Some(self.run_id))
                .await?;
        }
        store.save_schema(name, plan.compiled.columns()).await?;
        store.note_mapping(self.run_id, &plan.compiled.fingerprint()).await?;
        if self.options.cancel.is_cancelled() {
            counts.failed = plan.changes() as u64;
            return Err(Error::Interrupted);
        }
        if let Err(lost) = self.lock.check() {
            counts.failed = plan.changes() as u64;
            return Err(lost.into());
        }
        let result = self.deliver(&plan, counts).await;
        plan.baseline.finish(&self.commit_at()).await;
        let ending = result?;
        // Only a completed run moves the watermark: one that stopped part-way (a continued
        // one too) reads again whatever it did not get acknowledged.
        if let (Some(cursor), Ending::Completed) = (&plan.cursor, ending) {
            cursor.save(store, self.lock).await?;
        }
        Ok(ending)
    }

    /// The run's box: `--max-run`, else the mapping's `max_run:`.
    pub fn max_run(&self) -> Option<Duration> {
        self.options.max_run.or(self.sync.mapping.max_run)
    }

    fn asked(&self) -> crate::cursor::scope::Asked {
        crate::cursor::scope::Asked {
            full: self.options.full,
            full_diff: self.options.full_diff,
        }
    }

    /// Where this run commits.
    pub fn commit_at(&self) -> CommitAt<'_> {
        CommitAt {
            store: self.store,
            lock: self.lock,
            run_id: self.run_id,
            destination: &self.destination,
        }
    }

    /// Pass 2 and the commits. Whatever happens, `counts.failed` ends up as the planned
    /// records that were neither committed nor rejected.
    async fn deliver(&self, plan: &Plan, counts: &mut RunCounts) -> Result<Ending, Error> {
        let progress = self.options.progress.as_deref();
        if let Some(progress) = progress {
            progress.start(self.sync.name(), plan.changes() as u64);
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut window = CommitWindow {
            context: self,
            buffer: CommitBuffer::default(),
            fatal: None,
            failed: 0,
            reported: (plan.changes() > 0).then(|| {
                let progress = RunProgress {
                    planned: plan.changes() as u64,
                    done: 0,
                    since_ms: now_ms,
                    at_ms: now_ms,
                };
                (progress, tokio::time::Instant::now())
            }),
        };
        window.report(0).await?;
        let result = window.deliver(plan, counts).await;
        if let Some(progress) = progress {
            progress.finish();
        }
        let unsettled = (plan.changes() as u64).saturating_sub(counts.sent + counts.deleted + counts.rejected);
        counts.failed = unsettled;
        match result? {
            Delivered::Stopped if unsettled > 0 => Err(Error::Interrupted),
            // What the box kept from starting is left, not failed: it was never attempted.
            Delivered::Boxed if unsettled > window.failed => {
                counts.failed = window.failed;
                let left = unsettled - window.failed;
                counts.left = Some(left);
                counts.eta_secs = Some(cost::Cost::of(self.sync, left as usize, 0).eta_secs);
                Ok(Ending::Continued)
            }
            _ => Ok(Ending::Completed),
        }
    }
}
