//! The last few filters searched on a sealed segment and which of its points match each,
//! as a bitset: a filter that many searches repeat (a tenant, a language, a category) is
//! tried on every point's metadata once per segment, not once per search. A sealed
//! segment's points and metadata never change (tombstones are applied apart), so an entry
//! stays true for the segment's life.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::bitset::BitSet;

/// Filters remembered per segment: at most this many bits per point.
const ENTRIES: usize = 8;
/// Filters a segment remembers having been asked once (see `asked_before`).
const ASKED: usize = 32;

/// A filter's result on one segment: which points match, and how many.
pub struct Matches {
    pub bits: BitSet,
    pub count: usize,
}

#[derive(Default)]
pub struct FilterCache {
    /// Most recently used first, by the filter's JSON text.
    entries: Mutex<VecDeque<(String, Arc<Matches>)>>,
    /// Filters asked once and not remembered, most recent first.
    asked: Mutex<VecDeque<String>>,
    /// Heap bytes of all of the above, for the index's `memory_bytes_estimate`.
    bytes: AtomicUsize,
    /// Set when `bytes` changes, until `take_changed`.
    changed: AtomicBool,
}

fn entry_bytes(key: &str, matches: &Matches) -> usize {
    key.len() + matches.bits.heap_bytes() + std::mem::size_of::<Matches>()
}

impl FilterCache {
    /// The result remembered for `key`, if any (it becomes the most recent).
    pub fn get(&self, key: &str) -> Option<Arc<Matches>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let at = entries.iter().position(|(k, _)| k == key)?;
        if at == 0 {
            return Some(entries[0].1.clone());
        }
        let entry = entries.remove(at)?;
        let matches = entry.1.clone();
        entries.push_front(entry);
        Some(matches)
    }

    /// Whether `key` was asked before (since the last `ASKED` filters); notes it if not.
    /// A large segment answers a filter's first search without trying it on every point
    /// when it can, and tries it on every point (to remember the result) from the second.
    pub fn asked_before(&self, key: &str) -> bool {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        if asked.iter().any(|k| k == key) {
            return true;
        }
        asked.push_front(key.to_string());
        self.bytes.fetch_add(key.len(), Ordering::Relaxed);
        self.changed.store(true, Ordering::Release);
        while asked.len() > ASKED {
            if let Some(old) = asked.pop_back() {
                self.bytes.fetch_sub(old.len(), Ordering::Relaxed);
            }
        }
        false
    }

    /// Whether the bytes held changed since the last call (so that the index records its
    /// sizes again only then, not after every filtered search).
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// Heap bytes held: remembered results and filter texts.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Remembers a result, forgetting the least recently used past `ENTRIES`.
    pub fn put(&self, key: String, matches: Arc<Matches>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = entries.iter().position(|(k, _)| *k == key) {
            if let Some((k, m)) = entries.remove(at) {
                self.bytes.fetch_sub(entry_bytes(&k, &m), Ordering::Relaxed);
            }
        }
        self.bytes
            .fetch_add(entry_bytes(&key, &matches), Ordering::Relaxed);
        self.changed.store(true, Ordering::Release);
        entries.push_front((key, matches));
        while entries.len() > ENTRIES {
            if let Some((k, m)) = entries.pop_back() {
                self.bytes.fetch_sub(entry_bytes(&k, &m), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(n: usize) -> Arc<Matches> {
        Arc::new(Matches {
            bits: BitSet::with_len(n),
            count: n,
        })
    }

    #[test]
    fn keeps_the_most_recently_used_filters() {
        let cache = FilterCache::default();
        for i in 0..ENTRIES {
            cache.put(format!("f{i}"), matches(i));
        }
        // f0 used again: f1 is now the least recent and goes first
        assert_eq!(cache.get("f0").map(|m| m.count), Some(0));
        cache.put("new".into(), matches(99));
        assert!(cache.get("f1").is_none());
        assert_eq!(cache.get("f0").map(|m| m.count), Some(0));
        assert_eq!(cache.get("new").map(|m| m.count), Some(99));
        // putting a known key replaces it
        cache.put("new".into(), matches(7));
        assert_eq!(cache.get("new").map(|m| m.count), Some(7));
        assert_eq!(cache.entries.lock().unwrap().len(), ENTRIES);
        // the bytes held follow what is kept
        let kept: usize = cache
            .entries
            .lock()
            .unwrap()
            .iter()
            .map(|(k, m)| entry_bytes(k, m))
            .sum();
        assert_eq!(cache.heap_bytes(), kept);
        assert!(!cache.asked_before("abc"));
        assert_eq!(cache.heap_bytes(), kept + 3);
    }

    #[test]
    fn a_filter_is_asked_before_from_its_second_time() {
        let cache = FilterCache::default();
        assert!(!cache.asked_before("a"));
        assert!(cache.asked_before("a"));
        for i in 0..ASKED {
            assert!(!cache.asked_before(&format!("f{i}")));
        }
        assert!(!cache.asked_before("a"), "forgotten after ASKED others");
    }
}
