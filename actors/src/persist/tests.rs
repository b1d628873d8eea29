//! Saves and loads without actix or storaged: an index written to by hand (as its actor
//! would), its changes saved to objects in memory, and loaded back. Each step of a save
//! and of a load that can fail is made to fail here.

use serde_json::json;

use super::layout::{incarnation_dir, manifest_key};
use super::loader::{self, Keep};
use super::objects::memory::MemoryObjects;
use super::save::{self, Changes, SaveError, Stored};
use crate::codec::log::LogBatch;
use crate::codec::manifest::{log_object, segment_object};
use crate::distance::Metric;
use crate::index::{EngineConfig, Index, JobKind, NewItem};
use crate::params::IndexParams;
use crate::sample::seeded_vectors;

const NAME: &str = "docs";
const DIM: usize = 8;
/// `vectord.manifest_log_bytes` for these tests: a log is never long by its size alone.
const LONG_LOG: u64 = 1 << 30;

/// An index with the bookkeeping its actor keeps: lsns, the mutation count, the log
/// records not yet taken by a save.
struct Written {
    index: Index,
    seq: u64,
    lsn: u64,
    log: LogBatch,
}

impl Written {
    fn new() -> Written {
        Written::with_cache(None)
    }

    /// An index whose seals write their cache files under `root` (`on_disk`) when given.
    fn with_cache(root: Option<&'static std::path::Path>) -> Written {
        let params = IndexParams {
            name: NAME.into(),
            dim: DIM,
            distance: Metric::Cosine,
            m: 8,
            ef_construction: 64,
            ef_search: 32,
            quantization: None,
            on_disk: root.is_some(),
        };
        let engine = EngineConfig {
            seal_points: 50,
            max_unsealed_points: 1_000_000,
            cache_root: root,
            ..EngineConfig::default()
        };
        Written {
            index: Index::new(params, engine),
            seq: 1,
            lsn: 0,
            log: LogBatch::default(),
        }
    }

    /// An index as loaded, for checking what it holds.
    fn loaded(loaded: loader::Loaded) -> Written {
        Written {
            index: loaded.index,
            seq: 0,
            lsn: loaded.lsn,
            log: LogBatch::default(),
        }
    }

    /// Adds items `{prefix}{first}..` in one batch.
    fn add(&mut self, prefix: &str, first: usize, count: usize) {
        let vectors = seeded_vectors(first as u64 + 7, count, DIM);
        let raw = vectors
            .into_iter()
            .enumerate()
            .map(|(i, vector)| NewItem {
                id: format!("{prefix}{}", first + i),
                vector,
                metadata: serde_json::from_value(json!({"n": first + i})).unwrap(),
                // every third item has a document, so that they go through saves too
                document: (first + i)
                    .is_multiple_of(3)
                    .then(|| format!("text of {prefix}{}", first + i)),
            })
            .collect();
        let items = self.index.params().check_items(raw).unwrap();
        self.lsn += 1;
        self.log
            .push_add(self.lsn, &crate::index::log_items(&items));
        self.index.add(items, self.lsn).unwrap();
        self.seq += 1;
    }

    fn delete(&mut self, id: &str) {
        assert!(self.index.delete(id), "{id} was there");
        self.lsn += 1;
        self.log.push_delete(self.lsn, id);
        self.seq += 1;
    }

    /// Freezes the growing segment and runs every due seal and merge.
    fn seal(&mut self) {
        self.index.freeze_if_at_least(1);
        loop {
            let mut ran = false;
            for kind in [JobKind::Seal, JobKind::Merge] {
                if let Some(job) = self.index.next_job(kind) {
                    let built = self.index.build(job).unwrap();
                    self.index.install(built);
                    ran = true;
                }
            }
            if !ran {
                break;
            }
        }
        self.seq += 1;
    }

    /// What `TakeChanges` hands a save.
    fn changes(&mut self) -> Changes {
        Changes {
            seq: self.seq,
            lsn: self.lsn,
            log: std::mem::take(&mut self.log),
            sealed: self.index.sealed_segments(),
            covered_lsn: self.index.covered_lsn(self.lsn),
            params: self.index.params().clone(),
            fields: self.index.fields(),
        }
    }

    fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = (0..1000)
            .flat_map(|i| [format!("a{i}"), format!("b{i}")])
            .filter(|id| self.index.get(id).is_some())
            .collect();
        ids.sort();
        ids
    }
}

async fn save(
    store: &MemoryObjects,
    w: &mut Written,
    stored: &mut Stored,
    checkpoint: bool,
) -> Result<save::Saved, SaveError> {
    save::save(store, NAME, w.changes(), stored, LONG_LOG, checkpoint).await
}

fn kinds(writes: &[String]) -> Vec<&'static str> {
    writes
        .iter()
        .map(|w| match w {
            w if w.ends_with(&format!("{NAME}.lhv1")) => "manifest",
            w if w.contains("/log-") => "log",
            w if w.contains("/seg-") => "segment",
            _ => "other",
        })
        .collect()
}

fn new_stored() -> Stored {
    Stored::new("00000000000000aa".into())
}

/// Empty objects, an index of 120 items in sealed segments, nothing stored yet.
fn sealed_120() -> (MemoryObjects, Written, Stored) {
    let mut w = Written::new();
    w.add("a", 0, 120);
    w.seal();
    (MemoryObjects::default(), w, new_stored())
}

#[actix_rt::test]
async fn a_first_save_writes_the_log_then_the_segments_then_the_manifest() {
    let (store, mut w, mut stored) = sealed_120();
    let saved = save(&store, &mut w, &mut stored, false).await.unwrap();
    assert!(saved.manifest_written);
    assert_eq!(saved.seq, w.seq);
    let writes = store.take_writes();
    let order = kinds(&writes);
    let first_segment = order.iter().position(|k| *k == "segment").unwrap();
    assert_eq!(order[0], "log", "{writes:?}");
    assert!(first_segment > 0);
    assert_eq!(order.iter().filter(|k| **k == "manifest").count(), 1);
    // The manifest is written after every segment, and only then are covered logs
    // deleted.
    let manifest_at = order.iter().position(|k| *k == "manifest").unwrap();
    assert!(order[..manifest_at].iter().all(|k| *k != "manifest"));
    assert!(writes[manifest_at + 1..]
        .iter()
        .all(|w| w.starts_with("delete")));
    assert_eq!(stored.segments.len(), w.index.sealed_segments().len());
    assert!(stored.pending.is_empty());
    // Every change is sealed: the manifest covers the log, which is deleted.
    assert!(stored.logs.is_empty(), "{:?}", stored.logs);
    assert!(store.keys().iter().all(|k| !k.contains("/log-")));
}

#[actix_rt::test]
async fn a_later_save_writes_only_the_log_until_a_manifest_is_due() {
    let (store, mut w, mut stored) = sealed_120();
    save(&store, &mut w, &mut stored, false).await.unwrap();
    store.take_writes();
    w.add("b", 0, 10);
    w.delete("a3");
    let saved = save(&store, &mut w, &mut stored, false).await.unwrap();
    assert!(!saved.manifest_written);
    assert_eq!(kinds(&store.take_writes()), ["log"]);
    assert_eq!(stored.logs.len(), 1);
    // A seal changes the segments, but the log is short: still no manifest...
    w.seal();
    let saved = save(&store, &mut w, &mut stored, false).await.unwrap();
    assert!(!saved.manifest_written);
    assert!(store.take_writes().is_empty());
    // ...until the shutdown asks for a checkpoint.
    let saved = save(&store, &mut w, &mut stored, true).await.unwrap();
    assert!(saved.manifest_written);
    let order = kinds(&store.take_writes());
    assert!(
        order.contains(&"segment") && order.contains(&"manifest"),
        "{order:?}"
    );
    assert!(stored.logs.is_empty());
}

#[actix_rt::test]
async fn a_long_log_makes_a_seal_write_a_manifest() {
    let (store, mut w, mut stored) = sealed_120();
    save(&store, &mut w, &mut stored, false).await.unwrap();
    // A log that weighs more than a quarter of the stored segments is long (with a
    // configured size of 0).
    w.add("b", 0, 400);
    w.seal();
    let saved = save::save(&store, NAME, w.changes(), &mut stored, 0, false)
        .await
        .unwrap();
    assert!(saved.manifest_written);
    // With the configured size, the same log is not long: the seal writes only the log.
    w.add("b", 400, 400);
    w.seal();
    let saved = save(&store, &mut w, &mut stored, false).await.unwrap();
    assert!(!saved.manifest_written);
}

#[actix_rt::test]
async fn a_failed_log_write_keeps_the_records_for_the_next_save() {
    let store = MemoryObjects::default();
    let mut w = Written::new();
    w.add("a", 0, 10);
    let mut stored = new_stored();
    store.fail_when("put", "/log-");
    let err = save(&store, &mut w, &mut stored, false).await.unwrap_err();
    assert!(matches!(err, SaveError::Store(_)), "{err}");
    assert!(
        store.keys().is_empty(),
        "nothing is written after a failed log"
    );
    assert_eq!(
        stored.pending.records, 1,
        "the records wait for the next save"
    );
    store.heal();
    w.add("a", 10, 5);
    save(&store, &mut w, &mut stored, false).await.unwrap();
    assert_eq!(stored.logs.len(), 1);
    assert_eq!((stored.logs[0].first_lsn, stored.logs[0].last_lsn), (1, 2));
    assert!(stored.manifest.is_some());
}

#[actix_rt::test]
async fn a_failed_segment_write_leaves_the_old_manifest_in_charge() {
    let (store, mut w, mut stored) = sealed_120();
    store.fail_when("put", "/seg-");
    let err = save(&store, &mut w, &mut stored, false).await.unwrap_err();
    assert!(matches!(err, SaveError::Store(_)), "{err}");
    // The log was stored (every change is durable); no manifest names a missing segment.
    assert_eq!(stored.logs.len(), 1);
    assert!(stored.manifest.is_none());
    assert!(!store.keys().contains(&manifest_key(NAME)));
    store.heal();
    let saved = save(&store, &mut w, &mut stored, false).await.unwrap();
    assert!(saved.manifest_written);
    assert!(stored.logs.is_empty());
}

#[actix_rt::test]
async fn a_failed_manifest_write_is_retried_without_writing_the_segments_again() {
    let (store, mut w, mut stored) = sealed_120();
    store.fail_when("put", &manifest_key(NAME));
    save(&store, &mut w, &mut stored, false).await.unwrap_err();
    assert!(stored.manifest.is_none());
    assert_eq!(stored.segments.len(), w.index.sealed_segments().len());
    store.take_writes();
    store.heal();
    let saved = save(&store, &mut w, &mut stored, false).await.unwrap();
    assert!(saved.manifest_written);
    let order = kinds(&store.take_writes());
    assert!(
        !order.contains(&"segment"),
        "segments written again: {order:?}"
    );
    assert_eq!(order[0], "manifest");
}

#[actix_rt::test]
async fn a_failed_clean_up_is_not_an_error_and_is_done_by_a_later_manifest() {
    let store = MemoryObjects::default();
    let mut w = Written::new();
    w.add("a", 0, 20);
    let mut stored = new_stored();
    save(&store, &mut w, &mut stored, false).await.unwrap();
    assert_eq!(
        stored.logs.len(),
        1,
        "the first manifest covers nothing yet"
    );
    w.add("a", 20, 100);
    w.seal();
    store.fail_when("delete", "/log-");
    let saved = save(&store, &mut w, &mut stored, true).await.unwrap();
    assert!(saved.manifest_written);
    assert_eq!(
        stored.logs.len(),
        2,
        "covered logs stay listed when their delete fails"
    );
    store.heal();
    w.delete("a0");
    w.seal();
    save(&store, &mut w, &mut stored, true).await.unwrap();
    let dir = incarnation_dir(NAME, &stored.incarnation);
    assert!(!store.keys().contains(&format!("{dir}{}", log_object(1))));
}

#[actix_rt::test]
async fn a_merge_deletes_the_segments_the_manifest_no_longer_names() {
    let store = MemoryObjects::default();
    let mut w = Written::new();
    let mut stored = new_stored();
    for batch in 0..4 {
        w.add("a", batch * 60, 60);
        w.seal();
        save(&store, &mut w, &mut stored, true).await.unwrap();
    }
    let named: Vec<u64> = w.index.sealed_segments().iter().map(|s| s.id).collect();
    let stored_ids: Vec<u64> = stored.segments.keys().copied().collect();
    assert_eq!(stored_ids, named);
    let dir = incarnation_dir(NAME, &stored.incarnation);
    let segment_keys: Vec<String> = store
        .keys()
        .into_iter()
        .filter(|k| k.contains("/seg-"))
        .collect();
    let expected: Vec<String> = named
        .iter()
        .map(|&id| format!("{dir}{}", segment_object(id)))
        .collect();
    assert_eq!(segment_keys, expected);
}

#[actix_rt::test]
async fn a_saved_index_loads_with_every_item_from_its_segments_and_its_log() {
    let (store, mut w, mut stored) = sealed_120();
    save(&store, &mut w, &mut stored, false).await.unwrap();
    // After the manifest: unsealed adds, a delete in a sealed segment, a replace.
    w.add("b", 0, 30);
    w.delete("a7");
    w.add("a", 10, 1);
    save(&store, &mut w, &mut stored, false).await.unwrap();
    let loaded = loader::load(
        &store,
        NAME,
        std::time::Duration::from_secs(10),
        *w.index.config(),
    )
    .await
    .unwrap_or_else(|f| panic!("{}", f.error));
    assert!(loaded.warning.is_none());
    assert!(!loaded.dirty);
    assert_eq!(
        loaded.lsn, w.lsn,
        "the actor goes on after the last lsn stored"
    );
    assert_eq!(loaded.stored.logs, stored.logs);
    let back = Written::loaded(loaded);
    assert_eq!(back.ids(), w.ids());
    assert_eq!(back.ids().len(), 120 - 1 + 30);
    let a10 = back.index.get("a10").unwrap();
    assert_eq!(Some(a10), w.index.get("a10"));
}

#[actix_rt::test]
async fn a_missing_segment_refuses_the_load_for_good() {
    let (store, mut w, mut stored) = sealed_120();
    save(&store, &mut w, &mut stored, false).await.unwrap();
    let segment = store
        .keys()
        .into_iter()
        .find(|k| k.contains("/seg-"))
        .unwrap();
    store.objects.lock().unwrap().remove(&segment);
    let failure = load(&store, &w).await.err().unwrap();
    assert!(!failure.retrying);
    assert!(failure.error.contains("missing"), "{}", failure.error);
    assert_eq!(failure.key, manifest_key(NAME));
}

#[actix_rt::test]
async fn a_storage_failure_while_loading_is_worth_retrying() {
    let (store, mut w, mut stored) = sealed_120();
    save(&store, &mut w, &mut stored, false).await.unwrap();
    for part in [manifest_key(NAME), "/seg-".into()] {
        store.fail_when("get", &part);
        let failure = load(&store, &w).await.err().unwrap();
        assert!(failure.retrying, "{part}: {}", failure.error);
    }
}

#[actix_rt::test]
async fn a_gap_in_the_log_loads_what_precedes_it_as_a_new_incarnation() {
    let store = MemoryObjects::default();
    let mut w = Written::new();
    let mut stored = new_stored();
    w.add("a", 0, 10);
    save(&store, &mut w, &mut stored, false).await.unwrap();
    w.add("b", 0, 5);
    save(&store, &mut w, &mut stored, false).await.unwrap();
    w.add("b", 5, 5);
    save(&store, &mut w, &mut stored, false).await.unwrap();
    // The middle log object (lsn 2) is lost.
    let dir = incarnation_dir(NAME, &stored.incarnation);
    store
        .objects
        .lock()
        .unwrap()
        .remove(&format!("{dir}{}", log_object(2)));
    let loaded = load(&store, &w)
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    let warning = loaded.warning.clone().unwrap();
    assert!(warning.contains("gap"), "{warning}");
    assert!(
        loaded.dirty,
        "written whole as a new incarnation by the first save"
    );
    assert_ne!(loaded.stored.incarnation, stored.incarnation);
    assert_eq!(
        loaded.keep_incarnation.as_deref(),
        Some(stored.incarnation.as_str())
    );
    assert!(loaded.index.get("a3").is_some());
    assert!(loaded.index.get("b0").is_none() && loaded.index.get("b7").is_none());
}

#[actix_rt::test]
async fn a_damaged_log_object_stops_the_replay_there() {
    let store = MemoryObjects::default();
    let mut w = Written::new();
    let mut stored = new_stored();
    w.add("a", 0, 10);
    save(&store, &mut w, &mut stored, false).await.unwrap();
    w.add("b", 0, 5);
    save(&store, &mut w, &mut stored, false).await.unwrap();
    let dir = incarnation_dir(NAME, &stored.incarnation);
    let key = format!("{dir}{}", log_object(2));
    {
        let mut objects = store.objects.lock().unwrap();
        let mut bytes = objects[&key].to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        objects.insert(key, bytes.into());
    }
    let loaded = load(&store, &w)
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert!(loaded.warning.unwrap().contains("damaged"));
    assert!(loaded.index.get("a0").is_some());
    assert!(loaded.index.get("b0").is_none());
}

#[actix_rt::test]
async fn orphans_are_collected_and_what_a_manifest_needs_is_kept() {
    let (store, mut w, mut stored) = sealed_120();
    save(&store, &mut w, &mut stored, false).await.unwrap();
    w.add("b", 0, 3);
    save(&store, &mut w, &mut stored, false).await.unwrap();
    let dir = incarnation_dir(NAME, &stored.incarnation);
    let orphans = [
        format!("{dir}{}", segment_object(999)),
        format!("_vectors/{NAME}/0000000000000bad/seg-1.lhv1"),
        "_vectors/gone/0000000000000001/log-1.lhv1".to_string(),
    ];
    let failed = "_vectors/broken/0000000000000001/seg-1.lhv1".to_string();
    for key in orphans.iter().chain([&failed]) {
        store.put_raw(key);
    }
    let before = store.keys();
    let loaded = load(&store, &w)
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    let mut needed = std::collections::HashMap::new();
    needed.insert(NAME.to_string(), Keep::of(&loaded));
    let objects = loader::list_objects(&store).await.unwrap();
    let removed = loader::collect_orphans(&store, &objects, &needed, |n| n == "broken").await;
    assert_eq!(removed, orphans.len());
    let after = store.keys();
    for key in &orphans {
        assert!(!after.contains(key), "{key} kept");
    }
    assert!(
        after.contains(&failed),
        "a failed index's objects are left alone"
    );
    assert_eq!(after.len(), before.len() - orphans.len());
}

#[actix_rt::test]
async fn a_reload_takes_the_segments_still_in_memory_and_reads_only_the_new_ones() {
    let (store, mut w, mut stored) = (MemoryObjects::default(), Written::new(), new_stored());
    for first in [0, 50] {
        w.add("a", first, 50);
        w.seal();
    }
    save(&store, &mut w, &mut stored, true).await.unwrap();
    let first = load(&store, &w)
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    let reuse = loader::Reuse::of(NAME, &first);
    let first_objects: Vec<String> = store
        .keys()
        .into_iter()
        .filter(|k| k.contains("/seg-"))
        .collect();
    assert!(first_objects.len() >= 2, "{first_objects:?}");
    // The primary goes on: more items, a delete, a new manifest with a new segment.
    w.add("b", 0, 30);
    w.delete("a3");
    w.seal();
    save(&store, &mut w, &mut stored, true).await.unwrap();
    // None of the first manifest's objects can be read any more: what the second manifest
    // still names must come from memory.
    for key in &first_objects {
        store.objects.lock().unwrap().remove(key);
    }
    let second = load_reusing(&store, &w, &reuse)
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    let still_named = first
        .stored
        .segments
        .keys()
        .filter(|id| stored.segments.contains_key(id))
        .count();
    assert!(still_named >= 1);
    assert_eq!(second.segments_kept, still_named);
    let back = Written::loaded(second);
    assert_eq!(back.ids(), w.ids(), "the tombstones are the new manifest's");
    assert!(back.index.get("a3").is_none());
    assert_eq!(back.index.get("a10"), w.index.get("a10"));
    // Held weakly: once no index holds them (the first, and the second that shares
    // them), they are gone, and the objects are needed again.
    drop(first);
    drop(back);
    let failure = load_reusing(&store, &w, &reuse).await.err().unwrap();
    assert!(failure.error.contains("missing"), "{}", failure.error);
}

#[actix_rt::test]
async fn a_replica_maps_only_cache_files_written_from_the_objects_its_manifest_names() {
    use crate::codec::cache_file;
    use crate::index::disk_cache;
    let dir = tempfile::tempdir().unwrap();
    let root: &'static std::path::Path = Box::leak(dir.path().to_path_buf().into_boxed_path());
    let mut w = Written::with_cache(Some(root));
    for first in [0, 50] {
        w.add("a", first, 50);
        w.seal();
    }
    let store = MemoryObjects::default();
    let mut stored = new_stored();
    save(&store, &mut w, &mut stored, true).await.unwrap();
    let files = disk_cache::index_dir(root, NAME);
    let source_of = |id: u64| {
        cache_file::open(&disk_cache::segment_path(&files, id))
            .unwrap()
            .source
    };
    let ids: Vec<u64> = stored.segments.keys().copied().collect();
    assert!(
        ids.iter().all(|&id| source_of(id).is_none()),
        "spilled at seal"
    );
    // The primary trusts the files of its own seals: mapped as they are.
    let primary = load(&store, &w)
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(primary.index.stats().count, 100);
    assert!(ids.iter().all(|&id| source_of(id).is_none()));
    drop(primary);
    // A replica does not (its own seals take the same numbers): it writes each again from
    // its object, and the file names that object.
    let replica = EngineConfig {
        replica: true,
        ..*w.index.config()
    };
    let dir_key = incarnation_dir(NAME, &stored.incarnation);
    let loaded = loader::load(&store, NAME, std::time::Duration::from_secs(10), replica)
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(loaded.index.stats().count, 100);
    drop(loaded);
    for &id in &ids {
        let source = source_of(id).expect("written from its object");
        assert_eq!(source.key, format!("{dir_key}{}", segment_object(id)));
        assert_eq!(source.bytes, stored.segments[&id]);
    }
    // Another object's file under a segment's number (same number of points) is replaced,
    // by a replica and a primary alike.
    let sizes: Vec<(u64, usize)> = w
        .index
        .sealed_segments()
        .iter()
        .map(|s| (s.id, s.points))
        .collect();
    let (a, b) = sizes
        .iter()
        .flat_map(|x| sizes.iter().map(move |y| (x, y)))
        .find(|(x, y)| x.0 != y.0 && x.1 == y.1)
        .map(|(x, y)| (x.0, y.0))
        .expect("two segments of the same size");
    std::fs::copy(
        disk_cache::segment_path(&files, a),
        disk_cache::segment_path(&files, b),
    )
    .unwrap();
    for engine in [replica, *w.index.config()] {
        let loaded = loader::load(&store, NAME, std::time::Duration::from_secs(10), engine)
            .await
            .unwrap_or_else(|f| panic!("{}", f.error));
        let back = Written::loaded(loaded);
        assert_eq!(back.ids(), w.ids());
        assert_eq!(
            source_of(b).unwrap().key,
            format!("{dir_key}{}", segment_object(b))
        );
        std::fs::copy(
            disk_cache::segment_path(&files, a),
            disk_cache::segment_path(&files, b),
        )
        .unwrap();
    }
}

async fn load_reusing(
    store: &MemoryObjects,
    w: &Written,
    reuse: &loader::Reuse,
) -> Result<loader::Loaded, loader::LoadFailure> {
    let limit = std::time::Duration::from_secs(10);
    loader::load_reusing(store, NAME, limit, *w.index.config(), reuse).await
}

async fn load(store: &MemoryObjects, w: &Written) -> Result<loader::Loaded, loader::LoadFailure> {
    loader::load(
        store,
        NAME,
        std::time::Duration::from_secs(10),
        *w.index.config(),
    )
    .await
}

#[actix_rt::test]
async fn field_indexes_are_stored_with_their_segments_and_declarations_with_the_log() {
    let fields = |v: serde_json::Value| crate::params::parse_fields(&v).unwrap();
    let store = MemoryObjects::default();
    let mut w = Written::new();
    let mut stored = new_stored();
    w.index
        .declare_fields(&fields(json!({"n": "integer"})))
        .unwrap();
    w.add("a", 0, 120);
    w.seal();
    assert!(!w.index.fields_pending(), "sealed with their indexes");
    save(&store, &mut w, &mut stored, true).await.unwrap();
    // a field declared later: in the log (record type 4) until a manifest covers it
    let later = fields(json!({"n": "integer", "tag": "keyword"}));
    w.index.declare_fields(&later).unwrap();
    w.lsn += 1;
    w.log.push_fields(w.lsn, &later);
    w.seq += 1;
    assert!(w.index.fields_pending());
    save(&store, &mut w, &mut stored, false).await.unwrap();
    let loaded = load(&store, &w)
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(
        loaded.index.fields(),
        later,
        "the declaration comes back from the log"
    );
    // the stored segments had `n` (nothing rebuilt for it), not `tag` yet
    assert!(loaded.index.fields_pending());
    let n_only = fields(json!({"n": "integer"}));
    loaded.index.declare_fields(&n_only).unwrap();
    // the background job indexes `tag`; a checkpoint stores the segment anew
    let job = w.index.next_job(JobKind::Merge).expect("an indexing job");
    let built = w.index.build(job).unwrap();
    w.index.install(built);
    assert!(!w.index.fields_pending());
    w.seq += 1;
    save(&store, &mut w, &mut stored, true).await.unwrap();
    let loaded = load(&store, &w)
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(loaded.index.fields(), later);
    assert!(!loaded.index.fields_pending(), "a reload rebuilds nothing");
    let filter = crate::filter::Filter::parse(
        &json!({"n": {"$gte": 10, "$lt": 13}}),
        "filter",
        crate::params::Limits::default().filter(),
    )
    .unwrap();
    let q = w.index.get("a11").unwrap().vector;
    let hits = loaded.index.search(&q, 5, 32, Some(&filter));
    let mut got: Vec<String> = hits.into_iter().map(|h| h.id).collect();
    got.sort();
    assert_eq!(got, ["a10", "a11", "a12"]);
}
