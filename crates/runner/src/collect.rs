//! The consumer side of a run, on its own thread so scoring and storage never stall the request tasks:
//! each record is scored, shown in the progress bar, summarized, and pushed to the sink as it arrives.

use crate::fidelity::FidelityJoin;
use crate::progress::Progress;
use crate::scoring::{self, Scorer};
use crate::sink::RecordSink;
use crate::tally::RunTally;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use ttc_types::Record;

pub struct Collector {
    pub scorer: Option<Arc<dyn Scorer>>,
    /// Attaches fidelity columns (None: the run measures none).
    pub fidelity: Option<FidelityJoin>,
    pub sink: Box<dyn RecordSink>,
    pub progress: Progress,
    /// A copy of every stored record, for a run that reads its own results between sampling rounds.
    pub seen: Option<Arc<Mutex<Vec<Record>>>>,
}

/// What the collector hands back when the channel closes.
pub struct Collected {
    pub tally: RunTally,
    pub sink: Box<dyn RecordSink>,
}

impl Collector {
    /// Starts the thread; it ends when every sender of `rx` is dropped, or at the first store error (then
    /// the runner's sends fail and it stops dispatching).
    pub fn spawn(
        mut self,
        mut rx: mpsc::Receiver<Record>,
    ) -> std::io::Result<std::thread::JoinHandle<anyhow::Result<Collected>>> {
        std::thread::Builder::new().name("ttc-collector".into()).spawn(move || {
            let mut tally = RunTally::default();
            while let Some(mut rec) = rx.blocking_recv() {
                if let Some(s) = &self.scorer {
                    scoring::apply(s.as_ref(), &mut rec);
                }
                tally.add(&rec);
                self.progress.on_record(&rec, &tally);
                let ready = match &mut self.fidelity {
                    Some(f) => f.push(rec),
                    None => vec![rec],
                };
                for r in ready {
                    if let Some(seen) = &self.seen {
                        seen.lock().map(|mut v| v.push(r.clone())).ok();
                    }
                    self.sink.push(r)?;
                }
            }
            for r in self.fidelity.as_mut().map(FidelityJoin::drain).unwrap_or_default() {
                self.sink.push(r)?;
            }
            self.sink.finish()?;
            self.progress.finish(&tally);
            Ok(Collected { tally, sink: self.sink })
        })
    }
}
