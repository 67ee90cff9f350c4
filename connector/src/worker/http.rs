//! The worker's HTTP endpoints: `/healthz`, `/metrics`, `/syncs` and
//! `POST /syncs/{name}/trigger`, the status page's routes, and the token guard before them all.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{self, Caller};
use super::headers;
use super::{page, InvalidMapping, Shared, TriggerOutcome};
use crate::quote::quote;
use crate::state::RunRecord;
use crate::sync::{ProgressSnapshot, Throughput};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/syncs", get(syncs))
        .route("/syncs/{name}/trigger", post(trigger))
        .merge(page::routes())
        .layer(middleware::from_fn_with_state(shared.clone(), auth::guard))
        .layer(middleware::from_fn(headers::secure))
        .with_state(shared)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let ping = tokio::time::timeout(Duration::from_secs(3), shared.store.ping()).await;
    let (status, body) = match ping {
        _ if shared.shutdown.is_cancelled() => (StatusCode::SERVICE_UNAVAILABLE, json!({"status": "stopping", "worker": shared.id})),
        Ok(Ok(())) => (StatusCode::OK, json!({"status": "ok", "worker": shared.id})),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "worker": shared.id, "error": e.to_string()}),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "worker": shared.id, "error": "the state store did not answer within 3s"}),
        ),
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        shared.metrics.render(),
    )
        .into_response()
}

#[derive(Serialize)]
struct SyncEntry {
    name: String,
    file: String,
    /// `cron "…" (UTC)`, `every 5m`, `continuous …` or `null` (trigger only).
    schedule: Option<String>,
    next_run: Option<String>,
    running: bool,
    /// While it sends: records done of those planned, the rate and the time left.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<ProgressSnapshot>,
    queued: bool,
    /// The latest run in the state store, by any worker.
    last_run: Option<RunRecord>,
    status: String,
}

#[derive(Serialize)]
struct SyncsBody {
    worker: String,
    syncs: Vec<SyncEntry>,
    invalid: Vec<InvalidMapping>,
}

async fn syncs(State(shared): State<Arc<Shared>>) -> Response {
    let mut latest = match shared.latest_runs().await {
        Ok(latest) => latest,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": format!("cannot read run history: {e}")})),
            )
                .into_response()
        }
    };
    let mut out = Vec::new();
    for info in shared.views() {
        let last_run = latest.remove(&info.name);
        let view = &info.view;
        let status = if view.running {
            "running".to_string()
        } else {
            last_run
                .as_ref()
                .map(|r| r.status.as_str().to_string())
                .unwrap_or_else(|| "never_ran".into())
        };
        out.push(SyncEntry {
            file: info.file.display().to_string(),
            schedule: info.schedule().map(|s| s.to_string()),
            next_run: view.next_run.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            running: view.running,
            progress: view.progress.as_ref().map(Throughput::snapshot),
            queued: view.queued,
            last_run,
            status,
            name: info.name,
        });
    }
    Json(SyncsBody {
        worker: shared.id.clone(),
        syncs: out,
        invalid: shared.invalid(),
    })
    .into_response()
}

#[derive(Deserialize)]
struct TriggerQuery {
    #[serde(default)]
    full: bool,
}

/// What the status page's forms post.
#[derive(Deserialize)]
struct TriggerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    full: bool,
}

/// A form post answers with a page; an API call with JSON. A browser's request (HTTP Basic, or
/// one with a browser's marks) must hold the page's CSRF token.
async fn trigger(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(q): Query<TriggerQuery>,
    Extension(caller): Extension<Caller>,
    form: Result<Form<TriggerForm>, FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    if let Some(refused) = auth::csrf_refusal(&shared, caller, form.as_ref().map(|f| f.csrf.as_str())) {
        return refused;
    }
    let full = q.full || form.as_ref().is_some_and(|f| f.full);
    let outcome = shared.trigger(&name, full);
    if form.is_some() {
        return page::after_trigger(&shared, &name, full, outcome);
    }
    trigger_json(&name, full, outcome)
}

fn trigger_json(name: &str, full: bool, outcome: TriggerOutcome) -> Response {
    match outcome {
        TriggerOutcome::Queued { running } => (
            StatusCode::ACCEPTED,
            Json(json!({"sync": name, "queued": true, "running": running, "full": full})),
        )
            .into_response(),
        TriggerOutcome::Unknown { known } => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no sync named {}", quote(name)), "known": known})),
        )
            .into_response(),
        TriggerOutcome::Invalid { errors } => (
            StatusCode::CONFLICT,
            Json(json!({"error": format!("the mapping of {} is invalid", quote(name)), "errors": errors})),
        )
            .into_response(),
        TriggerOutcome::ShuttingDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the worker is shutting down"})),
        )
            .into_response(),
    }
}
