//! The start-up load: every `_vectors/*.lhv1` in storaged becomes an index in the
//! registry, loaded in parallel, each within a timeout. A file that fails its checks is
//! refused, logged, left in place and reported in `/health`; its name stays reserved (the
//! registry refuses to create an index over it) until an operator deletes or repairs it.
//! A load that failed for a transient reason (storaged unreachable, slow or failing) is
//! retried in the background with backoff until it succeeds or fails for good.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::index::params::check_name;
use crate::index::{EngineConfig, Index};
use crate::persister::{KEY_PREFIX, KEY_SUFFIX};
use crate::registry::{LoadFailure, Registry};
use crate::storeclient::{StoreClient, StoreError};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What the start-up load found.
#[derive(Debug, Default)]
pub struct RehydrateReport {
    pub loaded: usize,
    pub failed: usize,
    /// Failed for a transient reason; `retry_failed_loads` keeps trying them.
    pub retrying: usize,
}

/// Why one index did not load.
#[derive(Debug)]
struct LoadError {
    message: String,
    /// Worth trying again (storage trouble), as opposed to a file that fails its checks.
    transient: bool,
}

impl LoadError {
    fn refused(message: String) -> LoadError {
        LoadError {
            message,
            transient: false,
        }
    }
}

/// Loads every index file into the registry, `parallel` at a time, each within `timeout`.
/// Errors only when storaged cannot list its objects.
pub async fn rehydrate(
    store: &StoreClient,
    registry: &Registry,
    timeout: Duration,
    parallel: usize,
) -> Result<RehydrateReport, StoreError> {
    let objects = store.list(KEY_PREFIX).await?;
    let keys: Vec<String> = objects
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with(KEY_SUFFIX) && !k[KEY_PREFIX.len()..].contains('/'))
        .collect();
    let total = keys.len();
    log::info!("loading {total} persisted indexes from storaged");
    let mut report = RehydrateReport::default();
    let engine = registry.engine();
    let mut loads = futures::stream::iter(keys.into_iter().map(|key| {
        let store = store.clone();
        async move {
            let started = Instant::now();
            let result = load_within(&store, &key, timeout, engine).await;
            (key, result, started.elapsed())
        }
    }))
    .buffer_unordered(parallel.max(1));
    let mut done = 0;
    while let Some((key, result, took)) = loads.next().await {
        done += 1;
        match install(registry, &key, result) {
            Ok(count) => {
                report.loaded += 1;
                log::info!(
                    "loaded index {done}/{total}: {:?}, {count} items, {} ms",
                    name_of(&key),
                    took.as_millis()
                );
            }
            Err(failure) => {
                report.failed += 1;
                if failure.retrying {
                    report.retrying += 1;
                }
                log::error!(
                    "index {done}/{total}: {key} not loaded, file left in place{}: {}",
                    if failure.retrying { ", will retry" } else { "" },
                    failure.error
                );
                registry.record_failure(failure);
            }
        }
    }
    Ok(report)
}

/// Retries, with backoff, every load that failed for a transient reason, until each one
/// loads or fails for good (or is deleted by an operator). Runs until none is left.
pub async fn retry_failed_loads(store: StoreClient, registry: &Registry, timeout: Duration) {
    let mut wait = FIRST_RETRY;
    loop {
        let pending: Vec<LoadFailure> = registry
            .failures()
            .into_iter()
            .filter(|f| f.retrying)
            .collect();
        if pending.is_empty() {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RETRY);
        for failure in pending {
            // Deleted by an operator meanwhile?
            if !registry.has_failure(&failure.name) {
                continue;
            }
            let result = load_within(&store, &failure.key, timeout, registry.engine()).await;
            match install(registry, &failure.key, result) {
                Ok(count) => log::info!("index {:?} loaded on retry, {count} items", failure.name),
                Err(again) => {
                    if registry.has_failure(&failure.name) {
                        if !again.retrying {
                            log::error!(
                                "{} not loaded, file left in place: {}",
                                again.key,
                                again.error
                            );
                        }
                        registry.record_failure(again);
                    }
                }
            }
        }
    }
}

/// Puts a loaded index into the registry, or describes why it is not there.
fn install(
    registry: &Registry,
    key: &str,
    result: Result<Index, LoadError>,
) -> Result<usize, LoadFailure> {
    let failure = |message: String, retrying: bool| LoadFailure {
        name: name_of(key).to_string(),
        key: key.to_string(),
        error: message,
        retrying,
    };
    let index = result.map_err(|e| failure(e.message, e.transient))?;
    let handle = registry
        .insert_loaded(index)
        .map_err(|e| failure(e.to_string(), false))?;
    Ok(handle.index.stats().count)
}

/// The index name of an object key (the key itself when it is not an index file).
fn name_of(key: &str) -> &str {
    key.strip_prefix(KEY_PREFIX)
        .and_then(|k| k.strip_suffix(KEY_SUFFIX))
        .unwrap_or(key)
}

async fn load_within(
    store: &StoreClient,
    key: &str,
    timeout: Duration,
    engine: EngineConfig,
) -> Result<Index, LoadError> {
    match tokio::time::timeout(timeout, load_one(store, key, engine)).await {
        Ok(result) => result,
        Err(_) => Err(LoadError {
            message: format!("timed out after {} s", timeout.as_secs()),
            transient: true,
        }),
    }
}

/// Fetches, checks and restores one index.
async fn load_one(
    store: &StoreClient,
    key: &str,
    engine: EngineConfig,
) -> Result<Index, LoadError> {
    let name = name_of(key).to_string();
    check_name(&name).map_err(|e| LoadError::refused(e.to_string()))?;
    let bytes = store.get(key).await.map_err(|e| LoadError {
        transient: !matches!(e, StoreError::KeyNotFound(_)),
        message: format!("reading: {e}"),
    })?;
    let restored = actix_rt::task::spawn_blocking(move || -> Result<Index, String> {
        let index = Index::decode(&bytes, engine).map_err(|e| format!("refused: {e}"))?;
        if index.params().name != name {
            return Err(format!(
                "refused: file holds index {:?}, not {name:?}",
                index.params().name
            ));
        }
        Ok(index)
    })
    .await
    .map_err(|e| LoadError::refused(format!("loading panicked: {e}")))?;
    restored.map_err(LoadError::refused)
}
