//! `preview` runs the plan and renders requests without sending; `test_send` sends a few
//! records once, without retries and without touching state.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use super::explain::{explain, Explanation};
use super::plan::plan_preview;
use super::SyncJob;
use crate::destination::{Attempt, DestinationError};
use crate::error::Error;
use crate::record::{Change, Record};
use crate::ship::batches::planned_batches;
use crate::state::{RunCounts, StateStore, StoredRejection};

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
    /// Every identity a run would delete (mirror mode), sorted.
    pub to_delete: Vec<String>,
    /// The guards in force, one line each (mirror mode has a default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<String>,
    /// The guard a run would be blocked by, if one would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    pub requests: Vec<PreviewRequest>,
    pub rejections: Vec<StoredRejection>,
    /// As in [`super::RunReport::state_was_for`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_was_for: Option<String>,
    /// As in [`super::RunReport::folders`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folders: Option<crate::folders::SnapshotFolders>,
    /// With `--explain`: the first records a run would send, then the first it would delete,
    /// each with what changed since its last acknowledged payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Vec<Explanation>>,
    /// As in [`super::RunReport::cursor`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<crate::cursor::CursorSummary>,
    /// The requests a run would make, and their time at the configured pace.
    pub cost: super::cost::Cost,
}

/// What a preview shows besides the counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct PreviewOptions {
    /// Requests to render; with `explain`, records to explain (and the requests that carry them).
    pub limit: usize,
    pub explain: bool,
    /// Read every row, even with a cursor (`--full-diff`).
    pub full_diff: bool,
}

/// A dry run: the plan and the first `limit` requests exactly as they would be sent.
pub async fn preview(sync: &SyncJob, store: &dyn StateStore, limit: usize) -> Result<Preview, Error> {
    let options = PreviewOptions {
        limit,
        explain: false,
        full_diff: false,
    };
    preview_with(sync, store, options).await
}

/// A dry run, with explanations if asked for.
pub async fn preview_with(sync: &SyncJob, store: &dyn StateStore, options: PreviewOptions) -> Result<Preview, Error> {
    // A preview renders a few requests at most: reading their rows again is cheaper than
    // keeping every changed record, so it keeps none, and loads the state while it reads.
    let plan = plan_preview(sync, store, options.full_diff).await?;
    let state_was_for = plan.state_was_for.clone();
    let blocked = super::guard(sync, &plan, &super::AllowGuards::None).map(|b| b.to_string());
    let capabilities = sync.destination.capabilities();
    let batches = match options.explain {
        true => options.limit.div_ceil(capabilities.max_batch_records.max(1)),
        false => options.limit,
    };
    let (requests, upserts) = render(sync, &plan, batches).await?;
    let explain = match options.explain {
        true => {
            let upserts: Vec<&Record> = upserts.iter().take(options.limit).collect();
            let deletes = &plan.to_delete()[..plan.to_delete().len().min(options.limit)];
            Some(explain(sync, store, &upserts, deletes).await?)
        }
        false => None,
    };
    let cursor = plan.cursor.as_ref().map(|c| c.summary());
    Ok(Preview {
        cursor,
        cost: super::cost::Cost::of(sync, plan.to_send(), plan.to_delete().len()),
        sync: sync.name().to_string(),
        destination: sync.destination.describe(),
        to_send: plan.to_send(),
        to_delete: plan.to_delete().to_vec(),
        guards: sync.mapping.guards.describe(sync.mapping.mode == crate::config::Mode::Mirror),
        blocked,
        counts: plan.counts,
        requests,
        rejections: plan.rejections.into_iter().take(100).collect(),
        state_was_for,
        folders: sync.source.folders(),
        explain,
    })
}

/// The first `batches` requests a run would send, and the records they upsert.
async fn render(sync: &SyncJob, plan: &super::Plan, batches: usize) -> Result<(Vec<PreviewRequest>, Vec<Record>), Error> {
    let (mut requests, mut upserts) = (Vec::new(), Vec::new());
    if batches == 0 {
        return Ok((requests, upserts));
    }
    let capabilities = sync.destination.capabilities();
    let (mut rx, producer) = planned_batches(&sync.source, plan, &capabilities, Some(batches));
    while let Some(batch) = rx.recv().await {
        let refs: Vec<&Change> = batch.iter().collect();
        let request = sync.destination.prepare(&refs)?;
        // A delete has no body.
        let body = match request.body.is_empty() {
            true => serde_json::Value::Null,
            false => serde_json::from_slice(&request.body).map_err(DestinationError::Encode)?,
        };
        requests.push(PreviewRequest {
            method: request.method,
            url: request.url,
            body,
        });
        upserts.extend(batch.into_iter().filter_map(|change| match change {
            Change::Upsert(record) => Some(record),
            Change::Delete { .. } => None,
        }));
    }
    producer.finish().await?;
    Ok((requests, upserts))
}

#[derive(Clone, Debug, Serialize)]
pub struct TestExchange {
    pub method: &'static str,
    pub url: String,
    pub body: serde_json::Value,
    pub status: Option<u16>,
    pub response: String,
}

/// Sends the first `records` valid records once each, without retries and without touching
/// state; a suppressed identity is never one of them.
pub async fn test_send(sync: &SyncJob, store: &dyn StateStore, records: usize) -> Result<Vec<TestExchange>, Error> {
    let compiled = sync.compile().await?;
    let held = super::suppress::suppressed(sync, store).await?;
    let mut stream = sync.source.stream(Arc::new(compiled.columns().to_vec()));
    let mut picked: Vec<Record> = Vec::new();
    while picked.len() < records {
        let Some(batch) = stream.next().await else { break };
        compiled.map_batch(&batch?, |mapped| {
            if let Ok(r) = mapped {
                if picked.len() < records && !held.keys.contains(&crate::hash::id_key(&r.id)) {
                    picked.push(r);
                }
            }
        });
    }
    drop(stream);
    let batch_size = sync.destination.capabilities().max_batch_records.max(1);
    let mut exchanges = Vec::new();
    let picked: Vec<Change> = picked.into_iter().map(Change::Upsert).collect();
    for chunk in picked.chunks(batch_size) {
        let refs: Vec<&Change> = chunk.iter().collect();
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
