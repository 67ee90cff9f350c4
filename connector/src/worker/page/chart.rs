//! A sync's run history as an inline SVG, drawn here so the page needs no script: per run, a
//! bar of records sent with the rejected stacked on it, and a line of run durations on its
//! own scale.

use maud::{html, Markup};

use crate::state::RunRecord;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
/// Room for the axis labels: left, right, top, bottom.
const PAD: (f64, f64, f64, f64) = (44.0, 44.0, 12.0, 22.0);

/// `runs` newest first, as the store gives them; drawn oldest on the left, in `slots` places
/// with the newest at the right edge, so that bars keep one width as history grows.
pub(super) fn runs_chart(runs: &[RunRecord], slots: usize) -> Markup {
    let runs: Vec<&RunRecord> = runs.iter().take(slots).rev().collect();
    let plot_w = WIDTH - PAD.0 - PAD.1;
    let plot_h = HEIGHT - PAD.2 - PAD.3;
    let most = runs.iter().map(|r| r.counts.sent + r.counts.rejected).max().unwrap_or(0).max(1);
    let longest = runs.iter().filter_map(|r| seconds(r)).fold(0.0_f64, f64::max).max(1.0);
    let slot = plot_w / slots.max(1) as f64;
    let first = slots.saturating_sub(runs.len());
    let bar = (slot * 0.7).max(1.0);
    let y = |value: f64, top: f64| PAD.2 + plot_h - plot_h * value / top;
    // A run still going has no duration yet: the line skips it.
    let line: Vec<String> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            Some(format!(
                "{:.1},{:.1}",
                PAD.0 + slot * ((first + i) as f64 + 0.5),
                y(seconds(r)?, longest)
            ))
        })
        .collect();
    html! {
        svg #runs-chart xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT)
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
            aria-label={ "Records sent and rejected, and duration, of the last " (runs.len()) " runs" } {
            rect x=(PAD.0) y=(PAD.2) width=(plot_w) height=(plot_h) fill="#fff" stroke="#e3e6ea" {}
            text x=(PAD.0 - 4.0) y=(PAD.2 + 10.0) text-anchor="end" { (most) }
            text x=(PAD.0 - 4.0) y=(PAD.2 + plot_h) text-anchor="end" { "0" }
            text x=(WIDTH - PAD.1 + 4.0) y=(PAD.2 + 10.0) { (format_secs(longest)) }
            text x=(PAD.0) y=(HEIGHT - 6.0) { "records: " tspan fill="#3f7fd9" { "■ sent " } tspan fill="#c62828" { "■ rejected" } }
            text x=(WIDTH - PAD.1) y=(HEIGHT - 6.0) text-anchor="end" { tspan fill="#ef8f00" { "— duration" } }
            @for (i, r) in runs.iter().enumerate() {
                @let x = PAD.0 + slot * (first + i) as f64 + (slot - bar) / 2.0;
                @let sent_top = y(r.counts.sent as f64, most as f64);
                @let rejected_top = y((r.counts.sent + r.counts.rejected) as f64, most as f64);
                g.run data-run=(r.id) {
                    title { "run " (r.id) " (" (r.status.as_str()) "): sent " (r.counts.sent) ", rejected " (r.counts.rejected) ", " (seconds(r).map_or("running".to_string(), format_secs)) }
                    rect.sent x=(fmt(x)) y=(fmt(sent_top)) width=(fmt(bar)) height=(fmt(PAD.2 + plot_h - sent_top)) fill="#3f7fd9" {}
                    @if r.counts.rejected > 0 {
                        rect.rejected x=(fmt(x)) y=(fmt(rejected_top)) width=(fmt(bar)) height=(fmt(sent_top - rejected_top)) fill="#c62828" {}
                    }
                }
            }
            @if !line.is_empty() {
                polyline.duration points=(line.join(" ")) fill="none" stroke="#ef8f00" stroke-width="2" {}
            }
        }
    }
}

fn seconds(run: &RunRecord) -> Option<f64> {
    run.ended_at.map(|end| (end - run.started_at).max(0) as f64)
}

fn format_secs(secs: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs.round() as u64)).to_string()
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{RunCounts, RunOrigin, RunStatus};

    fn run(id: i64, sent: u64, rejected: u64, secs: i64) -> RunRecord {
        RunRecord {
            id,
            sync: "users".into(),
            started_at: 1000 * id,
            ended_at: Some(1000 * id + secs),
            status: RunStatus::Completed,
            full_resync: false,
            counts: RunCounts {
                sent,
                rejected,
                ..RunCounts::default()
            },
            error: None,
            origin: RunOrigin::Schedule,
            scheduled_for: None,
            worker: None,
            progress: None,
            folders: None,
        }
    }

    #[test]
    fn bars_scale_to_the_busiest_run_oldest_first_and_rejections_stack_on_top() {
        // Newest first, as the store lists them.
        let svg = runs_chart(&[run(3, 0, 0, 2), run(2, 50, 50, 10), run(1, 100, 0, 5)], 4).into_string();
        let first = svg.find("data-run=\"1\"").expect("run 1");
        let last = svg.find("data-run=\"3\"").expect("run 3");
        assert!(first < last, "oldest on the left");
        // Four slots of 158 across, the first empty; run 1 fills the plot (146 high from y 12).
        assert!(svg.contains("x=\"225.7\" y=\"12.0\" width=\"110.6\" height=\"146.0\""), "{svg}");
        // Run 2's sent fill half of it, and its rejected the other half on top.
        assert!(svg.contains("x=\"383.7\" y=\"85.0\" width=\"110.6\" height=\"73.0\""), "{svg}");
        assert!(svg.contains("x=\"383.7\" y=\"12.0\" width=\"110.6\" height=\"73.0\""), "{svg}");
        assert!(svg.contains("class=\"rejected\""));
        assert_eq!(svg.matches("class=\"rejected\"").count(), 1);
        // The longest run (10 s) tops the duration line.
        assert!(svg.contains(",12.0"), "{svg}");
        assert!(svg.contains(">100<") && svg.contains(">10s<"));
    }

    #[test]
    fn an_empty_history_is_an_empty_plot() {
        let svg = runs_chart(&[], 50).into_string();
        assert!(svg.contains("id=\"runs-chart\"") && !svg.contains("polyline"));
    }
}
