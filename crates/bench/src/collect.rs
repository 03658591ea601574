//! The consumer side of a run, on its own thread so scoring and storage never stall the request tasks:
//! each record is scored, shown in the progress bar, summarized, and pushed to the sink as it arrives.

use crate::progress::Progress;
use crate::scoring::{self, Scorer};
use crate::sink::RecordSink;
use crate::summary::Summary;
use std::sync::Arc;
use tokio::sync::mpsc;
use ttc_types::Record;

pub struct Collector {
    pub scorer: Option<Arc<dyn Scorer>>,
    pub sink: Box<dyn RecordSink>,
    pub progress: Progress,
}

/// What the collector hands back when the channel closes.
pub struct Collected {
    pub summary: Summary,
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
            let mut summary = Summary::default();
            while let Some(mut rec) = rx.blocking_recv() {
                if let Some(s) = &self.scorer {
                    scoring::apply(s.as_ref(), &mut rec);
                }
                summary.add(&rec);
                self.progress.on_record(&rec, &summary);
                self.sink.push(rec)?;
            }
            self.sink.finish()?;
            self.progress.finish(&summary);
            Ok(Collected { summary, sink: self.sink })
        })
    }
}
