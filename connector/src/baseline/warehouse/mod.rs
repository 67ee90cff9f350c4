//! The baseline kept in the warehouse (`diff: warehouse`): bookkeeping tables in the source's
//! own database ([`tables`], one implementation per dialect: [`postgres`], its SQL [`sql`]).
//!
//! Pass 1: the warehouse finds the new and changed rows in one query and only those are read,
//! mapped and kept; the gone ones come from a second query. The counts, rejections,
//! duplicates, suppressions and guards are those of the in-process diff, except that an
//! unchanged row is counted without being read. Pass 2 and the commits are `run.rs`'s.

mod bookkeeping;
pub mod postgres;
mod read;
mod run;
pub mod sql;
pub mod tables;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::hashes::load_state;
use super::kept::Kept;
use super::narrowed;
use super::plan::reject_duplicates;
use super::{Baseline, Plan, PlanInput, Start};
use crate::config::{Mode, SourceConfig};
use crate::cursor::scope::Asked;
use crate::cursor::{CursorRead, Decision};
use crate::diff::{self, Duplicate};
use crate::error::Error;
use crate::hash::id_key;
pub use crate::mapping::{KeyPart, RowKey};
use crate::source::postgres::{cursor_condition, PostgresSource};
use crate::spec::Mapping;
use crate::state::{IndexEntry, StoredState};
use read::{read_changed, CursorTrack, Read};
use run::{WarehousePlan, WarehouseRun};
pub use tables::*;

/// The bookkeeping tables a source configuration asks for, if it asks for any.
pub fn tables_for(source: &SourceConfig) -> Option<Arc<dyn WarehouseTables>> {
    match source {
        SourceConfig::Postgres {
            url,
            relation,
            diff: crate::config::DiffMode::Warehouse { state_schema },
            ..
        } => Some(Arc::new(postgres::PgWarehouse::new(
            PostgresSource::new(url.clone(), relation.clone()),
            state_schema.clone(),
        ))),
        _ => None,
    }
}

/// The baseline in the warehouse's bookkeeping tables.
pub struct WarehouseBaseline {
    tables: Arc<dyn WarehouseTables>,
}

impl WarehouseBaseline {
    pub fn new(tables: Arc<dyn WarehouseTables>) -> WarehouseBaseline {
        WarehouseBaseline { tables }
    }
}

/// The mapped columns, `name type` joined with `, `, as the coverage records them.
fn column_list(columns: &[(String, crate::column::ColumnType)]) -> String {
    columns
        .iter()
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait::async_trait]
impl Baseline for WarehouseBaseline {
    fn kept_elsewhere(&self) -> Option<String> {
        Some(self.tables.describe())
    }

    async fn check_access(&self) -> Result<(), Error> {
        // Reads the catalog only: a check creates and writes nothing.
        Ok(self.tables.check_access().await?)
    }

    async fn reset(&self, sync: &str) -> Result<u64, Error> {
        Ok(self.tables.reset(sync).await?)
    }

    /// Local state keeps no records for such a sync: any it has (the sync diffed in process
    /// before) are forgotten by the run's first commit.
    async fn plan(&self, input: PlanInput<'_>) -> Result<Plan, Error> {
        let (mapping, full) = (input.mapping, input.full);
        let here = mapping.destination.fingerprint();
        let (loaded, start, stored_cursor) = tokio::join!(
            load_state(input.store, &mapping.name, &here),
            input.start,
            input.store.cursor(&mapping.name)
        );
        let ((local, _), start) = (loaded?, start?);
        diff::check_drift(local.schema.as_deref(), start.compiled.columns())?;
        let opened = self.tables.open(&mapping.name, input.fence).await?;
        let coverage = Coverage {
            hash_version: WAREHOUSE_HASH_VERSION,
            salt: start.compiled.fingerprint(),
            columns: column_list(start.compiled.columns()),
            destination: here.clone(),
        };
        let state_was_for = stored_for_another(&opened, &coverage);
        let replace = state_was_for.is_some();
        let in_state = if replace { 0 } else { opened.records };
        let same_hashes = opened.coverage.as_ref().is_some_and(|c| c.salt == coverage.salt);
        let asked = Asked {
            full,
            full_diff: input.full_diff,
        };
        let decision = narrowed::decide(&start, stored_cursor?, (asked, !replace && in_state > 0 && same_hashes), &here);
        let query = Arc::new(
            self.diff_query(mapping, &start, &coverage, full || replace, decision.as_ref())
                .await?,
        );
        let mut cursor_read = decision.as_ref().map(CursorRead::new);
        let track = cursor_read.as_mut().zip(decision.as_ref()).map(|(read, d)| CursorTrack {
            read,
            column: d.column.name.clone(),
            mode: mapping.mode,
        });
        let read = read_changed(&start, self.tables.as_ref(), &query, Kept::everything(input.keep_budget), track).await?;
        let gone = self.gone(mapping, &query, replace).await?;
        let planned = WarehousePlan {
            tables: Arc::clone(&self.tables),
            query,
            coverage: (opened.coverage.as_ref() != Some(&coverage)).then_some(coverage),
            replace,
            forget_local: moved_away(&local),
            delete_keys: HashMap::new(),
        };
        let parts = Finish {
            in_state,
            gone,
            full,
            sends_everything: in_state == 0 || full || !same_hashes,
            state_was_for,
            cursor: decision.zip(cursor_read),
        };
        finish((&input.source, mapping, input.identity), start, read, planned, parts).await
    }
}

impl WarehouseBaseline {
    /// The stored records whose row left the source. A narrowed run looks for them only in
    /// mirror mode, which deletes them; state kept for another destination has none.
    async fn gone(&self, mapping: &Mapping, query: &DiffQuery, replace: bool) -> Result<Vec<Gone>, Error> {
        match !replace && (query.narrowed.is_none() || mapping.mode == Mode::Mirror) {
            true => Ok(self.tables.gone(&mapping.name, &query.key).await?),
            false => Ok(Vec::new()),
        }
    }

    /// What this run asks of the warehouse: every row's hash, or only those of a cursor run's
    /// rows; every row whatever its hash when `everything`.
    async fn diff_query(
        &self,
        mapping: &Mapping,
        start: &Start,
        coverage: &Coverage,
        everything: bool,
        decision: Option<&Decision>,
    ) -> Result<DiffQuery, Error> {
        let key = start.compiled.row_key();
        let also = self.tables.duplicate_keys(&key).await?;
        let cursor = decision.map(|d| (d.column.name.clone(), d.column.ty.clone()));
        let narrowed = decision
            .and_then(Decision::since)
            .zip(cursor.as_ref())
            .and_then(|(since, column)| cursor_condition(&since, std::slice::from_ref(column)));
        Ok(DiffQuery {
            sync: mapping.name.clone(),
            key,
            columns: start.compiled.columns().to_vec(),
            salt: coverage.salt.clone(),
            everything,
            also,
            narrowed,
            cursor,
        })
    }
}

/// Whether local state holds records of the sync (it diffed in process before): the run's first
/// commit forgets them.
fn moved_away(local: &StoredState) -> bool {
    !local.index.is_empty()
}

/// The destination the warehouse's state was for, when it was another.
fn stored_for_another(opened: &Opened, now: &Coverage) -> Option<String> {
    let stored = opened.coverage.as_ref()?;
    (stored.destination != now.destination).then(|| stored.destination.clone())
}

/// What the plan is made of besides the rows read.
struct Finish {
    in_state: u64,
    gone: Vec<Gone>,
    full: bool,
    sends_everything: bool,
    state_was_for: Option<String>,
    /// The run's cursor, and what pass 1 learnt of it.
    cursor: Option<(Decision, CursorRead)>,
}

/// The rows of repeated keys that are duplicates of one id, rejected every one; the others
/// are counted as the rows they are.
fn duplicates(read: &mut Read) -> (Vec<Duplicate>, HashSet<u128>) {
    let mut entries: Vec<IndexEntry> = read.repeated.iter().map(|(e, _, _)| *e).collect();
    entries.sort_unstable_by_key(|e| e.key);
    let duplicates = diff::take_duplicates(&mut entries, &read.rejected_ids);
    let skip: HashSet<u128> = duplicates.iter().map(|d| d.key).collect();
    for (entry, known, _) in &read.repeated {
        match (skip.contains(&entry.key), known) {
            (true, _) => {}
            (false, true) => read.counts.changed += 1,
            (false, false) => read.counts.new += 1,
        }
    }
    (duplicates, skip)
}

async fn finish(
    (source, mapping, identity): (&&dyn crate::source::Source, &Mapping, crate::config::Identity),
    start: Start,
    mut read: Read,
    mut planned: WarehousePlan,
    parts: Finish,
) -> Result<Plan, Error> {
    let Start {
        compiled,
        held,
        from_source,
        ..
    } = start;
    let (duplicates, skip) = duplicates(&mut read);
    let mut ids = read.rejected_ids.clone();
    ids.extend(read.repeated.iter().map(|(e, _, id)| (e.key, id.clone())));
    ids.sort_unstable();
    let mut counts = std::mem::take(&mut read.counts);
    reject_duplicates((*source, &compiled, identity), &duplicates, &ids, &mut counts, &mut read.rejections).await?;
    let gone_anywhere = parts.gone.len() as u64;
    // A suppressed identity is neither sent nor gone: its record, if any, stays where it is.
    let gone: Vec<_> = parts.gone.into_iter().filter(|g| !held.contains(&id_key(&g.sent_as))).collect();
    if !parts.full {
        counts.gone = gone.len() as u64;
    }
    counts.unchanged = parts.in_state.saturating_sub(gone_anywhere + read.known_rows);
    counts.source = read.rows + counts.unchanged;
    counts.narrowed = planned.query.narrowed.is_some();
    let cursor = parts.cursor.map(|(decision, read)| Arc::new(read.finish_noted(decision)));
    counts.changed_without_cursor = cursor.as_ref().and_then(|c| c.changed_without_cursor());
    let mut to_delete = Vec::new();
    if mapping.mode == Mode::Mirror {
        to_delete = gone.iter().map(|g| g.sent_as.clone()).collect();
        to_delete.sort_unstable();
        planned.delete_keys = gone.into_iter().map(|g| (g.sent_as, g.key)).collect();
    }
    let to_send = match mapping.mode {
        Mode::Upsert | Mode::Mirror => counts.new + counts.changed,
        Mode::CreateOnly => counts.new,
        Mode::UpdateOnly => counts.changed,
    } as usize;
    tracing::debug!(sync = %mapping.name, read = read.rows, "rows read out of the warehouse's diff");
    let plan = Plan {
        kept: Mutex::new(read.kept),
        compiled,
        counts,
        rejections: read.rejections,
        to_send,
        to_delete: Arc::new(to_delete),
        suppress_from_source: from_source,
        in_state: parts.in_state as usize,
        sends_everything: parts.sends_everything,
        state_was_for: parts.state_was_for,
        baseline: Box::new(WarehouseRun::new(planned, mapping, skip, held, read.kept_rows)),
        cursor,
    };
    Ok(plan.logged(&mapping.name))
}
