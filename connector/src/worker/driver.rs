//! A sync's driver: it sleeps until the next schedule slot or a trigger, then takes the lock,
//! a permit and the slot, and runs the sync.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::progress::ViewProgress;
use super::{lock, Shared, SyncView, Trigger, LOCK_POLL};
use crate::alerts;
use crate::spec::Mapping;
use crate::state::{RunLock, RunOrigin, RunStatus};
use crate::sync::{self, RunOptions, RunReport, SyncJob};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reason {
    Schedule,
    Trigger,
}

pub(super) struct Driver {
    pub shared: Arc<Shared>,
    pub name: String,
    pub mapping: watch::Receiver<Arc<Mapping>>,
    pub trigger: Arc<Trigger>,
    pub stop: CancellationToken,
    pub view: Arc<Mutex<SyncView>>,
}

pub(super) async fn sleep_until_utc(at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => {
            let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::time::sleep(wait).await;
        }
        None => std::future::pending().await,
    }
}

impl Driver {
    pub(super) async fn drive(mut self) {
        // The last slot this driver acted on. None at start: a slot that fell due while no
        // worker was up is run once now, if no one has claimed it.
        let mut handled: Option<DateTime<Utc>> = None;
        loop {
            let mapping = self.mapping.borrow_and_update().clone();
            let now = Utc::now();
            let next = mapping.schedule.as_ref().and_then(|s| {
                let due = s.latest_due(now).filter(|d| handled.is_none_or(|h| *d > h));
                due.or_else(|| s.next_after(now))
            });
            lock(&self.view).next_run = next;
            let reason = tokio::select! {
                biased;
                () = self.shared.shutdown.cancelled() => break,
                () = self.stop.cancelled() => break,
                changed = self.mapping.changed() => {
                    if changed.is_err() { break }
                    continue;
                }
                () = self.trigger.notify.notified() => Reason::Trigger,
                () = sleep_until_utc(next) => Reason::Schedule,
            };
            if reason == Reason::Schedule {
                handled = mapping.schedule.as_ref().and_then(|s| s.latest_due(Utc::now()));
            }
            self.execute(&mapping, reason).await;
            lock(&self.view).queued = false;
        }
        lock(&self.view).next_run = None;
    }

    /// Lock, permit, claim (for a scheduled run), run, then metrics and alerts.
    async fn execute(&self, mapping: &Mapping, reason: Reason) {
        let shared = &self.shared;
        let Some(run_lock) = self.wait_for_lock().await else { return };
        let permit = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => return,
            p = shared.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let scheduled_for = match reason {
            Reason::Trigger => None,
            Reason::Schedule => {
                let Some(slot) = mapping.schedule.as_ref().and_then(|s| s.latest_due(Utc::now())) else {
                    return;
                };
                match shared.store.claim_slot(&run_lock, slot.timestamp(), &shared.id).await {
                    Ok(true) => Some(slot.timestamp()),
                    Ok(false) => {
                        tracing::debug!(sync = %self.name, slot = %slot, "slot already run by another worker");
                        return;
                    }
                    Err(e) => {
                        tracing::error!(sync = %self.name, error = %e, "cannot claim the schedule slot; skipping it");
                        return;
                    }
                }
            }
        };
        let full = reason == Reason::Trigger && self.trigger.full.swap(false, Ordering::SeqCst);
        {
            let mut view = lock(&self.view);
            view.running = true;
            view.queued = false;
        }
        shared.metrics.set_running(&self.name, true);
        let report = self.run(mapping, reason, scheduled_for, full, &run_lock).await;
        run_lock.release().await;
        drop(permit);
        shared.metrics.set_running(&self.name, false);
        lock(&self.view).running = false;
        let Some(report) = report else { return };
        shared.metrics.record_run(&report);
        match report.status {
            RunStatus::Completed => tracing::info!(sync = %self.name, sent = report.counts.sent, ms = report.duration_ms, "run completed"),
            RunStatus::Continued => tracing::info!(
                sync = %self.name,
                sent = report.counts.sent,
                left = report.counts.left.unwrap_or(0),
                "run's box over: the next run goes on"
            ),
            status => {
                tracing::warn!(sync = %self.name, status = status.as_str(), error = report.error.as_deref().unwrap_or(""), "run did not complete")
            }
        }
        if let Some(alerts) = mapping.alerts.as_ref().or(shared.config.alerts.as_ref()) {
            for (kind, delivered) in alerts::after_run(shared.store.as_ref(), &shared.http, alerts, &report, &shared.id).await {
                shared.metrics.record_alert(&self.name, kind.as_str(), delivered);
            }
        }
        lock(&self.view).last_report = Some(report);
    }

    async fn run(&self, mapping: &Mapping, reason: Reason, scheduled_for: Option<i64>, full: bool, lock: &RunLock) -> Option<RunReport> {
        let shared = &self.shared;
        let sync = match SyncJob::from_mapping(mapping.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(sync = %self.name, error = %e, "cannot build the sync");
                return None;
            }
        };
        let options = RunOptions {
            full,
            cancel: shared.shutdown.child_token(),
            abandon: shared.abandon.clone(),
            origin: match reason {
                Reason::Schedule => RunOrigin::Schedule,
                Reason::Trigger => RunOrigin::Trigger,
            },
            scheduled_for,
            worker: Some(shared.id.clone()),
            observer: Some(shared.metrics.clone()),
            pacers: Arc::clone(&shared.pacers),
            max_run: shared.max_run.or_else(|| mapping.run_box(chrono::Utc::now())),
            progress: Some(Arc::new(ViewProgress {
                view: Arc::clone(&self.view),
                logged: Mutex::default(),
            })),
            ..RunOptions::default()
        };
        match sync::run_locked(&sync, shared.store.as_ref(), &options, lock).await {
            Ok(report) => Some(report),
            Err(e) => {
                // Only the state store itself failing gets here; the run could not be recorded.
                tracing::error!(sync = %self.name, error = %e, "run could not be recorded");
                None
            }
        }
    }

    /// The sync's lock, waiting while another process runs it; `None` on shutdown or removal.
    async fn wait_for_lock(&self) -> Option<RunLock> {
        let mut said = false;
        loop {
            match self.shared.store.try_lock(&self.name).await {
                Ok(Some(lock)) => return Some(lock),
                Ok(None) if !said => {
                    tracing::info!(sync = %self.name, "another process is running this sync; the run waits for it");
                    said = true;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(sync = %self.name, error = %e, "cannot take the run lock; retrying"),
            }
            tokio::select! {
                biased;
                () = self.shared.shutdown.cancelled() => return None,
                () = self.stop.cancelled() => return None,
                () = tokio::time::sleep(LOCK_POLL) => {}
            }
        }
    }
}
