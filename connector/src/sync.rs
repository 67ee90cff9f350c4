//! One sync, end to end: the only module that sees every seam.
//!
//! 1. **Plan** (pass 1): stream the source, map and hash every row, find
//!    duplicate ids, and diff against stored hashes. Only ids and hashes are
//!    kept, never the rows.
//! 2. **Deliver** (pass 2): stream the source again and map only the records
//!    the plan selected, in batches, sent concurrently under the rate limit.
//! 3. **Commit** each batch's acknowledged records as soon as the destination
//!    acknowledges them. A record's hash changes only after a 2xx, so a run
//!    that stops anywhere leaves state exact for what was delivered.
//!
//! `preview` runs the plan and renders requests without sending; `test_send`
//! sends a few records without touching state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::column::ColumnType;
use crate::config::Mode;
use crate::delivery::{BatchOutcome, Delivery};
use crate::destination::{Attempt, Destination, DestinationError};
use crate::error::Error;
use crate::hash::{id_key, record_hash};
use crate::mapping::{CompiledMapping, Rejection};
use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};
use crate::record::Record;
use crate::source::{self, Source};
use crate::spec::Mapping;
use crate::state::{
    Commit, IndexEntry, RecordIndex, RejectionStage, RunCounts, RunLock, RunOrigin, RunStart, RunStatus, StateStore, StoredRejection,
    StoredState, MAX_STORED_REJECTIONS,
};

/// How a sync's source and destination were built; tests swap in their own.
pub struct SyncJob {
    pub mapping: Mapping,
    pub source: Box<dyn Source>,
    pub destination: Arc<dyn Destination>,
}

impl SyncJob {
    pub fn from_mapping(mapping: Mapping) -> Result<SyncJob, Error> {
        let source = source::build(&mapping.source);
        let destination: Arc<dyn Destination> = Arc::from(mapping.destination.build()?);
        Ok(SyncJob {
            mapping,
            source,
            destination,
        })
    }

    pub fn name(&self) -> &str {
        &self.mapping.name
    }

    /// The sync's stored state, if it is for this destination. State kept for another one
    /// (the mapping now points at another workspace, object or type) is set aside: this run
    /// sends everything and its first commit replaces it. The other destination is returned.
    pub async fn load_state(&self, store: &dyn StateStore) -> Result<(StoredState, Option<String>), Error> {
        let stored = store.load(self.name()).await?;
        let here = self.mapping.destination.fingerprint();
        match &stored.destination {
            Some(there) if *there != here => {
                let there = there.clone();
                tracing::info!(sync = %self.name(), stored_for = %there, now = %here, "state is for another destination; sending everything");
                Ok((stored.set_aside(), Some(there)))
            }
            _ => Ok((stored, None)),
        }
    }

    /// Checks the mapping against the source's schema; reads no rows.
    pub async fn compile(&self) -> Result<CompiledMapping, Error> {
        let schema = self.source.schema().await?;
        Ok(CompiledMapping::compile(
            &self.mapping,
            &schema,
            &self.source.describe(),
            chrono::Utc::now().timestamp(),
        )?)
    }
}

/// Pass 1's result: what to send, and the counts so far.
pub struct Plan {
    compiled: Arc<CompiledMapping>,
    pub counts: RunCounts,
    /// The first rejections, for storage and display; `counts.invalid` is exact.
    pub rejections: Vec<StoredRejection>,
    /// Keys of the records to send, sorted; shared with pass 2 rather than copied.
    to_send: Arc<Vec<u128>>,
}

impl Plan {
    pub fn to_send(&self) -> usize {
        self.to_send.len()
    }
}

fn mapping_rejection(r: Rejection) -> StoredRejection {
    StoredRejection {
        stage: RejectionStage::Mapping,
        record_id: r.id,
        position: r.position,
        reason: r.reason,
    }
}

fn check_drift(stored: &Option<Vec<(String, ColumnType)>>, now: &[(String, ColumnType)]) -> Result<(), Error> {
    let Some(stored) = stored else { return Ok(()) };
    let mut problems = Vec::new();
    for (name, ty) in now {
        if let Some((_, before)) = stored.iter().find(|(n, _)| n == name) {
            if before != ty {
                problems.push(format!("column {} was {before} in the last run and is {ty} now", quote(name)));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Drift(problems.join("; ")))
    }
}

/// An id that occurs more than once in a snapshot.
struct Duplicate {
    key: u128,
    valid: u32,
    occurrences: u32,
}

/// Removes every entry whose key occurs more than once, or also on a rejected row, from
/// `seen` (sorted by key), in place, and returns those keys.
fn take_duplicates(seen: &mut Vec<IndexEntry>, rejected: &[(u128, String)]) -> Vec<Duplicate> {
    let mut duplicates = Vec::new();
    let (mut read, mut write) = (0, 0);
    while read < seen.len() {
        let key = seen[read].key;
        let mut end = read + 1;
        while end < seen.len() && seen[end].key == key {
            end += 1;
        }
        let valid = (end - read) as u32;
        let rejected_too = rejected.partition_point(|(k, _)| *k < key)..rejected.partition_point(|(k, _)| *k <= key);
        if valid > 1 || !rejected_too.is_empty() {
            duplicates.push(Duplicate {
                key,
                valid,
                occurrences: valid + rejected_too.len() as u32,
            });
        } else {
            seen[write] = seen[read];
            write += 1;
        }
        read = end;
    }
    seen.truncate(write);
    duplicates
}

/// The ids of `keys`, found by reading the source's id column again. Only runs when a
/// snapshot has duplicate ids, which pass 1 knows by key but not by text.
async fn ids_of(sync: &SyncJob, compiled: &CompiledMapping, keys: &HashSet<u128>) -> Result<HashMap<u128, String>, Error> {
    let mut found = HashMap::new();
    let mut stream = sync.source.stream(Arc::new(compiled.columns().to_vec()));
    while let Some(batch) = stream.next().await {
        compiled.ids_batch(&batch?, |id| {
            if let Some(id) = id {
                let key = id_key(id);
                if keys.contains(&key) && !found.contains_key(&key) {
                    found.insert(key, id.to_string());
                }
            }
        });
        if found.len() == keys.len() {
            break;
        }
    }
    Ok(found)
}

/// What pass 1 read from the snapshot.
struct Snapshot {
    /// The valid rows' keys and hashes, sorted by key, without duplicate ids.
    seen: Vec<IndexEntry>,
    /// The ids of rejected rows, sorted by key.
    rejected_ids: Vec<(u128, String)>,
    /// Ids that occur more than once, all of whose rows are rejected.
    duplicates: Vec<Duplicate>,
}

/// Pass 1: hash every row straight from the source's columns, then diff against `stored`
/// by merging two arrays sorted by id key.
pub async fn plan(sync: &SyncJob, stored: &StoredState, full: bool) -> Result<Plan, Error> {
    let compiled = Arc::new(sync.compile().await?);
    check_drift(&stored.schema, compiled.columns())?;
    let mut counts = RunCounts::default();
    let mut rejections = Vec::new();
    let snapshot = read_snapshot(sync, &compiled, stored.index.len(), &mut counts, &mut rejections).await?;
    if !full {
        counts.gone = count_gone(&stored.index, &snapshot);
    }
    let to_send = select(&snapshot.seen, &stored.index, full, sync.mapping.mode, &mut counts);
    let Snapshot {
        seen,
        rejected_ids,
        duplicates,
    } = snapshot;
    drop(seen);
    reject_duplicates(sync, &compiled, &duplicates, &rejected_ids, &mut counts, &mut rejections).await?;
    tracing::info!(
        sync = %sync.name(),
        source = counts.source,
        invalid = counts.invalid,
        new = counts.new,
        changed = counts.changed,
        unchanged = counts.unchanged,
        gone = counts.gone,
        to_send = to_send.len(),
        "plan ready"
    );
    Ok(Plan {
        compiled,
        counts,
        rejections,
        to_send: Arc::new(to_send),
    })
}

/// Streams the source once, hashing valid rows and keeping the first rejections.
async fn read_snapshot(
    sync: &SyncJob,
    compiled: &CompiledMapping,
    last_size: usize,
    counts: &mut RunCounts,
    rejections: &mut Vec<StoredRejection>,
) -> Result<Snapshot, Error> {
    // Sized for the usual case, a snapshot about as big as the last one, so it never doubles.
    let mut seen: Vec<IndexEntry> = Vec::with_capacity(last_size + last_size / 16 + 1024);
    let mut rejected_ids: Vec<(u128, String)> = Vec::new();
    let mut stream = sync.source.stream(Arc::new(compiled.columns().to_vec()));
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        counts.source += batch.batch.num_rows() as u64;
        compiled.hash_batch(&batch, |hashed| match hashed {
            Ok((id, hash)) => seen.push(IndexEntry { key: id_key(id), hash }),
            Err(rejection) => {
                counts.invalid += 1;
                if let Some(id) = &rejection.id {
                    rejected_ids.push((id_key(id), id.clone()));
                }
                if rejections.len() < MAX_STORED_REJECTIONS {
                    rejections.push(mapping_rejection(rejection));
                }
            }
        });
    }
    drop(stream);
    seen.sort_unstable_by_key(|e| e.key);
    rejected_ids.sort_unstable();
    let duplicates = take_duplicates(&mut seen, &rejected_ids);
    Ok(Snapshot {
        seen,
        rejected_ids,
        duplicates,
    })
}

/// Stored records that no row has the id of: not a valid one, nor a rejected or duplicate one.
fn count_gone(stored: &RecordIndex, snapshot: &Snapshot) -> u64 {
    let (seen, mut j, mut gone) = (&snapshot.seen, 0, 0u64);
    let dup_keys: HashSet<u128> = snapshot.duplicates.iter().map(|d| d.key).collect();
    for e in stored.entries() {
        while j < seen.len() && seen[j].key < e.key {
            j += 1;
        }
        let present = (j < seen.len() && seen[j].key == e.key)
            || dup_keys.contains(&e.key)
            || snapshot.rejected_ids.binary_search_by_key(&e.key, |(k, _)| *k).is_ok();
        gone += u64::from(!present);
    }
    gone
}

/// The keys to send, sorted, by merging the snapshot with state; counts new, changed and unchanged.
fn select(seen: &[IndexEntry], stored: &RecordIndex, full: bool, mode: Mode, counts: &mut RunCounts) -> Vec<u128> {
    let mut to_send = Vec::new();
    let stored_entries = stored.entries();
    let mut j = 0;
    for e in seen {
        while j < stored_entries.len() && stored_entries[j].key < e.key {
            j += 1;
        }
        let before = (j < stored_entries.len() && stored_entries[j].key == e.key).then(|| stored_entries[j].hash);
        let is_new = match (full, before) {
            (true, _) | (false, None) => true,
            (false, Some(h)) if h == e.hash => {
                counts.unchanged += 1;
                continue;
            }
            (false, Some(_)) => false,
        };
        if is_new {
            counts.new += 1;
        } else {
            counts.changed += 1;
        }
        let wanted = match mode {
            Mode::Upsert | Mode::Mirror => true,
            Mode::CreateOnly => is_new,
            Mode::UpdateOnly => !is_new,
        };
        if wanted {
            to_send.push(e.key);
        }
    }
    to_send
}

/// Counts every row of a duplicate id as invalid and records why, by the id's text.
async fn reject_duplicates(
    sync: &SyncJob,
    compiled: &CompiledMapping,
    duplicates: &[Duplicate],
    rejected_ids: &[(u128, String)],
    counts: &mut RunCounts,
    rejections: &mut Vec<StoredRejection>,
) -> Result<(), Error> {
    if duplicates.is_empty() {
        return Ok(());
    }
    let mut texts: HashMap<u128, String> = duplicates
        .iter()
        .filter_map(|d| {
            let i = rejected_ids.binary_search_by_key(&d.key, |(k, _)| *k).ok()?;
            Some((d.key, rejected_ids[i].1.clone()))
        })
        .collect();
    let missing: HashSet<u128> = duplicates.iter().map(|d| d.key).filter(|k| !texts.contains_key(k)).collect();
    if !missing.is_empty() {
        texts.extend(ids_of(sync, compiled, &missing).await?);
    }
    for d in duplicates {
        counts.invalid += u64::from(d.valid);
        if rejections.len() >= MAX_STORED_REJECTIONS {
            continue;
        }
        // The text can only be missing if the source changed between reads.
        let id = texts.get(&d.key).cloned().unwrap_or_else(|| format!("{:032x}", d.key));
        rejections.push(StoredRejection {
            stage: RejectionStage::Mapping,
            record_id: Some(id.clone()),
            position: format!("id {}", shorten(&id, MAX_QUOTED_CHARS)),
            reason: format!(
                "id {} occurs {} times in the snapshot; every occurrence is rejected",
                quote(&id),
                d.occurrences
            ),
        });
    }
    Ok(())
}

/// Pass 2: the planned records, in source order, in batches of `batch_size`.
fn planned_batches(
    sync: &SyncJob,
    plan: &Plan,
    batch_size: usize,
    max_batches: Option<usize>,
) -> mpsc::Receiver<Result<Vec<Record>, Error>> {
    let (tx, rx) = mpsc::channel(8);
    if plan.to_send.is_empty() {
        // Nothing to send: no need to read the source again.
        return rx;
    }
    let compiled = plan.compiled.clone();
    let wanted = plan.to_send.clone();
    let mut stream = sync.source.stream(Arc::new(compiled.columns().to_vec()));
    tokio::spawn(async move {
        let mut emitted: HashSet<u128> = HashSet::new();
        let mut current = Vec::with_capacity(batch_size);
        let mut batches = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            let mut ready = Vec::new();
            compiled.map_selected(
                &batch,
                |id| wanted.binary_search(&id_key(id)).is_ok(),
                |mapped| {
                    // A record seen twice here means the source changed between passes: send it once.
                    if let Ok(record) = mapped {
                        if emitted.insert(id_key(&record.id)) {
                            current.push(record);
                            if current.len() == batch_size {
                                ready.push(std::mem::replace(&mut current, Vec::with_capacity(batch_size)));
                            }
                        }
                    }
                },
            );
            for b in ready {
                if max_batches.is_some_and(|m| batches >= m) || tx.send(Ok(b)).await.is_err() {
                    return;
                }
                batches += 1;
            }
        }
        if !current.is_empty() && max_batches.is_none_or(|m| batches < m) {
            let _ = tx.send(Ok(current)).await;
        }
    });
    rx
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
}

pub struct RunOptions {
    pub full: bool,
    pub progress: bool,
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
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            full: false,
            progress: false,
            cancel: CancellationToken::new(),
            abandon: CancellationToken::new(),
            wait_for_lock: false,
            origin: RunOrigin::Cli,
            scheduled_for: None,
            worker: None,
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
    let mut counts = RunCounts::default();
    let mut full_resync = options.full;
    let mut state_was_for = None;
    let context = RunContext {
        sync,
        store,
        options,
        lock,
        run_id,
        destination: sync.mapping.destination.fingerprint(),
    };
    let result = context.run(&mut counts, &mut full_resync, &mut state_was_for).await;
    let (status, error) = match &result {
        Ok(()) => (RunStatus::Completed, None),
        Err(Error::Interrupted) => (RunStatus::Interrupted, Some("interrupted".to_string())),
        Err(e) => (RunStatus::Failed, Some(e.to_string())),
    };
    store.finish_run(run_id, status, &counts, error.as_deref()).await?;
    tracing::info!(sync = %name, run_id, status = status.as_str(), sent = counts.sent, "run finished");
    Ok(RunReport {
        sync: name,
        run_id: Some(run_id),
        status,
        counts,
        error,
        duration_ms: started.elapsed().as_millis() as u64,
        full_resync,
        state_was_for,
    })
}

/// How long acknowledged records may wait to be committed together.
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
/// How many acknowledged records make a commit happen before the interval is up.
const COMMIT_RECORDS: usize = 3000;

/// What this run has committed, to bring the cached index up to date at the end.
struct Committed {
    /// The commit counter after our last commit, while every commit was ours (each one
    /// advanced the counter by exactly one); `None` once anything else wrote.
    generation: Option<i64>,
    entries: Vec<IndexEntry>,
}

/// What every stage of one run shares.
struct RunContext<'a> {
    sync: &'a SyncJob,
    store: &'a dyn StateStore,
    options: &'a RunOptions,
    lock: &'a RunLock,
    run_id: i64,
    /// The destination's fingerprint, committed with every acknowledgement.
    destination: String,
}

impl RunContext<'_> {
    async fn run(&self, counts: &mut RunCounts, full_resync: &mut bool, state_was_for: &mut Option<String>) -> Result<(), Error> {
        let (sync, store, name) = (self.sync, self.store, self.sync.name());
        let (stored, other) = sync.load_state(store).await?;
        *state_was_for = other;
        *full_resync |= stored.index.is_empty();
        // Nothing is sent while planning, so a stop request ends the run at once.
        let plan = tokio::select! {
            biased;
            () = self.options.cancel.cancelled() => return Err(Error::Interrupted),
            plan = plan(sync, &stored, self.options.full) => plan?,
        };
        *counts = plan.counts.clone();
        store.add_rejections(self.run_id, name, &plan.rejections).await?;
        store.save_schema(name, plan.compiled.columns()).await?;
        if self.options.cancel.is_cancelled() {
            counts.failed = plan.to_send() as u64;
            return Err(Error::Interrupted);
        }
        if let Err(lost) = self.lock.check() {
            counts.failed = plan.to_send() as u64;
            return Err(lost.into());
        }
        let mut committed = Committed {
            generation: stored.generation,
            entries: Vec::new(),
        };
        let result = self.deliver(&plan, counts, &mut committed, stored.replace).await;
        // The cache is written only by the lock's holder; a run that lost it leaves it stale.
        if let (Some(generation), false) = (committed.generation, self.lock.is_lost()) {
            if !stored.cached || !committed.entries.is_empty() {
                let index = stored.index.merged(committed.entries);
                drop(stored);
                match store.save_index(name, generation, &index).await {
                    Ok(saved) => tracing::debug!(sync = %name, saved, entries = index.len(), "record index cache"),
                    // Only a cache: the next run rebuilds it from the records table.
                    Err(e) => tracing::warn!(sync = %name, error = %e, "could not save the record index cache"),
                }
            }
        }
        result
    }

    /// Pass 2 and the commits. Whatever happens, `counts.failed` ends up as the planned
    /// records that were neither committed nor rejected.
    async fn deliver(&self, plan: &Plan, counts: &mut RunCounts, committed: &mut Committed, replace: bool) -> Result<(), Error> {
        let progress = progress_bar(self.options.progress, plan.to_send() as u64, self.sync.name());
        let mut window = CommitWindow {
            context: self,
            replace,
            pending: Vec::new(),
            pending_records: 0,
            deadline: None,
            fatal: None,
            progress,
        };
        let result = window.deliver(plan, counts, committed).await;
        window.progress.finish_and_clear();
        counts.failed = (plan.to_send() as u64).saturating_sub(counts.sent + counts.rejected);
        let stopped_early = result?;
        if stopped_early && counts.failed > 0 {
            return Err(Error::Interrupted);
        }
        Ok(())
    }
}

/// The batches of pass 2, sent concurrently under the rate limit.
type InFlight<'a> = std::pin::Pin<Box<dyn futures::Stream<Item = (Vec<Record>, BatchOutcome)> + Send + 'a>>;

/// Acknowledged batches waiting to be committed together.
struct CommitWindow<'a> {
    context: &'a RunContext<'a>,
    /// The next commit replaces the stored state (see [`Commit::replace`]); only the first does.
    replace: bool,
    pending: Vec<(Vec<Record>, BatchOutcome)>,
    pending_records: usize,
    deadline: Option<tokio::time::Instant>,
    /// Why the destination stopped the run, if it did.
    fatal: Option<String>,
    progress: ProgressBar,
}

impl CommitWindow<'_> {
    /// Sends and commits until pass 2 ends; `Ok(true)` if a stop or shutdown ended it first.
    async fn deliver(&mut self, plan: &Plan, counts: &mut RunCounts, committed: &mut Committed) -> Result<bool, Error> {
        let RunContext { sync, options, lock, .. } = *self.context;
        let stop = options.cancel.child_token();
        let source_error: Arc<std::sync::Mutex<Option<Error>>> = Arc::default();
        let mut in_flight = self.start_sending(plan, &stop, &source_error);
        let mut abandoned = false;
        loop {
            // Acknowledged records are committed together, every COMMIT_INTERVAL or COMMIT_RECORDS,
            // whichever comes first: a commit per request costs more than the request at a thousand
            // requests a second. A crash loses at most that window's commits, which the next run
            // sends again; nothing unacknowledged is ever committed.
            let step = tokio::select! {
                biased;
                () = lock.lost() => Step::LockLost,
                item = in_flight.next() => Step::Finished(item),
                () = sleep_until_some(self.deadline) => Step::Flush,
                () = options.abandon.cancelled() => Step::Abandon,
            };
            let last = match step {
                Step::Finished(Some((batch, outcome))) => {
                    if !self.add(batch, outcome) {
                        continue;
                    }
                    false
                }
                Step::Finished(None) => true,
                Step::Flush => false,
                Step::Abandon => {
                    // Requests still in flight are dropped unanswered: their records were not
                    // acknowledged, so they stay unsynced and the next run sends them.
                    tracing::warn!(sync = %sync.name(), "abandoning requests still in flight");
                    abandoned = true;
                    true
                }
                // Requests in flight are dropped with the stream, and nothing more is committed:
                // another run may own the sync by now. What was acknowledged is sent again next run.
                Step::LockLost => return Err(lock.check().err().map(Error::from).unwrap_or(Error::Interrupted)),
            };
            self.flush(counts, committed, &stop).await?;
            if last {
                break;
            }
        }
        drop(in_flight);
        if let Some(e) = source_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        if let Some(reason) = self.fatal.take() {
            return Err(DestinationError::Refused(reason).into());
        }
        Ok(options.cancel.is_cancelled() || abandoned)
    }

    /// Pass 2 as a stream of delivered batches; a source error ends it and is left in `source_error`.
    fn start_sending(
        &self,
        plan: &Plan,
        stop: &CancellationToken,
        source_error: &Arc<std::sync::Mutex<Option<Error>>>,
    ) -> InFlight<'static> {
        let RunContext { sync, run_id, lock, .. } = *self.context;
        let config = sync.mapping.delivery();
        let gate = lock.gate();
        let batch_size = sync.destination.capabilities().max_batch_records.max(1);
        let mut delivery = Delivery::new(sync.destination.clone(), config.requests_per_minute, config.retry_budget);
        delivery.run = Some(format!("{}/{run_id}", sync.name()));
        let delivery = Arc::new(delivery);
        let mut rx = planned_batches(sync, plan, batch_size, None);
        let source_error = source_error.clone();
        let batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .take_until(stop.clone().cancelled_owned())
            .filter_map(move |item| {
                let source_error = source_error.clone();
                async move {
                    match item {
                        Ok(b) => Some(b),
                        Err(e) => {
                            *source_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            None
                        }
                    }
                }
            });
        Box::pin(
            batches
                .map(move |batch| {
                    let (delivery, gate) = (delivery.clone(), gate.clone());
                    async move {
                        // A request starts only while the run can prove it holds its lock.
                        gate.until_proven().await;
                        let outcome = delivery.deliver(&batch).await;
                        (batch, outcome)
                    }
                })
                .buffer_unordered(config.concurrency),
        )
    }

    /// Takes a finished batch; true if the window should be committed now.
    fn add(&mut self, batch: Vec<Record>, outcome: BatchOutcome) -> bool {
        let urgent = outcome.fatal.is_some();
        self.pending_records += batch.len();
        self.pending.push((batch, outcome));
        self.deadline.get_or_insert_with(|| tokio::time::Instant::now() + COMMIT_INTERVAL);
        urgent || self.pending_records >= COMMIT_RECORDS
    }

    /// Commits what the window's batches acknowledged, through the run lock, then records their rejections.
    async fn flush(&mut self, counts: &mut RunCounts, committed: &mut Committed, stop: &CancellationToken) -> Result<(), Error> {
        let RunContext {
            sync, store, lock, run_id, ..
        } = *self.context;
        self.deadline = None;
        self.pending_records = 0;
        let done = std::mem::take(&mut self.pending);
        if done.is_empty() {
            return Ok(());
        }
        let acked: Vec<(String, u128)> = done
            .iter()
            .flat_map(|(batch, outcome)| outcome.acked.iter().map(|&i| (batch[i].id.clone(), record_hash(&batch[i]))))
            .collect();
        if !acked.is_empty() {
            // Commit before anything else: this is the only write of record state.
            let changes = Commit {
                replace: self.replace,
                ..Commit::upserts(&acked, &self.context.destination)
            };
            let generation = store.commit(lock, &changes).await?;
            // After a commit that replaced the state, the table holds exactly this run's records.
            committed.generation = match std::mem::take(&mut self.replace) {
                true => Some(generation),
                false => committed.generation.filter(|g| generation == g + 1).map(|_| generation),
            };
            committed.entries.extend(acked.iter().map(|(id, hash)| IndexEntry {
                key: id_key(id),
                hash: *hash,
            }));
        }
        counts.sent += acked.len() as u64;
        let mut rejected: Vec<StoredRejection> = Vec::new();
        let mut failed = 0;
        for (batch, outcome) in done {
            rejected.extend(outcome.rejected.iter().map(|(i, reason)| StoredRejection {
                stage: RejectionStage::Destination,
                record_id: Some(batch[*i].id.clone()),
                position: format!("id {}", shorten(&batch[*i].id, MAX_QUOTED_CHARS)),
                reason: reason.clone(),
            }));
            failed += outcome.failed.len();
            if let (Some(reason), None) = (outcome.fatal, &self.fatal) {
                tracing::error!(sync = %sync.name(), %reason, "stopping: no new batches will start");
                self.fatal = Some(reason);
                stop.cancel();
            }
        }
        counts.rejected += rejected.len() as u64;
        if !rejected.is_empty() {
            store.add_rejections(run_id, sync.name(), &rejected).await?;
        }
        self.progress.inc((acked.len() + rejected.len() + failed) as u64);
        Ok(())
    }
}

/// One turn of the delivery loop.
enum Step {
    Finished(Option<(Vec<Record>, BatchOutcome)>),
    Flush,
    Abandon,
    LockLost,
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn progress_bar(enabled: bool, total: u64, name: &str) -> ProgressBar {
    if !enabled || total == 0 {
        return ProgressBar::hidden();
    }
    // ProgressDrawTarget::stderr draws nothing when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} records {per_sec} eta {eta}") {
        bar.set_style(style);
    }
    bar.set_prefix(name.to_string());
    bar
}

#[derive(Clone, Debug, Serialize)]
pub struct PreviewRequest {
    pub method: &'static str,
    pub url: String,
    pub body: serde_json::Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct Preview {
    pub sync: String,
    pub destination: String,
    pub counts: RunCounts,
    pub to_send: usize,
    pub requests: Vec<PreviewRequest>,
    pub rejections: Vec<StoredRejection>,
    /// As in [`RunReport::state_was_for`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_was_for: Option<String>,
}

/// A dry run: the plan and the first `limit` requests exactly as they would be sent.
pub async fn preview(sync: &SyncJob, store: &dyn StateStore, limit: usize) -> Result<Preview, Error> {
    let (stored, state_was_for) = sync.load_state(store).await?;
    let plan = plan(sync, &stored, false).await?;
    let batch_size = sync.destination.capabilities().max_batch_records.max(1);
    let mut requests = Vec::new();
    if limit > 0 {
        let mut rx = planned_batches(sync, &plan, batch_size, Some(limit));
        while let Some(batch) = rx.recv().await {
            let batch = batch?;
            let refs: Vec<&Record> = batch.iter().collect();
            let request = sync.destination.prepare(&refs)?;
            let body = serde_json::from_slice(&request.body).map_err(DestinationError::Encode)?;
            requests.push(PreviewRequest {
                method: request.method,
                url: request.url,
                body,
            });
        }
    }
    Ok(Preview {
        sync: sync.name().to_string(),
        destination: sync.destination.describe(),
        to_send: plan.to_send(),
        counts: plan.counts,
        requests,
        rejections: plan.rejections.into_iter().take(100).collect(),
        state_was_for,
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct TestExchange {
    pub method: &'static str,
    pub url: String,
    pub body: serde_json::Value,
    pub status: Option<u16>,
    pub response: String,
}

/// Sends the first `records` valid records once each, without retries and without touching state.
pub async fn test_send(sync: &SyncJob, records: usize) -> Result<Vec<TestExchange>, Error> {
    let compiled = sync.compile().await?;
    let mut stream = sync.source.stream(Arc::new(compiled.columns().to_vec()));
    let mut picked: Vec<Record> = Vec::new();
    while picked.len() < records {
        let Some(batch) = stream.next().await else { break };
        compiled.map_batch(&batch?, |mapped| {
            if let Ok(r) = mapped {
                if picked.len() < records {
                    picked.push(r);
                }
            }
        });
    }
    drop(stream);
    let batch_size = sync.destination.capabilities().max_batch_records.max(1);
    let mut exchanges = Vec::new();
    for chunk in picked.chunks(batch_size) {
        let refs: Vec<&Record> = chunk.iter().collect();
        let request = sync.destination.prepare(&refs)?;
        let attempt = sync.destination.send(&request).await;
        let body = serde_json::from_slice(&request.body).map_err(DestinationError::Encode)?;
        let (status, response) = match &attempt {
            Attempt::Response { status, body, .. } => (Some(*status), body.clone()),
            Attempt::Transport(e) => (None, e.clone()),
        };
        exchanges.push(TestExchange {
            method: request.method,
            url: request.url,
            body,
            status,
            response,
        });
    }
    Ok(exchanges)
}

/// How long a run took, for summaries.
pub fn human_duration(ms: u64) -> String {
    let d = Duration::from_millis(ms);
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
