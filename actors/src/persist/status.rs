//! What the persister knows about each index's saves, kept where the HTTP front can read
//! it without sending the persister a message (so `/health` and the index info answer at
//! once, whatever the persister is busy with).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

/// The saves of one index.
#[derive(Debug, Clone, Default)]
pub struct IndexSaves {
    /// When the index was last stored completely.
    pub last_save: Option<SystemTime>,
    /// The last save's error, until a save succeeds.
    pub last_error: Option<String>,
    /// Since when saves have been failing.
    pub failing_since: Option<SystemTime>,
    /// Since when the index has changes not yet stored.
    pub unsaved_since: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct PersistStatus {
    indexes: Mutex<HashMap<String, IndexSaves>>,
}

impl PersistStatus {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, IndexSaves>> {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<IndexSaves> {
        self.lock().get(name).cloned()
    }

    /// Every index the persister knows about, sorted by name.
    pub fn all(&self) -> Vec<(String, IndexSaves)> {
        let mut out: Vec<(String, IndexSaves)> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub(super) fn update(&self, name: &str, f: impl FnOnce(&mut IndexSaves)) {
        f(self.lock().entry(name.to_string()).or_default());
    }

    pub(super) fn remove(&self, name: &str) {
        self.lock().remove(name);
    }
}
