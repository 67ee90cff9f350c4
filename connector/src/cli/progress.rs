//! The progress bar of `ebb sync` and `ebb demo`, and how long a run took, for summaries.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::sync::Progress;

/// A bar on stderr per sync; it draws nothing when stderr is not a terminal.
#[derive(Default)]
pub struct Bar(Mutex<Option<ProgressBar>>);

impl Progress for Bar {
    fn start(&self, sync: &str, total: u64) {
        let bar = (total > 0).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} records {per_sec} eta {eta}") {
                bar.set_style(style);
            }
            bar.set_prefix(sync.to_string());
            bar
        });
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = bar;
    }

    fn advance(&self, records: u64) {
        if let Some(bar) = &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            bar.inc(records);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

/// How long a run took, for summaries.
pub fn human_duration(ms: u64) -> String {
    let d = Duration::from_millis(ms);
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
