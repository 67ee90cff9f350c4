//! The worker's table of syncs: reloading it from the mappings folder, triggering a sync, and
//! what the endpoints and the page show of each.

use super::*;

impl Shared {
    pub(super) async fn reload(self: &Arc<Self>) {
        let _one_at_a_time = self.reloading.lock().await;
        if self.shutdown.is_cancelled() {
            return;
        }
        let (valid, invalid) = scan(&self.dir, &self.selection).await;
        if valid.is_empty() && invalid.is_empty() {
            tracing::warn!(folder = %self.dir.display(), "no mappings in the folder; the worker picks them up when they appear");
        }
        let mut syncs = lock(&self.syncs);
        let gone: Vec<String> = syncs.keys().filter(|n| !valid.contains_key(*n)).cloned().collect();
        for name in gone {
            if let Some(handle) = syncs.remove(&name) {
                tracing::warn!(sync = %name, file = %handle.file.display(), "mapping removed or invalid: the sync is no longer scheduled");
                handle.stop.cancel();
            }
        }
        for (name, (file, mapping, text)) in valid {
            match syncs.get_mut(&name) {
                Some(handle) if handle.text == text && handle.file == file => {}
                Some(handle) => {
                    tracing::info!(sync = %name, file = %file.display(), "mapping changed: the next run uses it");
                    handle.file = file;
                    handle.text = text;
                    handle.mapping.send_replace(Arc::new(mapping));
                }
                None => {
                    tracing::info!(sync = %name, file = %file.display(), schedule = %describe(&mapping.schedule), "sync loaded");
                    let handle = self.start_driver(&name, file, mapping, text);
                    syncs.insert(name, handle);
                }
            }
        }
        self.metrics.set_mappings(syncs.len(), invalid.len());
        *lock(&self.invalid) = invalid;
    }

    /// A new sync's driver task, and the handle that steers it.
    pub(super) fn start_driver(self: &Arc<Self>, name: &str, file: PathBuf, mapping: Mapping, text: String) -> SyncHandle {
        self.metrics.register_sync(name);
        let (tx, rx) = watch::channel(Arc::new(mapping));
        let handle = SyncHandle {
            file,
            text,
            mapping: tx,
            trigger: Arc::default(),
            stop: CancellationToken::new(),
            view: Arc::default(),
        };
        let driver = Driver {
            shared: self.clone(),
            name: name.to_string(),
            mapping: rx,
            trigger: handle.trigger.clone(),
            stop: handle.stop.clone(),
            view: handle.view.clone(),
        };
        self.tracker.spawn(driver.drive());
        handle
    }

    pub(super) fn trigger(&self, name: &str, full: bool) -> TriggerOutcome {
        if self.shutdown.is_cancelled() {
            return TriggerOutcome::ShuttingDown;
        }
        let syncs = lock(&self.syncs);
        let Some(handle) = syncs.get(name) else {
            if let Some(bad) = lock(&self.invalid)
                .iter()
                .find(|b| b.file.file_stem().and_then(|s| s.to_str()) == Some(name))
            {
                return TriggerOutcome::Invalid {
                    errors: bad.errors.clone(),
                };
            }
            return TriggerOutcome::Unknown {
                known: syncs.keys().cloned().collect(),
            };
        };
        if full {
            handle.trigger.full.store(true, Ordering::SeqCst);
        }
        // Notify keeps one permit: triggers while a run is going make one run after it.
        handle.trigger.notify.notify_one();
        let mut view = lock(&handle.view);
        view.queued = true;
        TriggerOutcome::Queued { running: view.running }
    }

    /// Every sync this worker knows, by name, with its mapping and what it last saw.
    pub(crate) fn views(&self) -> Vec<SyncInfo> {
        lock(&self.syncs).iter().map(|(name, h)| SyncInfo::of(name, h)).collect()
    }

    /// One sync, as [`Shared::views`] gives each.
    pub(crate) fn view(&self, name: &str) -> Option<SyncInfo> {
        lock(&self.syncs).get(name).map(|h| SyncInfo::of(name, h))
    }

    /// The latest run of each sync in the state store, by any worker, by sync name.
    pub(crate) async fn latest_runs(&self) -> Result<BTreeMap<String, RunRecord>, crate::state::StateError> {
        Ok(self.store.latest_runs().await?.into_iter().map(|r| (r.sync.clone(), r)).collect())
    }

    pub(crate) fn invalid(&self) -> Vec<InvalidMapping> {
        lock(&self.invalid).clone()
    }
}

fn describe(schedule: &Option<Schedule>) -> String {
    schedule.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "on trigger only".into())
}
