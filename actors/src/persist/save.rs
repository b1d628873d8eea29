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

use actix::Addr;

use super::layout::{incarnation_dir, manifest_key};
use crate::codec::log::LogBatch;
use crate::codec::manifest::{self, log_object, segment_object, ManifestSegment};
use crate::codec::segment::SegmentWriter;
use crate::index_actor::IndexActor;
use crate::messages::TakeChanges;
use crate::storeclient::{StoreClient, StoreError};

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

/// One save of index `name`: takes the changes from its actor and stores them (see the
/// module comment). `stored` is updated with every step that succeeded, also when a
/// later step fails. `long_log` is `vectord.manifest_log_bytes`; a `checkpoint` writes
/// a manifest whenever it would cover more than the stored one (the shutdown asks).
pub async fn save(
    store: &StoreClient,
    name: &str,
    actor: Addr<IndexActor>,
    stored: &mut Stored,
    long_log: u64,
    checkpoint: bool,
) -> Result<Saved, SaveError> {
    let changes = match actor.send(TakeChanges).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(SaveError::Snapshot(e.to_string())),
        // The actor stopped: the index was deleted; the delete follows.
        Err(_) => return Err(SaveError::Gone),
    };
    stored.pending.append(changes.log);
    let dir = incarnation_dir(name, &stored.incarnation);
    let mut saved = Saved {
        seq: changes.seq,
        ..Saved::default()
    };

    // 1. the log
    if !stored.pending.is_empty() {
        let bytes = stored
            .pending
            .encode(changes.params.dim)
            .map_err(|message| SaveError::Encode {
                what: "a log object".into(),
                message,
            })?;
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
        saved.bytes_written += len;
    }

    // 2. segments and the manifest, when due
    let ids: Vec<u64> = changes.sealed.iter().map(|s| s.id).collect();
    let covered = changes.covered_lsn;
    let due = match &stored.manifest {
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
                + changes
                    .sealed
                    .iter()
                    .map(|s| s.tombstone_bits.len() as u64 + 200)
                    .sum::<u64>();
            covered > m.covered_lsn
                && count > 0
                && (bytes >= manifest_size.max(MIN_COVERED_LOG_BYTES) || count >= MAX_COVERED_LOGS)
        }
    };
    if !due {
        return Ok(saved);
    }
    for seg in &changes.sealed {
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
        saved.bytes_written += len;
    }
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
        &stored.incarnation,
        covered,
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
    saved.bytes_written += len;
    saved.manifest_written = true;
    stored.manifest = Some(StoredManifest {
        covered_lsn: covered,
        segments: ids.clone(),
    });

    // 3. what the manifest no longer needs
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
    let unlisted: Vec<u64> = stored
        .segments
        .keys()
        .copied()
        .filter(|id| !ids.contains(id))
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
    Ok(saved)
}

/// Removes a deleted index: its manifest first (from then on the index is gone, also
/// across a crash), then, if its incarnation is known, the objects of that incarnation
/// (a failure there only leaves garbage, collected at the next start-up).
pub async fn remove(
    store: &StoreClient,
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
