//! One run's side of the warehouse's baseline: which records of the diff pass 2 sends, and
//! their commits, each fenced by the run lock's token.
//!
//! A record's row key and warehouse hash are what its bookkeeping keeps once it is
//! acknowledged; they are not part of the record. Pass 2 notes them here, by id key, as it
//! hands each record out (`pending`), and the commit takes them back: only the records between
//! pass 2 and their commit are noted at any time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use super::read::{row_states, RowState};
use super::tables::{Coverage, DiffQuery, WarehouseCommit, WarehouseError, WarehouseTables};
use crate::baseline::{BaselineRun, CommitAt, Outgoing};
use crate::config::Mode;
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::CompiledMapping;
use crate::panic::lock;
use crate::record::Record;
use crate::source::Source;
use crate::spec::Mapping;
use crate::state::{Commit, SuppressReason};

/// What pass 1 planned of the warehouse's part of the run.
pub(super) struct WarehousePlan {
    pub tables: Arc<dyn WarehouseTables>,
    /// Pass 2 runs the same query again when pass 1 could not keep its records.
    pub query: Arc<DiffQuery>,
    /// What the hashes are made with, when the stored coverage says otherwise: written with
    /// the run's first commit.
    pub coverage: Option<Coverage>,
    /// The stored records were for another destination: the first commit forgets them.
    pub replace: bool,
    /// Local state holds records of the sync (it diffed in process before): the first commit
    /// forgets them.
    pub forget_local: bool,
    /// The key of each planned delete, by the id it was sent as.
    pub delete_keys: HashMap<String, String>,
}

/// Which rows' records are sent: those the mode sends, but duplicate ids and suppressed ones.
#[derive(Clone)]
struct Wanted {
    mode: Mode,
    skip: Arc<HashSet<u128>>,
    held: Arc<HashSet<u128>>,
}

impl Wanted {
    fn may_want(&self, id: &str) -> bool {
        let key = id_key(id);
        !self.skip.contains(&key) && !self.held.contains(&key)
    }

    fn wants(&self, record: &Record, row: &RowState) -> bool {
        let by_mode = match self.mode {
            Mode::Upsert | Mode::Mirror => true,
            Mode::CreateOnly => !row.known,
            Mode::UpdateOnly => row.known,
        };
        by_mode && self.may_want(&record.id)
    }
}

pub(super) struct WarehouseRun {
    plan: WarehousePlan,
    sync: String,
    wanted: Wanted,
    /// What the bookkeeping knows of each record pass 1 kept, by id key.
    kept_rows: Mutex<HashMap<u128, RowState>>,
    /// The rows of the records pass 2 handed out and no commit has taken yet, by id key.
    pending: Arc<Mutex<HashMap<u128, RowState>>>,
    /// The next commit is the run's first: it writes the coverage and forgets what it must.
    first: Mutex<bool>,
}

impl WarehouseRun {
    pub fn new(
        plan: WarehousePlan,
        mapping: &Mapping,
        skip: HashSet<u128>,
        held: Arc<HashSet<u128>>,
        kept_rows: HashMap<u128, RowState>,
    ) -> WarehouseRun {
        WarehouseRun {
            plan,
            sync: mapping.name.clone(),
            wanted: Wanted {
                mode: mapping.mode,
                skip: Arc::new(skip),
                held,
            },
            kept_rows: Mutex::new(kept_rows),
            pending: Arc::default(),
            first: Mutex::new(true),
        }
    }

    /// The key and hash of each acknowledged upsert's row, with the id it was sent as.
    fn rows_of(&self, upserted: &[&Record]) -> Result<Vec<(String, String, u128)>, WarehouseError> {
        let mut pending = lock(&self.pending);
        upserted
            .iter()
            .map(|record| match pending.remove(&id_key(&record.id)) {
                Some(RowState { key: Some(key), hash, .. }) => Ok((key, record.id.clone(), hash)),
                _ => Err(WarehouseError::BadRow {
                    place: self.plan.tables.describe(),
                    detail: format!("no row of the diff for the acknowledged record {:?} (please report)", record.id),
                }),
            })
            .collect()
    }

    /// In local state: the suppression of what was deleted, and once, the forgetting of the
    /// records the sync kept there before its state moved to the warehouse. First, because a
    /// crash after it deletes again, harmlessly, and one before the warehouse forgets the
    /// record could never suppress it.
    async fn commit_locally(&self, at: &CommitAt<'_>, deleted: &[String], first: bool) -> Result<(), Error> {
        let forget = first && self.plan.forget_local;
        if !forget && deleted.is_empty() {
            return Ok(());
        }
        let changes = Commit {
            upserted: &[],
            deleted,
            destination: at.destination,
            replace: forget,
            suppress_deleted: Some((SuppressReason::Mirror, Some(at.run_id))),
            sent: None,
        };
        at.store.commit(at.lock, &changes).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl BaselineRun for WarehouseRun {
    fn kind(&self) -> &'static str {
        "warehouse"
    }

    fn records(&self, kept: Option<Vec<Record>>, _source: &Arc<dyn Source>, compiled: &Arc<CompiledMapping>) -> Outgoing {
        let (wanted, pending) = (self.wanted.clone(), Arc::clone(&self.pending));
        if let Some(records) = kept {
            let mut rows = std::mem::take(&mut *lock(&self.kept_rows));
            let mut pending = lock(&pending);
            let mut known = std::collections::HashSet::new();
            let mut records: Vec<Record> = records
                .into_iter()
                .filter(|record| {
                    let key = id_key(&record.id);
                    let Some(row) = rows.remove(&key).filter(|row| wanted.wants(record, row)) else {
                        return false;
                    };
                    if row.known {
                        known.insert(key);
                    }
                    pending.insert(key, row);
                    true
                })
                .collect();
            // Stale copies first, as the in-process diff sends them; stable, so each group
            // keeps the database's order.
            records.sort_by_cached_key(|r| !known.contains(&id_key(&r.id)));
            return Outgoing::before_deletes(futures::stream::once(async move { Ok(records) }).boxed());
        }
        let (compiled, place) = (Arc::clone(compiled), self.plan.tables.describe());
        let stream = self.plan.tables.changed(Arc::clone(&self.plan.query));
        let records = stream
            .map(move |batch| {
                let batch = batch?;
                let rows = row_states(&batch, &place)?;
                let mut out = Vec::new();
                let mut pending = lock(&pending);
                compiled.map_selected(
                    &batch,
                    |id| wanted.may_want(id),
                    |row, mapped| match (mapped, rows.get(row)) {
                        (Ok(record), Some(state)) if wanted.wants(&record, state) => {
                            pending.insert(id_key(&record.id), state.clone());
                            out.push(record);
                        }
                        _ => {}
                    },
                );
                Ok(out)
            })
            .boxed();
        Outgoing::before_deletes(records)
    }

    /// Commits to local state first (see [`WarehouseRun::commit_locally`]), then to the
    /// warehouse, with the lock's fencing token in the same statement.
    async fn commit(&self, at: &CommitAt<'_>, upserted: &[&Record], deleted: &[String]) -> Result<(), Error> {
        let rows = self.rows_of(upserted)?;
        let first = std::mem::take(&mut *lock(&self.first));
        self.commit_locally(at, deleted, first).await?;
        let deletes: Vec<String> = deleted.iter().filter_map(|id| self.plan.delete_keys.get(id).cloned()).collect();
        let commit = WarehouseCommit {
            coverage: self.plan.coverage.as_ref().filter(|_| first),
            replace: first && self.plan.replace,
            upserts: &rows,
            deletes: &deletes,
            fence: at.lock.fence(),
        };
        at.lock.check()?;
        self.plan.tables.commit(&self.sync, &commit).await?;
        Ok(())
    }
}
