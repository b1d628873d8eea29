//! The service's Prometheus metrics, in one registry: persistence (saves, bytes, latency,
//! backlog, flush waiters, start-up load), background index jobs, HTTP requests (by route
//! and status, recorded by the front), and the process (resident memory, CPU, open files).
//! Per-index gauges are set from the registry of indexes when `/metrics` is scraped.
//!
//! Metric names follow Prometheus conventions: `_total` counters, `_seconds`/`_bytes`
//! units. They are documented in `docs/operations.md` and used by `deploy/grafana-dashboard.json`
//! and `deploy/prometheus-alerts.yml`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub saves: IntCounterVec,
    pub save_bytes: IntCounter,
    pub save_seconds: Histogram,
    pub save_lag_seconds: Histogram,
    pub deletes: IntCounterVec,
    pub dirty_indexes: IntGauge,
    pub oldest_unsaved_seconds: IntGauge,
    pub flush_waiters: IntGauge,
    pub log_bytes_waiting: IntGauge,
    pub rehydrate_seconds: prometheus::Gauge,
    pub load_failures: IntGauge,
    pub jobs: IntCounterVec,
    pub job_seconds: HistogramVec,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub busy_rejections: IntCounterVec,
    pub batch_searches: IntCounterVec,
    /// Per segment of a filtered search: how the segment was searched.
    pub filtered_segment_searches: IntCounterVec,
    pub index_items: IntGaugeVec,
    pub index_tombstones: IntGaugeVec,
    pub index_memory_bytes: IntGaugeVec,
    pub index_disk_bytes: IntGaugeVec,
    pub index_segments: IntGaugeVec,
    pub index_unsealed: IntGaugeVec,
    pub replica_lag_ms: IntGaugeVec,
    pub replica_applied_lsn: IntGaugeVec,
    pub replica_load_seconds: Histogram,
    pub replica_segments_loaded: IntCounterVec,
    pub indexes: IntGauge,
    pub allocator_bytes: IntGaugeVec,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registration");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registration");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registration");
    g
}

/// Latency buckets from 0.5 ms to 60 s.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

// Metric definitions are fixed at compile time: creating or registering them can only
// fail on a programming error (a duplicate name), caught by the first test that renders.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    #[cfg(target_os = "linux")]
    {
        let _ = r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
    }
    let save_seconds = Histogram::with_opts(
        HistogramOpts::new(
            "vectord_save_seconds",
            "Time of one save of one index (log, segments, manifest).",
        )
        .buckets(SECONDS.to_vec()),
    )
    .expect("metric definition");
    r.register(Box::new(save_seconds.clone()))
        .expect("metric registration");
    // Fine buckets around the debounce cap (2 s by default): this is the kill -9 loss window.
    let save_lag_seconds = Histogram::with_opts(
        HistogramOpts::new(
            "vectord_save_lag_seconds",
            "Time from the oldest change a save covers to the end of that save: how long an \
             acknowledged write waited to be durable, at worst.",
        )
        .buckets(vec![
            0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 5.0,
            7.5, 10.0, 20.0, 30.0, 60.0, 120.0,
        ]),
    )
    .expect("metric definition");
    r.register(Box::new(save_lag_seconds.clone()))
        .expect("metric registration");
    let job_seconds = HistogramVec::new(
        HistogramOpts::new(
            "vectord_index_job_seconds",
            "Time to build a background index job (seal, merge, compaction).",
        )
        .buckets(SECONDS.to_vec()),
        &["kind"],
    )
    .expect("metric definition");
    r.register(Box::new(job_seconds.clone()))
        .expect("metric registration");
    let request_seconds = HistogramVec::new(
        HistogramOpts::new(
            "vectord_http_request_seconds",
            "HTTP request latency, by route and status.",
        )
        .buckets(SECONDS.to_vec()),
        &["route", "status"],
    )
    .expect("metric definition");
    r.register(Box::new(request_seconds.clone()))
        .expect("metric registration");
    let replica_load_seconds = Histogram::with_opts(
        HistogramOpts::new(
            "vectord_replica_load_seconds",
            "On a read replica: time to load an index for a manifest it had not seen (a new \
             index, or new segments), before it is swapped in.",
        )
        .buckets(SECONDS.to_vec()),
    )
    .expect("metric definition");
    r.register(Box::new(replica_load_seconds.clone()))
        .expect("metric registration");
    let rehydrate_seconds = prometheus::Gauge::new(
        "vectord_rehydrate_seconds",
        "Time the start-up load of persisted indexes took.",
    )
    .expect("metric definition");
    r.register(Box::new(rehydrate_seconds.clone()))
        .expect("metric registration");
    Metrics {
        saves: counter_vec(
            &r,
            "vectord_saves_total",
            "Saves of an index, by result (ok, failed).",
            &["result"],
        ),
        save_bytes: {
            let c = IntCounter::new(
                "vectord_saved_bytes_total",
                "Bytes written to storaged by saves.",
            )
            .expect("metric definition");
            r.register(Box::new(c.clone()))
                .expect("metric registration");
            c
        },
        save_seconds,
        save_lag_seconds,
        deletes: counter_vec(
            &r,
            "vectord_index_deletes_total",
            "Removals of a deleted index's stored copy, by result.",
            &["result"],
        ),
        dirty_indexes: gauge(
            &r,
            "vectord_dirty_indexes",
            "Indexes with changes not yet stored.",
        ),
        oldest_unsaved_seconds: gauge(
            &r,
            "vectord_oldest_unsaved_change_seconds",
            "Age of the oldest change not yet stored, over all indexes.",
        ),
        flush_waiters: gauge(
            &r,
            "vectord_flush_waiters",
            "Flush requests waiting for a save.",
        ),
        log_bytes_waiting: gauge(
            &r,
            "vectord_log_bytes_waiting",
            "Bytes of log objects not yet covered by a manifest, over all indexes.",
        ),
        rehydrate_seconds,
        load_failures: gauge(
            &r,
            "vectord_index_load_failures",
            "Persisted indexes that failed to load.",
        ),
        jobs: counter_vec(
            &r,
            "vectord_index_jobs_total",
            "Background index jobs, by kind and result.",
            &["kind", "result"],
        ),
        job_seconds,
        requests: counter_vec(
            &r,
            "vectord_http_requests_total",
            "HTTP requests answered, by route and status.",
            &["route", "status"],
        ),
        request_seconds,
        busy_rejections: counter_vec(
            &r,
            "vectord_busy_rejections_total",
            "Requests refused with 503 busy, by reason.",
            &["reason"],
        ),
        batch_searches: counter_vec(
            &r,
            "vectord_batch_searches_total",
            "Searches of batch requests, by the thread that ran them (the HTTP worker, or a search thread that helped it).",
            &["ran_on"],
        ),
        filtered_segment_searches: counter_vec(
            &r,
            "vectord_filtered_segment_searches_total",
            "Segments searched under a filter, by plan: scan (exact distances over the matching points), walk (a graph walk over remembered matches), sampled_walk (a large segment's first search of a filter most points pass: a walk trying the filter on the points it meets), index_scan (field indexes found few candidates: exact distances over those that pass), index_walk (field indexes found many: a graph walk trying the filter on the points it meets).",
            &["plan"],
        ),
        index_items: gauge_vec(
            &r,
            "vectord_index_items",
            "Live items per index.",
            &["index"],
        ),
        index_tombstones: gauge_vec(
            &r,
            "vectord_index_tombstones",
            "Deleted or replaced points not yet compacted away, per index.",
            &["index"],
        ),
        index_memory_bytes: gauge_vec(
            &r,
            "vectord_index_memory_bytes",
            "Heap bytes an index holds.",
            &["index"],
        ),
        index_disk_bytes: gauge_vec(
            &r,
            "vectord_index_disk_bytes",
            "Bytes of the cache files an on_disk index maps its vectors from.",
            &["index"],
        ),
        index_segments: gauge_vec(
            &r,
            "vectord_index_sealed_segments",
            "Sealed segments per index.",
            &["index"],
        ),
        index_unsealed: gauge_vec(
            &r,
            "vectord_index_unsealed_items",
            "Points per index not yet in a sealed segment.",
            &["index"],
        ),
        replica_lag_ms: gauge_vec(
            &r,
            "vectord_replica_lag_milliseconds",
            "On a read replica: how old its view of an index may be (since the start of the last poll after which it had applied everything stored).",
            &["index"],
        ),
        replica_applied_lsn: gauge_vec(
            &r,
            "vectord_replica_applied_lsn",
            "On a read replica: the last of the primary's log sequence numbers applied, per index.",
            &["index"],
        ),
        replica_load_seconds,
        replica_segments_loaded: counter_vec(
            &r,
            "vectord_replica_segments_loaded_total",
            "On a read replica: sealed segments its loads took from the index it already \
             served (from=memory) or read from storaged or its cache files (from=store).",
            &["from"],
        ),
        indexes: gauge(&r, "vectord_indexes", "Indexes loaded."),
        allocator_bytes: gauge_vec(
            &r,
            "vectord_allocator_bytes",
            "The memory allocator's own counters: allocated (live heap), active (pages \
             holding it), resident (an upper bound of the allocator's pages in memory), retained (address \
             space kept for reuse, not resident), metadata.",
            &["kind"],
        ),
        registry: r,
    }
});

/// The service's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// The whole exposition, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
