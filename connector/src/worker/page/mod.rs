//! The worker's status page: server-rendered HTML, templates compiled into the binary.
//!
//! `/` is the overview, `/syncs/NAME` a sync's history, `/syncs/NAME/preview` what its next
//! run would send and `/syncs/NAME/full-resync` the confirmation before a full resync. Every
//! page reads only what it shows: one latest run per sync, fifty runs of one sync.

mod chart;
mod layout;
mod overview;
pub(super) mod preview;
mod sync;

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{csrf_refusal, Caller};
use super::{Shared, TriggerOutcome};
use crate::state::{RunRecord, RunStatus, StateError};
use layout::Refresh;

/// The runs a sync's page draws and lists.
const HISTORY: usize = 50;
/// The rejections of the last run a sync's page lists.
const REJECTIONS_SHOWN: usize = 100;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(overview_page))
        .route("/syncs/{name}", get(sync_page))
        .route("/syncs/{name}/full-resync", get(confirm_page))
        .route("/syncs/{name}/preview", get(preview_ask).post(preview_page))
}

/// An HTML response, never cached: it is the state of now.
fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

fn problem(shared: &Shared, status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p.error { (message) }
        p { a href="/" { "Back to the overview" } }
    };
    html_response(status, layout::page(title, &shared.id, None, body))
}

fn unreadable(shared: &Shared, e: &StateError) -> Response {
    problem(
        shared,
        StatusCode::SERVICE_UNAVAILABLE,
        "State store unavailable",
        &format!("cannot read run history: {e}"),
    )
}

fn unknown(shared: &Shared, name: &str) -> Response {
    let message = format!("this worker runs no sync named {}", crate::quote::quote(name));
    problem(shared, StatusCode::NOT_FOUND, "No such sync", &message)
}

async fn overview_page(State(shared): State<Arc<Shared>>) -> Response {
    let mut latest = match shared.latest_runs().await {
        Ok(latest) => latest,
        Err(e) => return unreadable(&shared, &e),
    };
    let rows: Vec<_> = shared
        .views()
        .into_iter()
        .map(|info| {
            let last = latest.remove(&info.name);
            (info, last)
        })
        .collect();
    let markup = overview::render(&rows, &shared.invalid(), chrono::Utc::now());
    html_response(
        StatusCode::OK,
        layout::page("Syncs", &shared.id, Some(Refresh { secs: 15, to: "/" }), markup),
    )
}

#[derive(Deserialize)]
struct Flash {
    /// Set by the redirect after a form's trigger: `run` or `full`.
    queued: Option<String>,
}

async fn sync_page(State(shared): State<Arc<Shared>>, Path(name): Path<String>, Query(flash): Query<Flash>) -> Response {
    let Some(info) = shared.view(&name) else {
        return unknown(&shared, &name);
    };
    let runs = match shared.store.runs(Some(&name), HISTORY).await {
        Ok(runs) => runs,
        Err(e) => return unreadable(&shared, &e),
    };
    let last_finished = runs.iter().find(|r| r.status != RunStatus::Running);
    let rejections = match last_finished {
        Some(run) if run.counts.rejected + run.counts.invalid > 0 => match shared.store.rejections(run.id, REJECTIONS_SHOWN).await {
            Ok(r) => r,
            Err(e) => return unreadable(&shared, &e),
        },
        _ => Vec::new(),
    };
    let view = sync::SyncPage {
        info: &info,
        runs: &runs,
        rejections: &rejections,
        rejections_of: last_finished,
        csrf: shared.access.csrf(),
        flash: flash.queued.as_deref(),
    };
    let markup = view.render(chrono::Utc::now());
    let here = format!("/syncs/{name}");
    let refresh = Refresh { secs: 15, to: &here };
    html_response(StatusCode::OK, layout::page(&name, &shared.id, Some(refresh), markup))
}

async fn confirm_page(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some(info) = shared.view(&name) else {
        return unknown(&shared, &name);
    };
    let markup = sync::confirm_full_resync(&info, shared.access.csrf());
    html_response(StatusCode::OK, layout::page(&name, &shared.id, None, markup))
}

async fn preview_ask(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some(info) = shared.view(&name) else {
        return unknown(&shared, &name);
    };
    let markup = preview::ask(&info, shared.access.csrf());
    html_response(StatusCode::OK, layout::page(&format!("Preview {name}"), &shared.id, None, markup))
}

#[derive(Deserialize)]
struct PreviewForm {
    #[serde(default)]
    csrf: String,
}

async fn preview_page(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    form: Result<Form<PreviewForm>, FormRejection>,
) -> Response {
    let offered = form.as_ref().ok().map(|Form(f)| f.csrf.as_str());
    if let Some(refused) = csrf_refusal(&shared, caller, offered) {
        return refused;
    }
    let Some(info) = shared.view(&name) else {
        return unknown(&shared, &name);
    };
    let (markup, made) = shared.previews.get(&info, shared.store.as_ref()).await;
    let body = html! {
        (markup)
        p.muted #made data-made=(made.timestamp_millis()) {
            "Made at " (made.format("%H:%M:%S UTC")) "; shown again for " (preview::KEEP.as_secs()) " s."
        }
    };
    html_response(StatusCode::OK, layout::page(&format!("Preview {name}"), &shared.id, None, body))
}

/// Where a form's trigger leads: back to the sync's page, which says the run is queued.
pub(super) fn after_trigger(shared: &Shared, name: &str, full: bool, outcome: TriggerOutcome) -> Response {
    match outcome {
        TriggerOutcome::Queued { .. } => {
            let to = format!("/syncs/{name}?queued={}", if full { "full" } else { "run" });
            (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
        }
        TriggerOutcome::Unknown { .. } => unknown(shared, name),
        TriggerOutcome::Invalid { errors } => problem(shared, StatusCode::CONFLICT, "The mapping is invalid", &errors.join("\n")),
        TriggerOutcome::ShuttingDown => problem(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "Shutting down",
            "the worker is shutting down: no new runs",
        ),
    }
}

/// The status shown for a sync: running beats queued beats the last run's.
fn sync_status(running: bool, queued: bool, last: Option<&RunRecord>) -> &'static str {
    if running {
        "running"
    } else if queued {
        "queued"
    } else {
        last.map_or("never_ran", |r| r.status.as_str())
    }
}
