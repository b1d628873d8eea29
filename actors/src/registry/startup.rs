//! The start-up load: every index stored in storaged becomes an index in the registry,
//! loaded in parallel (by the loader, each within a timeout), then the objects no index
//! needs are collected. Loads that failed for a transient reason are retried in the
//! background with backoff; a stored index that fails its checks is logged, left in place
//! and reported in `/health`, its name reserved until an operator deletes or repairs it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::{LoadFailure, Registry};
use crate::persist::loader::{self, Keep, Loaded};
use crate::storaged_client::{StoragedClient, StoreError};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What the start-up load found.
#[derive(Debug, Default)]
pub struct RehydrateReport {
    pub loaded: usize,
    pub failed: usize,
    /// Failed for a transient reason; `retry_failed_loads` keeps trying them.
    pub retrying: usize,
    /// Objects no manifest needed, deleted after the load.
    pub orphans_removed: usize,
}

impl Registry {
    /// Loads every stored index, `parallel` at a time, each within `timeout`, then deletes
    /// orphaned objects. Errors only when storaged cannot list its objects.
    pub async fn rehydrate(
        &self,
        store: &StoragedClient,
        timeout: Duration,
        parallel: usize,
    ) -> Result<RehydrateReport, StoreError> {
        let objects = loader::list_objects(store).await?;
        let names = loader::stored_names(&objects);
        let total = names.len();
        log::info!("loading {total} persisted indexes from storaged");
        let mut report = RehydrateReport::default();
        let engine = self.engine();
        let mut loads = futures::stream::iter(names.into_iter().map(|name| async move {
            let started = Instant::now();
            let result = loader::load(store, &name, timeout, engine).await;
            (name, result, started.elapsed())
        }))
        .buffer_unordered(parallel.max(1));
        let mut done = 0;
        let mut needed: HashMap<String, Keep> = HashMap::new();
        while let Some((name, result, took)) = loads.next().await {
            done += 1;
            let keep = result.as_ref().ok().map(Keep::of);
            match self.install(&name, result, false) {
                Ok(count) => {
                    report.loaded += 1;
                    log::info!(
                        "loaded index {done}/{total}: {name:?}, {count} items, {} ms",
                        took.as_millis()
                    );
                    if let Some(keep) = keep {
                        needed.insert(name, keep);
                    }
                }
                Err(failure) => {
                    report.failed += 1;
                    if failure.retrying {
                        report.retrying += 1;
                    }
                    log::error!(
                        "index {done}/{total}: {} not loaded, file left in place{}: {}",
                        failure.key,
                        if failure.retrying { ", will retry" } else { "" },
                        failure.error
                    );
                    self.record_failure(failure);
                }
            }
        }
        report.orphans_removed =
            loader::collect_orphans(store, &objects, &needed, |name| self.has_failure(name)).await;
        Ok(report)
    }

    /// Retries, with backoff, every load that failed for a transient reason, until each
    /// one loads or fails for good (or is deleted by an operator). Runs until none is left.
    pub async fn retry_failed_loads(&self, store: StoragedClient, timeout: Duration) {
        let mut wait = FIRST_RETRY;
        loop {
            let pending: Vec<LoadFailure> =
                self.failures().into_iter().filter(|f| f.retrying).collect();
            if pending.is_empty() {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RETRY);
            for failure in pending {
                // Deleted by an operator meanwhile?
                if !self.has_failure(&failure.name) {
                    continue;
                }
                let result = loader::load(&store, &failure.name, timeout, self.engine()).await;
                match self.install(&failure.name, result, true) {
                    Ok(count) => {
                        log::info!("index {:?} loaded on retry, {count} items", failure.name)
                    }
                    Err(again) => {
                        if self.has_failure(&failure.name) {
                            if !again.retrying {
                                log::error!(
                                    "{} not loaded, file left in place: {}",
                                    again.key,
                                    again.error
                                );
                            }
                            self.record_failure(again);
                        }
                    }
                }
            }
        }
    }

    /// Puts a loaded index in, or describes why it is not there. Answers its item count.
    fn install(
        &self,
        name: &str,
        result: Result<Loaded, LoadFailure>,
        retry: bool,
    ) -> Result<usize, LoadFailure> {
        let loaded = result?;
        if let Some(w) = &loaded.warning {
            log::error!("index {name:?}: {w}");
        }
        let inserted = if retry {
            self.insert_retried(loaded)
        } else {
            self.insert_loaded(loaded)
        };
        let handle = inserted.map_err(|e| LoadFailure {
            name: name.to_string(),
            key: crate::persist::layout::manifest_key(name),
            error: e.to_string(),
            retrying: false,
        })?;
        Ok(handle.index.stats().count)
    }
}
