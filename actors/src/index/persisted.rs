//! What persistence needs from an index, and an index rebuilt from what was stored.
//!
//! Stored, an index is its sealed segments (each an immutable object written once) with
//! their tombstones, plus the log of the mutations since the oldest unsealed point was
//! added (`covered_lsn`): the growing and frozen segments are rebuilt from the log at
//! start-up and sealed again in the background.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};

use super::bitset::BitSet;
use super::codes::Codes;
use super::documents::Documents;
use super::field_index::FieldIndexes;
use super::ids::IdTable;
use super::points::{Metadata, Points};
use super::sealed::FlatGraph;
use super::{EngineConfig, Fields, Growing, Index, IndexParams, NewItem, Segment, State};
use crate::codec::log::{LogBatch, LogRecord};
use crate::codec::segment::{SegmentArrays, SegmentSource, SegmentView};

/// A sealed segment, as the persister sees it: enough to write its object (once) and its
/// tombstones (in every manifest).
#[derive(Clone)]
pub struct SealedSegment {
    pub id: u64,
    pub points: usize,
    pub tombstones: usize,
    /// Tombstone bits, `ceil(points / 8)` bytes, bit p of byte p / 8.
    pub tombstone_bits: Vec<u8>,
    parts: HeldSegment,
}

impl SealedSegment {
    /// The segment's arrays, ready to stream (metadata encoded as JSON now).
    pub fn source(&self) -> Arc<dyn SegmentSource> {
        let parts = &self.parts;
        let (metadata_bytes, metadata_ends) =
            super::one_object::encode_metadata(parts.points.metadata_slice());
        Arc::new(StoredArrays {
            points: parts.points.clone(),
            graph: parts.graph.clone(),
            metadata_bytes,
            metadata_ends,
            fields: parts.fields.encode(),
            codes: parts.codes.clone(),
        })
    }
}

struct StoredArrays {
    points: Arc<Points>,
    graph: Arc<FlatGraph>,
    metadata_bytes: Vec<u8>,
    metadata_ends: Vec<u64>,
    fields: Vec<(String, Vec<u8>)>,
    codes: Option<Arc<Codes>>,
}

impl SegmentSource for StoredArrays {
    fn view(&self) -> SegmentView<'_> {
        segment_view(
            &self.points,
            &self.graph,
            (&self.metadata_bytes, &self.metadata_ends),
            &self.fields,
            self.codes.as_deref(),
        )
    }
}

/// The arrays of a sealed segment, as its object and its cache file hold them (metadata
/// and field indexes already encoded).
pub(super) fn segment_view<'a>(
    points: &'a Points,
    graph: &'a FlatGraph,
    (metadata_bytes, metadata_ends): (&'a [u8], &'a [u64]),
    fields: &'a [(String, Vec<u8>)],
    codes: Option<&'a Codes>,
) -> SegmentView<'a> {
    let (id_bytes, id_ends) = points.ids().parts();
    SegmentView {
        dim: points.dim(),
        vectors: points.vectors(),
        id_bytes,
        id_ends,
        metadata_bytes,
        metadata_ends,
        documents: points.documents().parts(),
        graph: Some(graph.view()),
        codes: codes.map(Codes::parts),
        fields: fields
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
            .collect(),
    }
}

fn bits_of(deleted: &BitSet, points: usize) -> Vec<u8> {
    let mut out = vec![0u8; points.div_ceil(8)];
    for p in deleted.ones().filter(|&p| p < points) {
        out[p / 8] |= 1 << (p % 8);
    }
    out
}

/// A stored segment, with its tombstones from the manifest.
pub struct LoadedSegment {
    pub id: u64,
    pub content: SegmentContent,
    pub tombstone_bits: Vec<u8>,
}

/// Where a loaded segment's points, graph, field indexes and codes come from.
pub enum SegmentContent {
    /// Decoded from its object or its cache file.
    Stored(Box<SegmentArrays>),
    /// Shared with an index already in memory that loaded the same object (a replica
    /// loading its primary's next manifest): nothing is read again.
    Held(HeldSegment),
}

/// A stored segment's parts as an index in memory holds them. They never change once
/// sealed (deletes are tombstones, kept apart), so two indexes may share them.
#[derive(Clone)]
pub struct HeldSegment {
    points: Arc<Points>,
    graph: Arc<FlatGraph>,
    fields: Arc<FieldIndexes>,
    codes: Option<Arc<Codes>>,
}

impl HeldSegment {
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// A reference that does not keep the segment alive: once the index that holds it
    /// merges it away, its memory is freed and `upgrade` answers none.
    pub fn downgrade(&self) -> WeakSegment {
        WeakSegment {
            points: Arc::downgrade(&self.points),
            graph: Arc::downgrade(&self.graph),
            fields: Arc::downgrade(&self.fields),
            codes: self.codes.as_ref().map(Arc::downgrade),
        }
    }
}

/// A sealed segment's parts, shared; none while it has no graph (frozen, not sealed yet).
fn held(seg: &Segment) -> Option<HeldSegment> {
    Some(HeldSegment {
        points: seg.points.clone(),
        graph: seg.graph.clone()?,
        fields: seg.fields.clone(),
        codes: seg.codes.clone(),
    })
}

/// A `HeldSegment` that may have been freed since.
pub struct WeakSegment {
    points: Weak<Points>,
    graph: Weak<FlatGraph>,
    fields: Weak<FieldIndexes>,
    codes: Option<Weak<Codes>>,
}

impl WeakSegment {
    pub fn upgrade(&self) -> Option<HeldSegment> {
        let codes = match &self.codes {
            Some(weak) => Some(weak.upgrade()?),
            None => None,
        };
        Some(HeldSegment {
            points: self.points.upgrade()?,
            graph: self.graph.upgrade()?,
            fields: self.fields.upgrade()?,
            codes,
        })
    }
}

impl Index {
    /// Every sealed segment, oldest first.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        let s = self.read();
        s.segments
            .iter()
            .filter_map(|seg| {
                Some(SealedSegment {
                    id: seg.id,
                    points: seg.points.len(),
                    tombstones: seg.deleted_count,
                    tombstone_bits: bits_of(&seg.deleted, seg.points.len()),
                    parts: held(seg)?,
                })
            })
            .collect()
    }

    /// The parts of sealed segment `id`, to share with another index loaded from the same
    /// stored object.
    pub fn held_segment(&self, id: u64) -> Option<HeldSegment> {
        let s = self.read();
        held(&s.segments[s.position(id)?])
    }

    /// The last log sequence number whose changes the sealed segments hold: every point
    /// not yet sealed was added by a later mutation. `current` when all points are sealed.
    pub fn covered_lsn(&self, current: u64) -> u64 {
        let s = self.read();
        let unsealed = s
            .segments
            .iter()
            .filter(|seg| seg.graph.is_none())
            .filter_map(|seg| seg.first_lsn)
            .chain(s.growing.first_lsn.filter(|_| !s.growing.points.is_empty()));
        unsealed.min().map_or(current, |first| first - 1)
    }

    /// For an index read from a whole-index object (0.1.0, or the one-object layout), whose
    /// unsealed points have no log yet: their live items as one add record at lsn 1, which
    /// the first save writes as a log object; returns it (empty when nothing is unsealed).
    pub fn unsealed_as_log(&self) -> LogBatch {
        let mut s = self.write();
        let mut batch = LogBatch::default();
        let mut items: Vec<NewItem> = Vec::new();
        let growing = (&s.growing.points, &s.growing.deleted);
        let frozen = s
            .segments
            .iter()
            .filter(|seg| seg.graph.is_none())
            .map(|seg| (&*seg.points, &seg.deleted));
        for (points, deleted) in frozen.chain(std::iter::once(growing)) {
            for p in (0..points.len()).filter(|&p| !deleted.get(p)) {
                items.push(NewItem {
                    id: points.id(p).to_string(),
                    vector: points.vector(p).to_vec(),
                    metadata: points.metadata_owned(p),
                    document: points.document(p).map(str::to_string),
                });
            }
        }
        if !items.is_empty() {
            batch.push_add(1, &super::log_items(&items));
            for seg in s.segments.iter_mut().filter(|seg| seg.graph.is_none()) {
                seg.first_lsn = Some(1);
            }
            if !s.growing.points.is_empty() {
                s.growing.first_lsn = Some(1);
            }
        }
        batch
    }

    /// An index from its stored sealed segments and declared fields (no unsealed points
    /// yet: the log comes next, with `replay`). A segment stored without the index of a
    /// declared field gets it from a background job.
    pub fn from_storage(
        params: IndexParams,
        config: EngineConfig,
        fields: Fields,
        segments: Vec<LoadedSegment>,
    ) -> Result<Index, String> {
        params
            .check()
            .map_err(|e| format!("bad index parameters: {e}"))?;
        let mut restored = Vec::with_capacity(segments.len());
        let mut next_id = 1;
        for seg in segments {
            let id = seg.id;
            let held = match seg.content {
                SegmentContent::Stored(arrays) => arrays_to_segment(*arrays, &params)
                    .map(|(points, graph, fields, codes)| HeldSegment {
                        points: Arc::new(points),
                        graph: Arc::new(graph),
                        fields: Arc::new(fields),
                        codes: codes.map(Arc::new),
                    })
                    .map_err(|e| format!("segment {id}: {e}"))?,
                SegmentContent::Held(held) => held,
            };
            let n = held.points.len();
            if seg.tombstone_bits.len() != n.div_ceil(8) {
                return Err(format!("segment {id}: tombstones do not fit {n} points"));
            }
            let mut deleted = BitSet::with_len(n);
            let mut deleted_count = 0;
            for p in 0..n {
                if seg.tombstone_bits[p / 8] & (1 << (p % 8)) != 0 {
                    deleted.set(p);
                    deleted_count += 1;
                }
            }
            if restored.iter().any(|s: &Segment| s.id == id) {
                return Err(format!("segment {id} appears twice"));
            }
            next_id = next_id.max(id + 1);
            restored.push(Segment {
                id,
                points: held.points,
                graph: Some(held.graph),
                deleted,
                deleted_count,
                busy: AtomicBool::new(false),
                first_lsn: None,
                filters: Default::default(),
                fields: held.fields,
                codes: held.codes,
            });
        }
        let state = State {
            growing: Growing::new(next_id, params.dim),
            segments: restored,
            next_id: next_id + 1,
            fields,
        };
        super::one_object::check_unique_live_ids(&state)?;
        Ok(Index::from_state(params, config, state))
    }

    /// Applies logged mutations in lsn order (at start-up, before the index serves). An
    /// add replaces earlier copies of its ids, a delete of an absent id does nothing, so
    /// replaying a change the segments already hold is harmless.
    pub fn replay(&self, records: Vec<LogRecord>) -> Result<(), String> {
        for record in records {
            match record {
                LogRecord::Add { lsn, items } => {
                    let items: Vec<NewItem> = items
                        .into_iter()
                        .map(|i| NewItem {
                            id: i.id,
                            vector: i.vector,
                            metadata: i.metadata,
                            document: i.document,
                        })
                        .collect();
                    let items = self
                        .params
                        .check_items_within(items, &super::Limits::contract())
                        .map_err(|e| format!("log record {lsn}: {e}"))?;
                    self.add_inner(items, lsn, false)
                        .map_err(|e| format!("log record {lsn}: {e}"))?;
                }
                LogRecord::Delete { ids, .. } => {
                    self.delete_many(&ids);
                }
                LogRecord::Fields { lsn, fields } => {
                    let fields = crate::params::parse_fields(&serde_json::Value::Object(fields))
                        .map_err(|e| format!("log record {lsn}: {e}"))?;
                    self.declare_fields(&fields)
                        .map_err(|e| format!("log record {lsn}: {e}"))?;
                }
            }
        }
        self.mark_replayed_backlog();
        Ok(())
    }
}

/// Points, graph, field indexes and int8 codes (when stored) of a stored sealed segment.
pub(super) fn arrays_to_segment(
    arrays: SegmentArrays,
    params: &IndexParams,
) -> Result<(Points, FlatGraph, FieldIndexes, Option<Codes>), String> {
    let (dim, m) = (params.dim, params.m);
    let ids = IdTable::from_parts(arrays.id_bytes, arrays.id_ends)?;
    let metadata: Vec<Metadata> =
        super::one_object::decode_metadata(&arrays.metadata_bytes, &arrays.metadata_ends)?;
    let documents = Documents::from_stored(arrays.documents, ids.len())?;
    let points = Points::from_parts(dim, arrays.vectors, ids, metadata, documents)?;
    let g = arrays.graph.ok_or("a sealed segment without a graph")?;
    if g.m != m {
        return Err(format!("a graph of m {}, the index has m {m}", g.m));
    }
    let graph = FlatGraph::from_parts(
        points.len(),
        g.m,
        g.links0,
        g.upper_points,
        g.upper_levels,
        g.upper_start,
        g.upper,
        g.entry,
    )?;
    let fields = FieldIndexes::decode(arrays.fields, points.len())?;
    // Codes of an index no longer quantized are dropped; missing ones are computed by
    // `from_state`.
    let codes = match (arrays.codes, params.quantization) {
        (Some((range, bytes)), Some(_)) => {
            Some(Codes::from_parts(&range, bytes, &points, params.distance)?)
        }
        _ => None,
    };
    Ok((points, graph, fields, codes))
}
