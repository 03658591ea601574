//! Progress while running: an indicatif bar (requests done / total, errors, live output tok/s), nothing
//! with `--quiet`, and a periodic JSON log line instead of a bar with `--log-format json`.

use crate::tally::RunTally;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};
use ttc_types::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bar,
    Log,
    Hidden,
}

pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
    total: u64,
}

impl Progress {
    pub fn new(mode: ProgressMode, total: u64) -> Progress {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
            let style = ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Progress { mode, bar, started: Instant::now(), last_log: Instant::now(), total }
    }

    pub fn hidden() -> Progress {
        Progress::new(ProgressMode::Hidden, 0)
    }

    fn rate(&self, s: &RunTally) -> f64 {
        let t = self.started.elapsed().as_secs_f64();
        if t > 0.0 {
            s.output_tokens as f64 / t
        } else {
            0.0
        }
    }

    pub fn on_record(&mut self, _r: &Record, s: &RunTally) {
        match self.mode {
            ProgressMode::Bar => {
                if let Some(b) = &self.bar {
                    b.set_position(s.total as u64);
                    b.set_message(format!(
                        "errors {} | retries {} | {:.0} out tok/s",
                        s.errors,
                        s.retries(),
                        self.rate(s)
                    ));
                }
            }
            ProgressMode::Log if self.last_log.elapsed() >= Duration::from_secs(5) => {
                self.last_log = Instant::now();
                tracing::info!(
                    done = s.total,
                    total = self.total,
                    errors = s.errors,
                    output_tok_s = self.rate(s),
                    "progress"
                );
            }
            _ => {}
        }
    }

    pub fn finish(&mut self, s: &RunTally) {
        if let Some(b) = self.bar.take() {
            b.set_position(s.total as u64);
            b.finish_and_clear();
        }
    }
}
