//! `/syncs/NAME/preview`: what the next run would send, computed on demand as `ebb preview`
//! does (the source is read, nothing is sent, state is unchanged).

use maud::{html, Markup};

use crate::state::StateStore;
use crate::sync::{self, Preview, SyncJob};
use crate::worker::SyncInfo;

/// The requests shown with their bodies.
const REQUESTS_SHOWN: usize = 3;
/// The rejections and deletes listed.
const LISTED: usize = 20;

pub(super) async fn render(info: &SyncInfo, store: &dyn StateStore) -> Markup {
    let outcome = match SyncJob::from_mapping(info.mapping.as_ref().clone()) {
        Ok(job) => sync::preview(&job, store, REQUESTS_SHOWN).await,
        Err(e) => Err(e),
    };
    html! {
        h1 { "Preview of " (info.name) }
        p.muted { "A dry run of the next run: the source was read now; nothing was sent and state is unchanged." }
        @match outcome {
            Ok(preview) => { (shown(&preview)) }
            Err(e) => {
                p.error { (e.to_string()) }
                @if let Some(hint) = e.hint() { p.muted { "hint: " (hint) } }
            }
        }
        p { a href={ "/syncs/" (info.name) } { "Back to " (info.name) } }
    }
}

fn shown(preview: &Preview) -> Markup {
    let c = &preview.counts;
    html! {
        dl.counts {
            dt { "Destination" } dd { (preview.destination) }
            dt { "Source rows" } dd { (c.source) }
            dt { "New" } dd { (c.new) }
            dt { "Changed" } dd { (c.changed) }
            dt { "Unchanged" } dd { (c.unchanged) }
            dt { "Invalid" } dd { (c.invalid) }
            @if c.suppressed > 0 { dt { "Suppressed" } dd { (c.suppressed) } }
            dt { "Gone" } dd { (c.gone) }
            dt { "Would send" } dd #would-send { (preview.to_send) }
            @if !preview.to_delete.is_empty() { dt { "Would delete" } dd { (preview.to_delete.len()) } }
        }
        @if let Some(blocked) = &preview.blocked { p.error { "A run would be " (blocked) } }
        @if let Some(folders) = &preview.folders { p.muted { "Reads " (folders.summary()) "." } }
        @if let Some(other) = &preview.state_was_for { p.muted { "State was kept for " (other) ": the run sends everything." } }
        @if !preview.requests.is_empty() {
            h2 { "The first " (preview.requests.len()) " request" @if preview.requests.len() != 1 { "s" } }
            @for request in &preview.requests {
                p { code { (request.method) " " (request.url) } }
                pre.body { (serde_json::to_string_pretty(&request.body).unwrap_or_default()) }
            }
        }
        @if !preview.to_delete.is_empty() {
            h2 { "Deletes" }
            p { @for id in preview.to_delete.iter().take(LISTED) { code { (id) } " " } }
        }
        @if !preview.rejections.is_empty() {
            h2 { "Rejected" }
            table { tbody {
                @for r in preview.rejections.iter().take(LISTED) {
                    tr { td { (r.record_id.as_deref().unwrap_or("—")) } td { (r.position) } td { (r.reason) } }
                }
            } }
        }
    }
}
