//! `/metrics`: the Prometheus exposition of the service's metrics (defined in
//! `vectord_actors::metrics`), with the per-index gauges set from the registry of indexes
//! at each scrape (so a deleted index's series disappear).

use vectord_actors::metrics::metrics;
use vectord_actors::registry::Registry;
use vectord_actors::replica::FollowStatus;

/// The whole exposition.
pub fn render(registry: &Registry, following: Option<&FollowStatus>) -> String {
    let m = metrics();
    m.replica_lag_ms.reset();
    m.replica_applied_lsn.reset();
    for (name, f) in following.map(FollowStatus::all).unwrap_or_default() {
        let lag = i64::try_from(f.lag_ms()).unwrap_or(i64::MAX);
        m.replica_lag_ms.with_label_values(&[&name]).set(lag);
        m.replica_applied_lsn
            .with_label_values(&[&name])
            .set(i64::try_from(f.applied_lsn).unwrap_or(i64::MAX));
    }
    let indexes = registry.list();
    m.indexes.set(indexes.len() as i64);
    m.load_failures.set(registry.failures().len() as i64);
    for gauge in [
        &m.index_items,
        &m.index_tombstones,
        &m.index_memory_bytes,
        &m.index_disk_bytes,
        &m.index_segments,
        &m.index_unsealed,
    ] {
        gauge.reset();
    }
    for h in &indexes {
        let s = h.index.stats();
        let name = [h.name.as_str()];
        m.index_items.with_label_values(&name).set(s.count as i64);
        m.index_tombstones
            .with_label_values(&name)
            .set(s.tombstones as i64);
        m.index_memory_bytes
            .with_label_values(&name)
            .set(s.memory_bytes as i64);
        m.index_disk_bytes
            .with_label_values(&name)
            .set(s.disk_bytes as i64);
        m.index_segments
            .with_label_values(&name)
            .set(s.sealed_segments as i64);
        m.index_unsealed
            .with_label_values(&name)
            .set(s.unsealed_points as i64);
    }
    m.allocator_bytes.reset();
    for (kind, bytes) in allocator_bytes() {
        m.allocator_bytes
            .with_label_values(&[kind])
            .set(bytes as i64);
    }
    m.render()
}

/// jemalloc's counters, refreshed (they are cached until the epoch advances); empty when
/// they cannot be read. They describe the jemalloc linked in, which is vectord's global
/// allocator: in a program that allocates otherwise they stay near zero.
fn allocator_bytes() -> Vec<(&'static str, usize)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    if epoch::advance().is_err() {
        return Vec::new();
    }
    [
        ("allocated", stats::allocated::read()),
        ("active", stats::active::read()),
        ("resident", stats::resident::read()),
        ("retained", stats::retained::read()),
        ("metadata", stats::metadata::read()),
    ]
    .into_iter()
    .filter_map(|(kind, value)| value.ok().map(|v| (kind, v)))
    .collect()
}
