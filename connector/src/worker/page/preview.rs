//! `/syncs/NAME/preview`: what the next run would send, computed on demand as `ebb preview`
//! does (the source is read, nothing is sent, state is unchanged).
//!
//! A preview reads the whole source, so it is a POST (a page of another site cannot make a
//! browser start one), one runs at a time per sync (a second request waits for it and gets its
//! result), and a result is kept for [`KEEP`] while the mapping is unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::spec::Mapping;
use crate::state::StateStore;
use crate::sync::{self, Preview, SyncJob};
use crate::worker::SyncInfo;

/// How long a preview's result is shown again instead of reading the source again.
pub(crate) const KEEP: Duration = Duration::from_secs(60);

/// The latest preview of each sync, and the lock that lets one run at a time.
#[derive(Default)]
pub(crate) struct Previews {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Kept>>>>>,
}

struct Kept {
    at: Instant,
    made: DateTime<Utc>,
    mapping: Arc<Mapping>,
    markup: Markup,
}

impl Previews {
    /// The sync's preview: the one kept if it is fresh and of this mapping, else a new one
    /// (after any that is being made).
    pub(crate) async fn get(&self, info: &SyncInfo, store: &dyn StateStore) -> (Markup, DateTime<Utc>) {
        let slot = {
            let mut slots = crate::panic::lock(&self.slots);
            slots.entry(info.name.clone()).or_default().clone()
        };
        let mut kept = slot.lock().await;
        if let Some(k) = kept
            .as_ref()
            .filter(|k| k.at.elapsed() < KEEP && Arc::ptr_eq(&k.mapping, &info.mapping))
        {
            return (k.markup.clone(), k.made);
        }
        let made = Utc::now();
        let markup = render(info, store).await;
        *kept = Some(Kept {
            at: Instant::now(),
            made,
            mapping: info.mapping.clone(),
            markup: markup.clone(),
        });
        (markup, made)
    }
}

/// The page before a preview: the button that asks for one.
pub(super) fn ask(info: &SyncInfo, csrf: &str) -> Markup {
    html! {
        h1 { "Preview of " (info.name) }
        p.muted { "A dry run of the next run reads the whole source; nothing is sent and state is unchanged." }
        (form(&info.name, csrf))
        p { a href={ "/syncs/" (info.name) } { "Back to " (info.name) } }
    }
}

/// The form that posts for a preview.
pub(super) fn form(name: &str, csrf: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/syncs/" (name) "/preview" } {
            input type="hidden" name="csrf" value=(csrf);
            button #preview type="submit" { "Preview the next run" }
        }
    }
}

/// The requests shown with their bodies.
const REQUESTS_SHOWN: usize = 3;
/// The rejections and deletes listed.
const LISTED: usize = 20;

async fn render(info: &SyncInfo, store: &dyn StateStore) -> Markup {
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
