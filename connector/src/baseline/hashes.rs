//! The default baseline: a hash per identity in the state store. Pass 1 hashes every row
//! straight from the source's columns (`snapshot.rs`), then diffs against the stored hashes by
//! merging two arrays sorted by id key ([`crate::diff`]). Records of new and changed rows are
//! kept for pass 2 while they fit a budget (`kept.rs`); past it, pass 2 reads the source again
//! and maps only the selected rows. Commits go through the run lock's own session.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use super::kept::Kept;
use super::narrowed;
use super::order::{Phase, SendOrder};
use super::plan::reject_duplicates;
use super::snapshot::{read_snapshot, CursorPass, Priorities, Snapshot};
use super::{Baseline, BaselineRun, CommitAt, Outgoing, Plan, PlanInput, Records, Start};
use crate::config::{Identity, Mode};
use crate::cursor::scope::Asked;
use crate::cursor::{CursorRead, CursorRun, Decision};
use crate::diff;
use crate::error::Error;
use crate::hash::{id_key, record_hash};
use crate::mapping::CompiledMapping;
use crate::panic::lock;
use crate::payload::{self, FieldChange};
use crate::priority::PriorityColumn;
use crate::record::Record;
use crate::source::Source;
use crate::spec::Mapping;
use crate::state::{
    self, Commit, IndexDelta, IndexEntry, RunCounts, Sent, SharedLookup, StateStore, StoredCursor, StoredRejection, StoredState,
    SuppressReason,
};

/// The state store's hashes.
pub struct StateHashes;

/// The sync's stored state, if it is for this destination. State kept for another one (the
/// mapping now points at another workspace, object or type) is set aside: the run sends
/// everything and its first commit replaces it. The other destination is returned.
pub async fn load_state(store: &dyn StateStore, sync: &str, here: &str) -> Result<(StoredState, Option<String>), Error> {
    let stored = store.load(sync).await?;
    match &stored.destination {
        Some(there) if there != here => {
            let there = there.clone();
            tracing::info!(sync = %sync, stored_for = %there, now = %here, "state is for another destination; sending everything");
            Ok((stored.set_aside(), Some(there)))
        }
        _ => Ok((stored, None)),
    }
}

/// What a plan reads besides the baseline.
struct Reading<'a> {
    mapping: &'a Mapping,
    source: &'a dyn Source,
    store: &'a dyn StateStore,
    identity: Identity,
    asked: Asked,
}

/// What a cursor made of pass 1: the run's scope, what the read learnt, and on a narrowed
/// mirror run every row's identity (with the number of rows).
#[derive(Default)]
struct Narrowing {
    decision: Option<Decision>,
    read: Option<CursorRead>,
    identities: Option<(Vec<IndexEntry>, u64)>,
}

impl Narrowing {
    fn narrowed(&self) -> bool {
        self.decision.as_ref().is_some_and(|d| d.since().is_some())
    }
}

#[async_trait::async_trait]
impl Baseline for StateHashes {
    async fn plan(&self, input: PlanInput<'_>) -> Result<Plan, Error> {
        let PlanInput {
            mapping,
            source,
            store,
            start,
            identity,
            full,
            full_diff,
            keep_budget,
            fence,
        } = input;
        let reading = Reading {
            mapping,
            source,
            store,
            identity,
            asked: Asked { full, full_diff },
        };
        let here = mapping.destination.fingerprint();
        if fence.is_none() {
            return plan_dry(reading, start.await?, &here).await;
        }
        let (loaded, start, stored_cursor) = tokio::join!(load_state(store, &mapping.name, &here), start, store.cursor(&mapping.name));
        let (loaded, mut start) = (loaded?, start?);
        diff::check_drift(loaded.0.schema.as_deref(), start.compiled.columns())?;
        start.settle(loaded.0.schema.as_deref());
        pass1(&reading, loaded, start, (stored_cursor?, &here), keep_budget).await
    }
}

/// Pass 1 once state is loaded: the run's cursor decided, the source read (narrowed or not,
/// with every identity on a narrowed mirror run), and the diff.
async fn pass1(
    reading: &Reading<'_>,
    (mut stored, state_was_for): (StoredState, Option<String>),
    start: Start,
    (stored_cursor, here): (Option<StoredCursor>, &str),
    keep_budget: usize,
) -> Result<Plan, Error> {
    let usable = !stored.replace && state_was_for.is_none() && !stored.index.is_empty();
    let decision = narrowed::decide(&start, stored_cursor, (reading.asked, usable), here);
    let mut cursor_read = decision.as_ref().map(CursorRead::new);
    let (mut counts, mut rejections) = (RunCounts::default(), Vec::new());
    // Shared with the hashing threads for the read, which tell the rows that differ from it.
    let index = Arc::new(std::mem::take(&mut stored.index));
    let kept = Kept::new(keep_budget, Some(&index), reading.asked.full);
    let rows = narrowed::rows(reading.source, &start.compiled, decision.as_ref(), start.priority.as_ref());
    let pass = cursor_read.as_mut().zip(decision.as_ref()).map(|(read, d)| CursorPass {
        read,
        column: Arc::from(d.column.name.as_str()),
        stored: Arc::new(SharedLookup::new(Arc::clone(&index))),
    });
    let every_identity = decision.as_ref().is_some_and(|d| d.since().is_some()) && reading.mapping.mode == Mode::Mirror;
    let read = read_snapshot(
        rows,
        (&start.compiled, Arc::clone(&start.held), priority_column(&start)),
        kept,
        pass,
        &mut counts,
        &mut rejections,
    );
    let (snapshot, identities) = match every_identity {
        true => {
            let (snapshot, identities) = tokio::join!(read, narrowed::every_identity(reading.source, &start.compiled));
            (snapshot?, Some(identities?))
        }
        false => (read.await?, None),
    };
    // Every thread that shared it is done; a copy is made only if one were not.
    stored.index = Arc::try_unwrap(index).unwrap_or_else(|shared| (*shared).clone());
    let narrowing = Narrowing {
        decision,
        read: cursor_read,
        identities,
    };
    finish(reading, (stored, state_was_for), start, snapshot, (counts, rejections), narrowing).await
}

/// The priority column's name, for the hashing threads.
fn priority_column(start: &Start) -> Option<Arc<str>> {
    start.priority.as_ref().map(|p| Arc::from(p.name.as_str()))
}

/// Pass 1 of a dry run, which keeps no records: the stored state is loaded while the snapshot
/// is read, rather than before, unless the read depends on it (a cursor's watermark, the type
/// of a column with no value).
async fn plan_dry(reading: Reading<'_>, mut start: Start, here: &str) -> Result<Plan, Error> {
    let sync = reading.mapping.name.as_str();
    if start.cursor.is_some() || start.compiled.has_untyped_columns() {
        let (loaded, stored_cursor) = tokio::join!(load_state(reading.store, sync, here), reading.store.cursor(sync));
        let loaded = loaded?;
        diff::check_drift(loaded.0.schema.as_deref(), start.compiled.columns())?;
        start.settle(loaded.0.schema.as_deref());
        return pass1(&reading, loaded, start, (stored_cursor?, here), 0).await;
    }
    let (mut counts, mut rejections) = (RunCounts::default(), Vec::new());
    let (compiled, held) = (Arc::clone(&start.compiled), Arc::clone(&start.held));
    let rows = narrowed::rows(reading.source, &compiled, None, start.priority.as_ref());
    let read = read_snapshot(
        rows,
        (&compiled, held, priority_column(&start)),
        Kept::none(),
        None,
        &mut counts,
        &mut rejections,
    );
    let (loaded, snapshot) = tokio::join!(load_state(reading.store, sync, here), read);
    let loaded = loaded?;
    // Checked after the read, and still before anything could be sent.
    diff::check_drift(loaded.0.schema.as_deref(), start.compiled.columns())?;
    finish(&reading, loaded, start, snapshot?, (counts, rejections), Narrowing::default()).await
}

/// The diff of what pass 1 read against `stored`.
async fn finish(
    reading: &Reading<'_>,
    (stored, state_was_for): (StoredState, Option<String>),
    start: Start,
    snapshot: Snapshot,
    (mut counts, mut rejections): (RunCounts, Vec<StoredRejection>),
    narrowing: Narrowing,
) -> Result<Plan, Error> {
    let (mapping, full) = (reading.mapping, reading.asked.full);
    let Start {
        compiled,
        held,
        from_source,
        priority,
        ..
    } = start;
    let to_delete = gone(reading, &stored, &snapshot, &held, &narrowing, &mut counts).await?;
    let mut selection = diff::select(&snapshot.seen, &stored.index, mapping.mode, full);
    (counts.new, counts.changed, counts.unchanged) = (selection.new, selection.changed, selection.unchanged);
    // Pass 2 reads what pass 1 read: the rows past the cursor, or every row.
    let reread = narrowing.decision.clone();
    let cursor = cursor_outcome(narrowing, &stored, &selection, &mut counts);
    let Snapshot {
        seen,
        rejected_ids,
        duplicates,
        kept,
        priorities,
    } = snapshot;
    drop(seen);
    let remapped = remapped(reading, &compiled, &selection.stale, kept.as_deref()).await?;
    let order = send_order(&mut selection, remapped, (priorities, priority.as_ref()));
    reject_duplicates(
        (reading.source, &compiled, reading.identity),
        &duplicates,
        &rejected_ids,
        &mut counts,
        &mut rejections,
    )
    .await?;
    let (in_state, to_send) = (stored.index.len(), selection.to_send.len());
    let planned = (selection.to_send, order);
    let plan = Plan {
        kept: Mutex::new(kept),
        compiled,
        counts,
        rejections,
        to_send,
        to_delete: Arc::new(to_delete),
        suppress_from_source: from_source,
        in_state,
        sends_everything: in_state == 0,
        state_was_for,
        baseline: Box::new(HashesRun::new(mapping, planned, stored, reread)),
        cursor,
    };
    Ok(plan.logged(&mapping.name))
}

/// Of the stale keys, sorted, those whose record a run of another mapping sent: their hash
/// changed because the mapping did, so they go with the resends. Where pass 1 kept the records
/// and state kept the payloads, a record whose source changed too stays a stale copy.
async fn remapped(reading: &Reading<'_>, compiled: &CompiledMapping, stale: &[u128], kept: Option<&[Record]>) -> Result<Vec<u128>, Error> {
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    let compare = kept.filter(|_| reading.mapping.keep_payloads);
    let sent = reading
        .store
        .sent_by_another_mapping(&reading.mapping.name, &compiled.fingerprint(), compare.is_some())
        .await?;
    let now: HashMap<u128, &Record> = compare.into_iter().flatten().map(|r| (id_key(&r.id), r)).collect();
    let fields: HashSet<&str> = compiled.field_names().collect();
    let mut keys: Vec<u128> = sent
        .iter()
        .filter_map(|(id, payload)| {
            let key = id_key(id);
            stale.binary_search(&key).ok()?;
            let before = payload.as_deref().and_then(|p| payload::decode(id, p).ok());
            match (before, now.get(&key)) {
                (Some(before), Some(after)) if source_changed(&before, after, &fields) => None,
                _ => Some(key),
            }
        })
        .collect();
    keys.sort_unstable();
    Ok(keys)
}

/// Whether a record's source changed, besides its mapping: a value it shared with its last
/// acknowledged payload differs, or it lost a field the mapping still sends. A field only the
/// record now has is taken for the mapping's.
fn source_changed(before: &Record, after: &Record, fields: &HashSet<&str>) -> bool {
    payload::field_changes(before, after).iter().any(|change| match change {
        FieldChange::Added { .. } => false,
        FieldChange::Removed { field, .. } => fields.contains(field.as_str()),
        FieldChange::Changed { .. } | FieldChange::List { .. } => true,
    })
}

/// The order pass 2 sends the selection in: `remapped` moved from the stale copies to the
/// resends; by priority, with one.
fn send_order(
    selection: &mut diff::Selection,
    remapped: Vec<u128>,
    (priorities, priority): (Option<Priorities>, Option<&PriorityColumn>),
) -> SendOrder {
    let mut stale = std::mem::take(&mut selection.stale);
    let mut resend = std::mem::take(&mut selection.resend);
    if !remapped.is_empty() {
        stale.retain(|k| remapped.binary_search(k).is_err());
        resend.extend(remapped);
        resend.sort_unstable();
    }
    let order = SendOrder::new(&selection.to_send, stale, resend);
    match (priorities, priority) {
        (Some(priorities), Some(column)) => order.with_priority(&priorities, column.order),
        _ => order,
    }
}

/// The run's cursor, and the counts a narrowed read changes: the records it did not read are
/// unchanged by assumption, and on a mirror run `source` counts every row's identity.
fn cursor_outcome(
    narrowing: Narrowing,
    stored: &StoredState,
    selection: &diff::Selection,
    counts: &mut RunCounts,
) -> Option<Arc<CursorRun>> {
    if narrowing.narrowed() {
        let read_in_state = selection.changed + selection.unchanged + counts.gone;
        counts.unchanged += (stored.index.len() as u64).saturating_sub(read_in_state);
        counts.narrowed = true;
        if let Some((_, rows)) = &narrowing.identities {
            counts.source = *rows;
        }
    }
    let cursor = Arc::new(narrowing.read?.finish(narrowing.decision?, &selection.to_send));
    counts.changed_without_cursor = cursor.changed_without_cursor();
    Some(cursor)
}

/// What left the source, counted; in mirror mode, the ids to delete. A suppressed identity is
/// neither sent nor gone: its record, if any, stays where it is. A narrowed read finds what
/// left from every row's identity, read on a mirror run; other modes look for nothing.
async fn gone(
    reading: &Reading<'_>,
    stored: &StoredState,
    snapshot: &Snapshot,
    held: &HashSet<u128>,
    narrowing: &Narrowing,
    counts: &mut RunCounts,
) -> Result<Vec<String>, Error> {
    let present = match (&narrowing.identities, narrowing.narrowed()) {
        (Some((identities, _)), _) => identities.as_slice(),
        (None, true) => return Ok(Vec::new()),
        (None, false) => snapshot.seen.as_slice(),
    };
    let mut gone = diff::gone_keys(&stored.index, present, &snapshot.duplicates, &snapshot.rejected_ids);
    gone.retain(|key| !held.contains(key));
    if !reading.asked.full {
        counts.gone = gone.len() as u64;
    }
    // Even a full resync deletes in mirror mode: what ebb sent and the source no longer has.
    match reading.mapping.mode {
        crate::config::Mode::Mirror => ids_in_state(reading.store, &reading.mapping.name, gone).await,
        _ => Ok(Vec::new()),
    }
}

/// The ids of `keys`, as state holds them (the index has only their digests), sorted.
async fn ids_in_state(store: &dyn StateStore, sync: &str, keys: Vec<u128>) -> Result<Vec<String>, Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let keys: HashSet<u128> = keys.into_iter().collect();
    let mut ids: Vec<String> = store
        .records(sync)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| keys.contains(&id_key(id)))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// What this run has committed, to bring the cached index up to date at the end.
struct Committed {
    /// The commit counter after our last commit, while every commit was ours (each one
    /// advanced the counter by exactly one); `None` once anything else wrote.
    generation: Option<i64>,
    entries: Vec<IndexEntry>,
    /// Keys this run deleted, to leave out of the cached index.
    removed: Vec<u128>,
}

/// One run's side of the state store's hashes.
struct HashesRun {
    sync: String,
    /// The keys of the records to send, sorted.
    to_send: Arc<Vec<u128>>,
    /// Which of them go first.
    order: Arc<SendOrder>,
    keep_payloads: bool,
    /// The next commit replaces the stored state (see [`Commit::replace`]); only the first does.
    replace: Mutex<bool>,
    committed: Mutex<Committed>,
    /// The state the plan was made against, for the cached index at the end.
    stored: Mutex<Option<StoredState>>,
    /// With a cursor, how pass 1 read: pass 2 reads the same rows again.
    reread: Option<Decision>,
}

impl HashesRun {
    fn new(mapping: &Mapping, (to_send, order): (Vec<u128>, SendOrder), stored: StoredState, reread: Option<Decision>) -> HashesRun {
        HashesRun {
            sync: mapping.name.clone(),
            to_send: Arc::new(to_send),
            order: Arc::new(order),
            keep_payloads: mapping.keep_payloads,
            replace: Mutex::new(stored.replace),
            committed: Mutex::new(Committed {
                generation: stored.generation,
                entries: Vec::new(),
                removed: Vec::new(),
            }),
            stored: Mutex::new(Some(stored)),
            reread,
        }
    }
}

impl HashesRun {
    /// Records pass 1 kept, already in sending order: only those planned, once each.
    fn kept_stream(&self, records: Vec<Record>) -> Records {
        let mut wanted = planned(Arc::clone(&self.to_send));
        let records: Vec<Record> = records.into_iter().filter(|r| wanted(r)).collect();
        futures::stream::once(async move { Ok(records) }).boxed()
    }

    /// Pass 2's records read from the source again: one read a phase, each started only once
    /// the one before has ended. A priority band is sorted once read; a group without a
    /// priority goes in source order, batch by batch.
    fn read_again(&self, phases: Vec<Phase>, source: &Arc<dyn Source>, compiled: &Arc<CompiledMapping>) -> Records {
        let mut wanted = planned(Arc::clone(&self.to_send));
        let (source, compiled, reread, order) = (
            Arc::clone(source),
            Arc::clone(compiled),
            self.reread.clone(),
            Arc::clone(&self.order),
        );
        let records = futures::stream::iter(phases).flat_map(move |phase| {
            let rows = narrowed::rows(source.as_ref(), &compiled, reread.as_ref(), None);
            let compiled = Arc::clone(&compiled);
            let keys = Arc::clone(&phase.keys);
            let mapped = rows.map(move |batch| Ok::<_, Error>(map_phase(&compiled, &batch?, &keys)));
            match phase.sorted_after {
                false => mapped.boxed(),
                true => sorted_band(mapped, Arc::clone(&order)),
            }
        });
        records
            .map(move |chunk| Ok(chunk?.into_iter().filter(|r| wanted(r)).collect()))
            .boxed()
    }
}

/// The records of a batch whose keys are `keys` (sorted).
fn map_phase(compiled: &CompiledMapping, batch: &crate::source::SourceBatch, keys: &[u128]) -> Vec<Record> {
    let mut out = Vec::new();
    compiled.map_selected(
        batch,
        |id| keys.binary_search(&id_key(id)).is_ok(),
        |_, mapped| out.extend(mapped.ok()),
    );
    out
}

/// A priority band's records, all read, then sorted into sending order as one chunk.
fn sorted_band(
    mut mapped: impl futures::Stream<Item = Result<Vec<Record>, Error>> + Send + Unpin + 'static,
    order: Arc<SendOrder>,
) -> Records {
    futures::stream::once(async move {
        let mut band = Vec::new();
        while let Some(chunk) = mapped.next().await {
            band.extend(chunk?);
        }
        order.sort(&mut band);
        Ok(band)
    })
    .boxed()
}

/// Whether a record is one pass 2 sends: planned, and not sent yet in this run (a source that
/// changed between passes may give a row twice: it is sent once).
fn planned(to_send: Arc<Vec<u128>>) -> impl FnMut(&Record) -> bool + Send {
    let mut emitted = HashSet::new();
    move |record| {
        let key = id_key(&record.id);
        to_send.binary_search(&key).is_ok() && emitted.insert(key)
    }
}

#[async_trait::async_trait]
impl BaselineRun for HashesRun {
    fn kind(&self) -> &'static str {
        "in_process"
    }

    fn records(&self, kept: Option<Vec<Record>>, source: &Arc<dyn Source>, compiled: &Arc<CompiledMapping>) -> Outgoing {
        if let Some(mut records) = kept {
            self.order.sort(&mut records);
            let (after, before): (Vec<Record>, Vec<Record>) = records.into_iter().partition(|r| self.order.is_resend(r));
            return Outgoing {
                before_deletes: self.kept_stream(before),
                after_deletes: self.kept_stream(after),
            };
        }
        Outgoing {
            before_deletes: self.read_again(self.order.phases(false), source, compiled),
            after_deletes: self.read_again(self.order.phases(true), source, compiled),
        }
    }

    async fn commit(&self, at: &CommitAt<'_>, upserted: &[&Record], deleted: &[String]) -> Result<(), Error> {
        let acked: Vec<(String, u128)> = upserted.iter().map(|r| (r.id.clone(), record_hash(r))).collect();
        let payloads: Vec<Vec<u8>> = match self.keep_payloads {
            true => upserted.iter().map(|r| payload::encode(r)).collect(),
            false => Vec::new(),
        };
        let replace = *lock(&self.replace);
        let changes = Commit {
            upserted: &acked,
            deleted,
            destination: at.destination,
            replace,
            // A record mirror deleted is never sent again, even if its row comes back.
            suppress_deleted: Some((SuppressReason::Mirror, Some(at.run_id))),
            sent: Some(Sent {
                run: at.run_id,
                payloads: &payloads,
            }),
        };
        let generation = at.store.commit(at.lock, &changes).await?;
        *lock(&self.replace) = false;
        let mut committed = lock(&self.committed);
        // After a commit that replaced the state, the table holds exactly this run's records.
        committed.generation = match replace {
            true => Some(generation),
            false => committed.generation.filter(|g| generation == g + 1).map(|_| generation),
        };
        committed.removed.extend(deleted.iter().map(|id| id_key(id)));
        committed.entries.extend(acked.iter().map(|(id, hash)| IndexEntry {
            key: id_key(id),
            hash: *hash,
        }));
        Ok(())
    }

    /// Brings the cached index up to date. Only the lock's holder writes it; a run that lost the
    /// lock leaves it stale, and the next run rebuilds it from the records table.
    async fn finish(&self, at: &CommitAt<'_>) {
        if at.lock.is_lost() {
            return;
        }
        let Some(stored) = lock(&self.stored).take() else { return };
        let (generation, entries, removed) = {
            let mut committed = lock(&self.committed);
            let entries = std::mem::take(&mut committed.entries);
            (committed.generation, entries, std::mem::take(&mut committed.removed))
        };
        let Some(generation) = generation else { return };
        let delta = IndexDelta::new(entries, removed);
        if stored.cached && delta.is_empty() {
            return;
        }
        let saved = match (stored.cached && !stored.replace, stored.generation) {
            (true, Some(from)) if state::as_delta(stored.deltas, stored.index.len(), delta.len()) => {
                at.store.save_index_delta(&self.sync, (from, generation), &delta).await
            }
            _ => {
                let index = stored.index.applied(&delta);
                drop(stored);
                at.store.save_index(&self.sync, generation, &index).await
            }
        };
        match saved {
            Ok(saved) => tracing::debug!(sync = %self.sync, saved, changes = delta.len(), "record index cache"),
            // Only a cache: the next run rebuilds it from the records table.
            Err(e) => tracing::warn!(sync = %self.sync, error = %e, "could not save the record index cache"),
        }
    }
}
