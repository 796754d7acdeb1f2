//! Prometheus metrics owned by one application instance (no global recorder, so every test
//! app counts only its own requests).

use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const REQUEST_DURATION: &str = "http_request_duration_seconds";
const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Metrics {
    pub fn new() -> Result<Self, String> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), DURATION_BUCKETS)
            .map_err(|error| error.to_string())?
            .build_recorder();
        let handle = recorder.handle();
        Ok(Self { recorder, handle })
    }

    /// Counts one answered request; `route` is the matched route template, never the raw path,
    /// so label cardinality stays bounded.
    pub fn record_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("http_requests_total", &labels).increment(1);
            metrics::histogram!(REQUEST_DURATION, &labels).record(seconds);
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}
