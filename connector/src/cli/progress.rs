//! The progress bar of `ebb sync` and `ebb demo`, and how long a run took, for summaries.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::sync::{Progress, Throughput};

/// A bar on stderr per sync, with the records sent, the rate and the time left; it draws
/// nothing when stderr is not a terminal.
#[derive(Default)]
pub struct Bar(Mutex<Option<(ProgressBar, Throughput)>>);

impl Progress for Bar {
    fn start(&self, sync: &str, total: u64) {
        let bar = (total > 0).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{prefix} {bar:30} {msg}") {
                bar.set_style(style);
            }
            bar.set_prefix(sync.to_string());
            let throughput = Throughput::new(total);
            bar.set_message(throughput.snapshot().line());
            (bar, throughput)
        });
        *crate::panic::lock(&self.0) = bar;
    }

    fn advance(&self, records: u64) {
        if let Some((bar, throughput)) = &mut *crate::panic::lock(&self.0) {
            throughput.advance(records);
            bar.inc(records);
            bar.set_message(throughput.snapshot().line());
        }
    }

    fn finish(&self) {
        if let Some((bar, _)) = crate::panic::lock(&self.0).take() {
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
