//! `algorithm: adaptive` at the point where requests queue: [`AdaptiveBackend`] wraps any backend, measures each
//! adaptive policy's load (requests in flight through it, or the p95 E2E of its recent requests), picks the
//! quality or the fast policy with the policy's hysteresis, and sends the request on as that policy. The
//! record's `routed_policy` / `route_rule` / `route_load` say which ran and why.
//!
//! An adaptive policy is not capped to the inner backend's slots (`max_concurrency`), so its requests wait in
//! the backend's queue, where it can see them: that queue is the load it adapts to (under an open loop in
//! `ttc run`, and in `ttc serve`, where every client's request is queued to one engine).

use crate::{Backend, BackendError, BackendInfo, EventItem, EventStream, GenEvent, GenRequest};
use async_trait::async_trait;
use futures_util::Stream;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::time::Instant;
use ttc_policy::{AdaptiveParams, Algorithm, LoadSignal, Mode, Policy};
use ttc_types::Route;

/// One adaptive policy's load and mode.
#[derive(Default)]
struct Load {
    in_flight: Arc<AtomicUsize>,
    mode: Mode,
    /// E2E seconds of the most recent finished requests (at most the policy's `window`).
    recent: Arc<Mutex<VecDeque<f64>>>,
}

/// The switching state of every adaptive policy, by name.
#[derive(Default)]
pub struct Adaptive {
    loads: Mutex<HashMap<String, Load>>,
}

/// What a request routed by [`Adaptive::route`] carries until its stream ends.
pub struct Routed {
    pub request: GenRequest,
    route: Route,
    in_flight: Arc<AtomicUsize>,
    recent: Arc<Mutex<VecDeque<f64>>>,
    window: usize,
    started: Instant,
}

impl Adaptive {
    /// For an adaptive policy's request: the request rewritten to the mode's policy. None for other policies.
    pub fn route(&self, request: &GenRequest) -> Option<Routed> {
        let Algorithm::Adaptive(params) = &request.policy.algorithm else { return None };
        let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        let load = loads.entry(request.policy.name.clone()).or_default();
        // This request counts in the queue it joins.
        let depth = load.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let signal = match params.signal {
            LoadSignal::QueueDepth => Some(depth as f64),
            LoadSignal::P95E2e => p95(&load.recent.lock().unwrap_or_else(PoisonError::into_inner)),
        };
        if let Some(s) = signal {
            load.mode = params.next_mode(load.mode, s);
        }
        let Some(target) = target(params, load.mode) else {
            load.in_flight.fetch_sub(1, Ordering::SeqCst);
            return None;
        };
        let mut routed = request.clone();
        routed.policy = Arc::new(target.clone());
        Some(Routed {
            request: routed,
            route: Route { policy: target.name.clone(), rule: load.mode.label().into(), load: signal, ..Route::default() },
            in_flight: load.in_flight.clone(),
            recent: load.recent.clone(),
            window: params.window,
            started: Instant::now(),
        })
    }
}

fn target(params: &AdaptiveParams, mode: Mode) -> Option<&Policy> {
    params.policy(mode)
}

/// p95 (nearest rank) of the recent E2E seconds; None before any request finished.
fn p95(recent: &VecDeque<f64>) -> Option<f64> {
    let mut v: Vec<f64> = recent.iter().copied().collect();
    v.sort_unstable_by(f64::total_cmp);
    ttc_types::timing::percentile_sorted(&v, 95.0)
}

impl Routed {
    /// Wraps the inner generation: the route joins the policy stats of its `Finished`, and the request leaves
    /// the queue when its stream ends (finished, failed, or dropped).
    pub fn wrap(self, inner: EventStream) -> EventStream {
        Box::pin(RoutedStream { inner, routed: self, done: false })
    }
}

/// Leaves the queue once, whichever way the request ends.
impl Drop for Routed {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct RoutedStream {
    inner: EventStream,
    routed: Routed,
    done: bool,
}

impl Stream for RoutedStream {
    type Item = EventItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<EventItem>> {
        let mut item = match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        if let Some(Ok(GenEvent::Finished { stats, .. })) = &mut item {
            if !self.done {
                self.done = true;
                stats.route = Some(self.routed.route.clone());
                let e2e = self.routed.started.elapsed().as_secs_f64();
                let mut recent = self.routed.recent.lock().unwrap_or_else(PoisonError::into_inner);
                recent.push_back(e2e);
                while recent.len() > self.routed.window {
                    recent.pop_front();
                }
            }
        }
        Poll::Ready(item)
    }
}

/// Any backend, with adaptive policies switched by load before the request reaches it.
pub struct AdaptiveBackend {
    inner: Arc<dyn Backend>,
    adaptive: Adaptive,
}

impl AdaptiveBackend {
    pub fn new(inner: Arc<dyn Backend>) -> AdaptiveBackend {
        AdaptiveBackend { inner, adaptive: Adaptive::default() }
    }
}

#[async_trait]
impl Backend for AdaptiveBackend {
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }

    async fn generate(&self, request: &GenRequest) -> Result<EventStream, BackendError> {
        match self.adaptive.route(request) {
            Some(routed) => {
                let g = self.inner.generate(&routed.request).await?;
                Ok(routed.wrap(g))
            }
            None => self.inner.generate(request).await,
        }
    }

    fn max_concurrency(&self, policy: &Policy) -> Option<usize> {
        match policy.algorithm {
            Algorithm::Adaptive(_) => None,
            _ => self.inner.max_concurrency(policy),
        }
    }

    async fn fidelity(&self, request: &GenRequest) -> Option<Result<ttc_types::Fidelity, BackendError>> {
        self.inner.fidelity(request).await
    }

    fn start_prefix_cache(&self, budget_bytes: usize) -> Result<bool, BackendError> {
        self.inner.start_prefix_cache(budget_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::{Reply, ScriptedBackend, Step};
    use futures_util::StreamExt;
    use std::time::Duration;

    const POLICIES: &str = "\
q: {}
f:
  algorithm: early_exit_fixed
  params: {exit_layer: 20}
auto:
  algorithm: adaptive
  params: {quality: q, fast: f, high: 3, low: 1}
p95:
  algorithm: adaptive
  params: {quality: q, fast: f, signal: p95_e2e, high: 2.0, low: 1.0, window: 2}
";

    fn request(policy: &str) -> GenRequest {
        let policies = ttc_policy::parse_policies(POLICIES, std::path::Path::new("p.yaml")).unwrap();
        GenRequest {
            messages: vec![],
            policy: Arc::new(policies.into_iter().find(|p| p.name == policy).unwrap()),
            model: "m".into(),
            max_tokens: 4,
            temperature: 0.0,
            top_p: None,
            seed: None,
            extra_body: Default::default(),
            logprobs: None,
            tags: Default::default(),
        }
    }

    /// Every request takes 10 s (tokio's clock) and names the policy that served it.
    fn backend() -> AdaptiveBackend {
        let scripted = ScriptedBackend::new(|req, _| {
            Reply::Stream(vec![Step::Delay(Duration::from_secs(10)), Step::text(&req.policy.name), Step::finish(None)])
        });
        AdaptiveBackend::new(Arc::new(scripted))
    }

    /// Plays a generation to its end; returns its route.
    async fn finish(mut events: EventStream) -> Route {
        while let Some(ev) = events.next().await {
            if let GenEvent::Finished { stats, .. } = ev.unwrap() {
                return stats.route.unwrap();
            }
        }
        panic!("no Finished event")
    }

    async fn mode_of(b: &AdaptiveBackend, policy: &str) -> (EventStream, String) {
        let g = b.generate(&request(policy)).await.unwrap();
        let name = b.adaptive.loads.lock().unwrap()[policy].mode.label().to_string();
        (g, name)
    }

    #[tokio::test(start_paused = true)]
    async fn queue_depth_switches_to_fast_and_back_with_hysteresis() {
        let b = backend();
        assert_eq!(b.max_concurrency(&request("auto").policy), None, "its queue must reach the backend");
        let (g1, m1) = mode_of(&b, "auto").await; // depth 1
        let (g2, m2) = mode_of(&b, "auto").await; // depth 2
        let (g3, m3) = mode_of(&b, "auto").await; // depth 3 = high: fast
        let (g4, m4) = mode_of(&b, "auto").await; // depth 4
        assert_eq!([m1, m2, m3, m4], ["quality", "quality", "fast", "fast"]);
        drop((g3, g4)); // dropped streams leave the queue: 2 in flight
        let (g5, m5) = mode_of(&b, "auto").await; // depth 3: still fast
        drop(g5);
        let r1 = finish(g1).await; // 10 s pass; 1 in flight
        assert_eq!((r1.policy.as_str(), r1.rule.as_str(), r1.load), ("q", "quality", Some(1.0)));
        let (g6, m6) = mode_of(&b, "auto").await; // depth 2, inside the band: still fast
        assert_eq!(m5, "fast");
        assert_eq!(m6, "fast");
        let r6 = finish(g6).await;
        assert_eq!((r6.policy.as_str(), r6.rule.as_str(), r6.load), ("f", "fast", Some(2.0)));
        finish(g2).await; // queue empty
        let (g7, m7) = mode_of(&b, "auto").await; // depth 1 = low: back to quality
        assert_eq!(m7, "quality");
        assert_eq!(finish(g7).await.policy, "q");
    }

    #[tokio::test(start_paused = true)]
    async fn recent_p95_above_the_slo_switches_to_fast() {
        let b = backend();
        // Two requests running at once: each takes 10 s, so the recent p95 (10 s) is over the 2 s bound.
        let (a, _) = mode_of(&b, "p95").await;
        let ra = finish(a).await;
        assert_eq!((ra.rule.as_str(), ra.load), ("quality", None), "no finished request yet: no signal");
        let (c, m) = mode_of(&b, "p95").await;
        assert_eq!(m, "fast");
        assert_eq!(finish(c).await.load, Some(10.0));
    }
}
