//! Prometheus metrics owned by one application instance (no global recorder, so every test
//! app counts only its own requests).
//!
//! The request path is hot: the counter and histogram handles of each (route, method, status)
//! are registered once and kept, so recording a request is two atomic updates found through a
//! lock-free map (cores answering requests never write to a shared lock word), with no label
//! allocation. Histogram samples are buffered by the exporter until they
//! are drained, so [`Metrics::run_upkeep`] must run periodically (the server spawns
//! [`Metrics::spawn_upkeep`]); a scrape of `/metrics` drains them too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const REQUEST_DURATION: &str = "http_request_duration_seconds";
const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// How often buffered histogram samples are folded into their buckets.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The handles of one (method, status) under a route.
#[derive(Clone)]
struct Series {
    method: String,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Route template → the series seen under it (a handful each, scanned linearly). Read on
    /// every request; replaced (copied with the new series) the first time a (route, method,
    /// status) is seen.
    series: ArcSwap<HashMap<String, Vec<Series>>>,
    /// Serialises those replacements so none is lost.
    adding: Mutex<()>,
}

impl Metrics {
    pub fn new() -> Result<Self, String> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), DURATION_BUCKETS)
            .map_err(|error| error.to_string())?
            .build_recorder();
        let handle = recorder.handle();
        Ok(Self { recorder, handle, series: ArcSwap::default(), adding: Mutex::new(()) })
    }

    /// Counts one answered request; `route` is the matched route template, never the raw path,
    /// so label cardinality stays bounded.
    pub fn record_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Some(found) = self
            .series
            .load()
            .get(route)
            .and_then(|list| list.iter().find(|s| s.status == status && s.method == method))
        {
            found.requests.increment(1);
            found.duration.record(seconds);
            return;
        }
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        let (requests, duration) = metrics::with_local_recorder(&self.recorder, || {
            (
                metrics::counter!("http_requests_total", &labels),
                metrics::histogram!(REQUEST_DURATION, &labels),
            )
        });
        requests.increment(1);
        duration.record(seconds);
        let _adding = self.adding.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut series = HashMap::clone(&self.series.load());
        let list = series.entry(route.to_owned()).or_default();
        if !list.iter().any(|s| s.status == status && s.method == method) {
            list.push(Series { method: method.to_owned(), status, requests, duration });
            self.series.store(Arc::new(series));
        }
    }

    /// Folds buffered histogram samples into their buckets, bounding memory between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs [`Self::run_upkeep`] every [`UPKEEP_INTERVAL`] until the metrics are dropped.
    pub fn spawn_upkeep(metrics: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(metrics);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                match weak.upgrade() {
                    Some(metrics) => metrics.run_upkeep(),
                    None => break,
                }
            }
        });
    }

    /// Counts rows the sweeper removed from `table` (`gatehouse_sweeper_removed_total`).
    pub fn record_swept(&self, table: &'static str, removed: u64) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("gatehouse_sweeper_removed_total", "table" => table)
                .increment(removed);
        });
    }

    /// Sets a gauge (values read at scrape time: the outbox and the event queue).
    pub fn set_gauge(&self, name: &'static str, labels: &[(&'static str, String)], value: f64) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::gauge!(name, labels).set(value);
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_series_keep_counting_per_route_method_and_status() {
        let metrics = Metrics::new().unwrap();
        for _ in 0..3 {
            metrics.record_request("GET", "/a", 200, 0.001);
        }
        metrics.record_request("POST", "/a", 200, 0.001);
        metrics.record_request("GET", "/a", 404, 0.001);
        metrics.run_upkeep();
        let text = metrics.render();
        let count = |method: &str, status: &str| {
            text.lines()
                .find(|line| {
                    line.starts_with("http_requests_total")
                        && line.contains(&format!("method=\"{method}\""))
                        && line.contains(&format!("status=\"{status}\""))
                })
                .and_then(|line| line.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(count("GET", "200").as_deref(), Some("3"), "{text}");
        assert_eq!(count("POST", "200").as_deref(), Some("1"), "{text}");
        assert_eq!(count("GET", "404").as_deref(), Some("1"), "{text}");
        assert!(
            text.contains(
                "http_request_duration_seconds_count{method=\"GET\",route=\"/a\",status=\"200\"} 3"
            ),
            "{text}"
        );
    }
}
