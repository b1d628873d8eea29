//! Counters for `/metrics`, in the Prometheus text format. Kept to a handful of atomics:
//! requests by status class, search latency as a histogram, and per-index gauges read
//! from the registry when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use vectord_actors::registry::Registry;

/// Upper bounds of the search latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Default)]
pub struct Metrics {
    /// Requests answered, by status class 2xx..5xx (index 0..3).
    requests: [AtomicU64; 4],
    search_buckets: [AtomicU64; BUCKETS.len()],
    search_count: AtomicU64,
    search_micros: AtomicU64,
}

impl Metrics {
    pub fn observe_request(&self, status: u16) {
        if let Some(slot) = (status / 100)
            .checked_sub(2)
            .and_then(|i| self.requests.get(i as usize))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn observe_search(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bound, slot) in BUCKETS.iter().zip(&self.search_buckets) {
            if secs <= *bound {
                slot.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.search_count.fetch_add(1, Ordering::Relaxed);
        self.search_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The whole exposition.
    pub fn render(&self, registry: &Registry) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP vectord_http_requests_total HTTP requests answered, by status class."
        );
        let _ = writeln!(out, "# TYPE vectord_http_requests_total counter");
        for (i, n) in self.requests.iter().enumerate() {
            let _ = writeln!(
                out,
                "vectord_http_requests_total{{class=\"{}xx\"}} {}",
                i + 2,
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP vectord_search_seconds Time spent in index searches."
        );
        let _ = writeln!(out, "# TYPE vectord_search_seconds histogram");
        for (bound, n) in BUCKETS.iter().zip(&self.search_buckets) {
            let _ = writeln!(
                out,
                "vectord_search_seconds_bucket{{le=\"{bound}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let count = self.search_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "vectord_search_seconds_bucket{{le=\"+Inf\"}} {count}");
        let secs = self.search_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "vectord_search_seconds_sum {secs}");
        let _ = writeln!(out, "vectord_search_seconds_count {count}");
        let indexes = registry.list();
        let _ = writeln!(out, "# HELP vectord_indexes Indexes loaded.");
        let _ = writeln!(out, "# TYPE vectord_indexes gauge");
        let _ = writeln!(out, "vectord_indexes {}", indexes.len());
        let _ = writeln!(
            out,
            "# HELP vectord_index_load_failures Persisted indexes that failed to load."
        );
        let _ = writeln!(out, "# TYPE vectord_index_load_failures gauge");
        let _ = writeln!(
            out,
            "vectord_index_load_failures {}",
            registry.failures().len()
        );
        let _ = writeln!(out, "# HELP vectord_index_items Live items per index.");
        let _ = writeln!(out, "# TYPE vectord_index_items gauge");
        let stats: Vec<_> = indexes
            .iter()
            .map(|h| (h.name.clone(), h.index.stats()))
            .collect();
        for (name, s) in &stats {
            let _ = writeln!(out, "vectord_index_items{{index=\"{name}\"}} {}", s.count);
        }
        let _ = writeln!(
            out,
            "# HELP vectord_index_tombstones Deleted or replaced points not yet compacted away."
        );
        let _ = writeln!(out, "# TYPE vectord_index_tombstones gauge");
        for (name, s) in &stats {
            let _ = writeln!(
                out,
                "vectord_index_tombstones{{index=\"{name}\"}} {}",
                s.tombstones
            );
        }
        let _ = writeln!(
            out,
            "# HELP vectord_index_memory_bytes Estimated memory per index."
        );
        let _ = writeln!(out, "# TYPE vectord_index_memory_bytes gauge");
        for (name, s) in &stats {
            let _ = writeln!(
                out,
                "vectord_index_memory_bytes{{index=\"{name}\"}} {}",
                s.memory_bytes
            );
        }
        out
    }
}
