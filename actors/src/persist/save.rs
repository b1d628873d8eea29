//! One save of one index, and the removal of a deleted index's objects.
//!
//! A save writes, in this order, so that every crash leaves a complete old state or a
//! complete new one (an object is referenced only once it is stored):
//! 1. the log records collected since the last save, as one log object — after this,
//!    every change handed over is durable, which is all `flush` waits for;
//! 2. when the manifest is due (seals or merges changed the sealed segments and the log
//!    has grown long, or only deletes moved and their log objects weigh more than a
//!    manifest): each sealed segment not stored yet, streamed from its arrays, then the
//!    manifest naming them;
//! 3. then, and only then, the log objects the manifest covers and the segment objects it
//!    no longer names are deleted (a failure there leaves garbage that the next manifest or
//!    the next start-up collects, never a hole).
//!
//! The manifest's tombstones are taken at the same moment as the log records (between two
//! mutations), and the log is stored first, so a manifest never holds a delete that is
//! not also in a stored log.

use std::collections::BTreeMap;

use super::layout::{incarnation_dir, manifest_key};
use super::objects::Objects;
use crate::codec::log::LogBatch;
use crate::codec::manifest::{self, log_object, segment_object, ManifestSegment};
use crate::codec::segment::SegmentWriter;
use crate::index::persisted::SealedSegment;
use crate::params::{Fields, IndexParams};
use crate::storaged_client::StoreError;

/// Covered log objects are deleted (by a new manifest) once they weigh this much...
const MIN_COVERED_LOG_BYTES: u64 = 1 << 20;
/// ...or are this many.
const MAX_COVERED_LOGS: usize = 256;
/// The log is long (a new manifest should take its place) from the configured size
/// (`vectord.manifest_log_bytes`)... or a quarter of the stored segments' size, whichever is larger...
const LONG_LOG_FRACTION: u64 = 4;
/// ...or from this many objects.
const LONG_LOG_OBJECTS: usize = 1024;

/// What storage holds of one index (one incarnation), as far as the persister knows.
#[derive(Debug, Default, Clone)]
pub struct Stored {
    pub incarnation: String,
    /// What the stored manifest says; none until this incarnation's first manifest.
    pub manifest: Option<StoredManifest>,
    /// Segment objects stored: segment id → object length.
    pub segments: BTreeMap<u64, u64>,
    /// Log objects stored and not yet covered by the manifest, oldest first.
    pub logs: Vec<StoredLog>,
    /// Log records taken from the index actor and not stored yet.
    pub pending: LogBatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub covered_lsn: u64,
    pub segments: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLog {
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub bytes: u64,
}

impl Stored {
    /// A new incarnation with nothing stored yet.
    pub fn new(incarnation: String) -> Stored {
        Stored {
            incarnation,
            ..Stored::default()
        }
    }

    /// Bytes of log objects waiting for a manifest to cover them.
    pub fn log_bytes(&self) -> u64 {
        self.logs.iter().map(|l| l.bytes).sum()
    }

    /// Whether the log has grown long enough to be replaced by a new manifest (and its
    /// segments). Until then a seal or a merge writes nothing but the log: young
    /// segments are mostly merged before they would ever be written, which keeps a bulk
    /// ingest near three bytes written per byte stored; the price is the replay after a
    /// crash, bounded by this, at most a quarter of the index (or `min_bytes`).
    pub fn log_is_long(&self, min_bytes: u64) -> bool {
        let segments: u64 = self.segments.values().sum();
        self.log_bytes() >= (segments / LONG_LOG_FRACTION).max(min_bytes)
            || self.logs.len() >= LONG_LOG_OBJECTS
    }
}

/// What a save stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saved {
    /// The index's mutation count covered: every change up to it is durable.
    pub seq: u64,
    pub bytes_written: u64,
    pub manifest_written: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("index is gone")]
    Gone,
    #[error("{0}")]
    Snapshot(String),
    #[error("encoding {what}: {message}")]
    Encode { what: String, message: String },
    #[error("{0}")]
    Store(StoreError),
}

/// What a save needs from an index at one moment (between two mutations): taken by the
/// index actor, so that the log records and the segments' tombstones agree.
pub struct Changes {
    /// Mutations applied so far (what `flush` waits for).
    pub seq: u64,
    /// Log sequence number of the last client mutation.
    pub lsn: u64,
    /// Log records since the changes were last taken (lsns follow the previous batch's).
    pub log: LogBatch,
    pub sealed: Vec<SealedSegment>,
    /// The sealed segments hold every change up to this lsn.
    pub covered_lsn: u64,
    pub params: IndexParams,
    /// The fields declared for indexing.
    pub fields: Fields,
}

/// One save of index `name`: stores `changes` (see the module comment for the order).
/// `stored` is updated with every step that succeeded, also when a later step fails.
/// `long_log` is `vectord.manifest_log_bytes`; a `checkpoint` writes a manifest whenever
/// it would cover more than the stored one (the shutdown asks).
pub async fn save(
    store: &impl Objects,
    name: &str,
    mut changes: Changes,
    stored: &mut Stored,
    long_log: u64,
    checkpoint: bool,
) -> Result<Saved, SaveError> {
    stored.pending.append(std::mem::take(&mut changes.log));
    let mut saved = Saved {
        seq: changes.seq,
        ..Saved::default()
    };
    saved.bytes_written += store_log(store, name, stored, changes.params.dim).await?;
    if !manifest_due(
        stored,
        &changes.sealed,
        changes.covered_lsn,
        long_log,
        checkpoint,
    ) {
        return Ok(saved);
    }
    saved.bytes_written += store_segments(store, name, stored, &changes.sealed).await?;
    saved.bytes_written += store_manifest(store, name, stored, &changes).await?;
    saved.manifest_written = true;
    clean_up(store, name, stored, changes.covered_lsn).await;
    Ok(saved)
}

/// Step 1: the log records not stored yet, as one log object. Answers the bytes written.
async fn store_log(
    store: &impl Objects,
    name: &str,
    stored: &mut Stored,
    dim: usize,
) -> Result<u64, SaveError> {
    if stored.pending.is_empty() {
        return Ok(0);
    }
    let bytes = stored
        .pending
        .encode(dim)
        .map_err(|message| SaveError::Encode {
            what: "a log object".into(),
            message,
        })?;
    let dir = incarnation_dir(name, &stored.incarnation);
    let key = format!("{dir}{}", log_object(stored.pending.first_lsn));
    let len = bytes.len() as u64;
    store
        .put(&key, bytes.into())
        .await
        .map_err(SaveError::Store)?;
    stored.logs.push(StoredLog {
        first_lsn: stored.pending.first_lsn,
        last_lsn: stored.pending.last_lsn,
        bytes: len,
    });
    stored.pending = LogBatch::default();
    Ok(len)
}

/// Whether this save writes a new manifest (see the module comment).
fn manifest_due(
    stored: &Stored,
    sealed: &[SealedSegment],
    covered: u64,
    long_log: u64,
    checkpoint: bool,
) -> bool {
    let ids: Vec<u64> = sealed.iter().map(|s| s.id).collect();
    match &stored.manifest {
        None => true,
        // A seal or a merge: worth a manifest once the log it would let go is long.
        Some(m) if m.segments != ids => checkpoint || stored.log_is_long(long_log),
        Some(m) if checkpoint && covered > m.covered_lsn => true,
        Some(m) => {
            // Only deletes moved the covered lsn: a new manifest (all tombstone bitsets)
            // pays off once the log objects it lets go weigh as much.
            let (bytes, count) = stored
                .logs
                .iter()
                .filter(|l| l.last_lsn <= covered)
                .fold((0u64, 0usize), |(b, c), l| (b + l.bytes, c + 1));
            let manifest_size: u64 = 4096
                + sealed
                    .iter()
                    .map(|s| s.tombstone_bits.len() as u64 + 200)
                    .sum::<u64>();
            covered > m.covered_lsn
                && count > 0
                && (bytes >= manifest_size.max(MIN_COVERED_LOG_BYTES) || count >= MAX_COVERED_LOGS)
        }
    }
}

/// Step 2a: each sealed segment not stored yet, streamed from its arrays. Answers the
/// bytes written.
async fn store_segments(
    store: &impl Objects,
    name: &str,
    stored: &mut Stored,
    sealed: &[SealedSegment],
) -> Result<u64, SaveError> {
    let dir = incarnation_dir(name, &stored.incarnation);
    let mut written = 0;
    for seg in sealed {
        if stored.segments.contains_key(&seg.id) {
            continue;
        }
        let source = seg.source();
        let (index, incarnation, id) = (name.to_string(), stored.incarnation.clone(), seg.id);
        let writer = actix_rt::task::spawn_blocking(move || {
            SegmentWriter::new(source, &index, &incarnation, id)
        })
        .await
        .map_err(|e| SaveError::Snapshot(format!("encoding segment {}: {e}", seg.id)))?
        .map_err(|message| SaveError::Encode {
            what: format!("segment {}", seg.id),
            message,
        })?;
        let len = writer.len();
        let key = format!("{dir}{}", segment_object(seg.id));
        store
            .put_stream(&key, len, futures::stream::iter(writer))
            .await
            .map_err(SaveError::Store)?;
        stored.segments.insert(seg.id, len);
        written += len;
    }
    Ok(written)
}

/// Step 2b: the manifest naming the sealed segments (all stored by now) with their
/// tombstones. Answers the bytes written.
async fn store_manifest(
    store: &impl Objects,
    name: &str,
    stored: &mut Stored,
    changes: &Changes,
) -> Result<u64, SaveError> {
    let entries: Vec<ManifestSegment> = changes
        .sealed
        .iter()
        .map(|s| ManifestSegment {
            id: s.id,
            object: segment_object(s.id),
            bytes: stored.segments.get(&s.id).copied().unwrap_or(0),
            points: s.points,
            tombstones: s.tombstones,
        })
        .collect();
    let bits: Vec<Vec<u8>> = changes
        .sealed
        .iter()
        .map(|s| s.tombstone_bits.clone())
        .collect();
    let bytes = manifest::encode(
        &changes.params,
        &changes.fields,
        &stored.incarnation,
        changes.covered_lsn,
        entries,
        &bits,
    )
    .map_err(|message| SaveError::Encode {
        what: "the manifest".into(),
        message,
    })?;
    let len = bytes.len() as u64;
    store
        .put(&manifest_key(name), bytes.into())
        .await
        .map_err(SaveError::Store)?;
    stored.manifest = Some(StoredManifest {
        covered_lsn: changes.covered_lsn,
        segments: changes.sealed.iter().map(|s| s.id).collect(),
    });
    Ok(len)
}

/// Step 3: deletes the log objects the stored manifest covers and the segment objects it
/// no longer names. A failure is logged and leaves the object listed in `stored`, to be
/// deleted by a later save or the next start-up.
async fn clean_up(store: &impl Objects, name: &str, stored: &mut Stored, covered: u64) {
    let dir = incarnation_dir(name, &stored.incarnation);
    let mut kept = Vec::new();
    for log in std::mem::take(&mut stored.logs) {
        if log.last_lsn <= covered {
            let key = format!("{dir}{}", log_object(log.first_lsn));
            if let Err(e) = store.delete(&key).await {
                log::warn!("index {name:?}: removing the covered log {key} failed: {e}");
                kept.push(log);
            }
        } else {
            kept.push(log);
        }
    }
    stored.logs = kept;
    let named = stored
        .manifest
        .as_ref()
        .map(|m| m.segments.clone())
        .unwrap_or_default();
    let unlisted: Vec<u64> = stored
        .segments
        .keys()
        .copied()
        .filter(|id| !named.contains(id))
        .collect();
    for id in unlisted {
        let key = format!("{dir}{}", segment_object(id));
        match store.delete(&key).await {
            Ok(()) => {
                stored.segments.remove(&id);
            }
            Err(e) => log::warn!("index {name:?}: removing the replaced segment {key} failed: {e}"),
        }
    }
}

/// Removes a deleted index: its manifest first (from then on the index is gone, also
/// across a crash), then, if its incarnation is known, the objects of that incarnation
/// (a failure there only leaves garbage, collected at the next start-up).
pub async fn remove(
    store: &impl Objects,
    name: &str,
    incarnation: Option<&str>,
) -> Result<(), StoreError> {
    store.delete(&manifest_key(name)).await?;
    if let Some(incarnation) = incarnation {
        let dir = incarnation_dir(name, incarnation);
        match store.list(&dir).await {
            Ok(objects) => {
                for o in objects {
                    if let Err(e) = store.delete(&o.key).await {
                        log::warn!(
                            "index {name:?}: removing {} failed (collected at the next start): {e}",
                            o.key
                        );
                    }
                }
            }
            Err(e) => log::warn!(
                "index {name:?}: listing {dir} failed (collected at the next start): {e}"
            ),
        }
    }
    Ok(())
}
