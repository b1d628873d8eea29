//! The older one-object layouts: a whole index in one LHV1 object. The engine's first
//! segmented version wrote every segment as its flat arrays (sealed ones with their graph)
//! into one object; vectord 0.1.0 wrote version 1 (an `hnsw_rs` dump), which becomes one
//! sealed segment. Both are read at start-up and rewritten by the first save in the
//! current layout (`persisted`: segments, log objects and a manifest); only tests and the
//! benchmark still write one object. Also the metadata encoding both layouts share.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::bitset::BitSet;
use super::documents::Documents;
use super::hnsw::Graph;
use super::ids::IdTable;
use super::points::{Metadata, Points};
use super::sealed::FlatGraph;
use super::{EngineConfig, Growing, Index, Segment, State};
use crate::codec::segment::{self as seg, SegmentArrays, SegmentHeader, SegmentView};
use crate::codec::{self, v1, IndexEnvelope, IndexObject};

impl Index {
    /// Encodes the whole index as one object. Takes the read lock for the copy (searches
    /// go on); must not run concurrently with another mutation.
    pub fn to_one_object(&self) -> Result<Vec<u8>, String> {
        let s = self.read();
        let mut headers = Vec::new();
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for segment in &s.segments {
            let (h, p) = encode_segment(
                segment.id,
                &segment.points,
                segment.graph.as_deref(),
                &segment.deleted,
                false,
            );
            headers.push(h);
            parts.extend(p);
        }
        let g = &s.growing;
        let (h, p) = encode_segment(g.id, &g.points, None, &g.deleted, true);
        headers.push(h);
        parts.extend(p);
        drop(s);
        let envelope = IndexEnvelope {
            format: codec::FORMAT_NAME.into(),
            version: codec::VERSION,
            kind: codec::KIND_INDEX.into(),
            params: self.params.clone(),
            segments: headers,
        };
        let slices: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        codec::encode(&envelope, &slices)
    }

    /// Restores an index from an object written by `to_one_object` or by vectord 0.1.0,
    /// checking that every part agrees with the others.
    pub fn from_one_object(bytes: &[u8], config: EngineConfig) -> Result<Index, String> {
        match codec::decode_index(bytes).map_err(|e| e.to_string())? {
            IndexObject::V1(envelope, dump) => from_v1(envelope, dump, config),
            IndexObject::V2(envelope, payload) => from_v2(envelope, payload, config),
        }
    }
}

fn encode_segment(
    id: u64,
    points: &Points,
    graph: Option<&FlatGraph>,
    deleted: &BitSet,
    growing: bool,
) -> (SegmentHeader, Vec<Vec<u8>>) {
    let (metadata_bytes, metadata_ends) = encode_metadata(points.metadata_slice());
    let (id_bytes, id_ends) = points.ids().parts();
    let graph = graph.map(FlatGraph::view);
    let view = SegmentView {
        dim: points.dim(),
        vectors: points.vectors(),
        id_bytes,
        id_ends,
        metadata_bytes: &metadata_bytes,
        metadata_ends: &metadata_ends,
        documents: points.documents().parts(),
        graph,
        // This layout keeps no field indexes nor codes: a loaded index builds them again.
        codes: None,
        fields: Vec::new(),
    };
    let (mut header, parts) = seg::encode(&view);
    header.id = id;
    header.growing = growing;
    header.deleted = deleted.ones().map(|p| p as u32).collect();
    (header, parts)
}

/// Each point's metadata as JSON, back to back (empty for `{}`), with end offsets.
pub(super) fn encode_metadata(metadata: &[Metadata]) -> (Vec<u8>, Vec<u64>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::with_capacity(metadata.len());
    for m in metadata {
        if let Some(m) = m {
            // Writing a map of JSON values into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut bytes, m);
        }
        ends.push(bytes.len() as u64);
    }
    (bytes, ends)
}

pub(super) fn decode_metadata(bytes: &[u8], ends: &[u64]) -> Result<Vec<Metadata>, String> {
    let mut out = Vec::with_capacity(ends.len());
    let mut start = 0usize;
    for (p, &end) in ends.iter().enumerate() {
        let end = end as usize;
        if end < start || end > bytes.len() {
            return Err(format!("metadata of point {p} is out of range"));
        }
        if end == start {
            out.push(None);
        } else {
            let map: Map<String, Value> = serde_json::from_slice(&bytes[start..end])
                .map_err(|e| format!("metadata of point {p}: {e}"))?;
            out.push((!map.is_empty()).then(|| Box::new(map)));
        }
        start = end;
    }
    if start != bytes.len() {
        return Err("metadata bytes past the last point".into());
    }
    Ok(out)
}

/// A segment's points and graph from its decoded arrays.
fn restore_segment(
    header: &SegmentHeader,
    arrays: SegmentArrays,
    dim: usize,
    m: usize,
) -> Result<(Points, Option<FlatGraph>, BitSet, usize), String> {
    if header.dim != dim {
        return Err(format!(
            "segment {} has dim {}, the index {dim}",
            header.id, header.dim
        ));
    }
    let ids = IdTable::from_parts(arrays.id_bytes, arrays.id_ends)
        .map_err(|e| format!("segment {}: {e}", header.id))?;
    let metadata = decode_metadata(&arrays.metadata_bytes, &arrays.metadata_ends)
        .map_err(|e| format!("segment {}: {e}", header.id))?;
    let documents = Documents::from_stored(arrays.documents, ids.len())
        .map_err(|e| format!("segment {}: {e}", header.id))?;
    let points = Points::from_parts(dim, arrays.vectors, ids, metadata, documents)
        .map_err(|e| format!("segment {}: {e}", header.id))?;
    let n = points.len();
    let graph = match arrays.graph {
        None => None,
        Some(g) => {
            if g.m != m {
                return Err(format!(
                    "segment {} has a graph of m {}, the index {m}",
                    header.id, g.m
                ));
            }
            Some(
                FlatGraph::from_parts(
                    n,
                    g.m,
                    g.links0,
                    g.upper_points,
                    g.upper_levels,
                    g.upper_start,
                    g.upper,
                    g.entry,
                )
                .map_err(|e| format!("segment {}: {e}", header.id))?,
            )
        }
    };
    let mut deleted = BitSet::with_len(n);
    for &p in &header.deleted {
        if p as usize >= n || !deleted.set(p as usize) {
            return Err(format!(
                "segment {}: tombstone {p} is out of range or repeated",
                header.id
            ));
        }
    }
    let count = header.deleted.len();
    Ok((points, graph, deleted, count))
}

fn from_v2(envelope: IndexEnvelope, payload: &[u8], config: EngineConfig) -> Result<Index, String> {
    let params = envelope.params;
    params
        .check()
        .map_err(|e| format!("bad index parameters: {e}"))?;
    let mut segments = Vec::new();
    let mut growing = None;
    let mut at = 0usize;
    let mut next_id = 1;
    for header in &envelope.segments {
        let len = header.payload_len() as usize;
        let arrays = seg::decode(header, &payload[at..at + len]).map_err(|e| e.to_string())?;
        at += len;
        let (points, graph, deleted, deleted_count) =
            restore_segment(header, arrays, params.dim, params.m)?;
        let taken = segments.iter().any(|s: &Segment| s.id == header.id)
            || growing
                .as_ref()
                .is_some_and(|g: &Growing| g.id == header.id);
        if taken {
            return Err(format!("segment {} appears twice", header.id));
        }
        if !header.growing && graph.is_none() && points.is_empty() {
            return Err(format!("segment {} is empty and has no graph", header.id));
        }
        next_id = next_id.max(header.id.saturating_add(1));
        if header.growing {
            if growing.is_some() || graph.is_some() {
                return Err("more than one growing segment, or one with a graph".into());
            }
            growing = Some(Growing {
                id: header.id,
                points,
                deleted,
                deleted_count,
                first_lsn: None,
            });
        } else {
            segments.push(Segment {
                id: header.id,
                points: Arc::new(points),
                graph: graph.map(Arc::new),
                deleted,
                deleted_count,
                busy: AtomicBool::new(false),
                first_lsn: None,
                filters: Default::default(),
                fields: Default::default(),
                codes: None,
            });
        }
    }
    let growing = match growing {
        Some(g) => g,
        None => {
            next_id += 1;
            Growing::new(next_id - 1, params.dim)
        }
    };
    let state = State {
        growing,
        segments,
        next_id,
        fields: Default::default(),
    };
    check_unique_live_ids(&state)?;
    Ok(Index::from_state(params, config, state))
}

/// Every live id must be live in one segment only.
pub(super) fn check_unique_live_ids(state: &State) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    let all = state
        .segments
        .iter()
        .map(|s| (&*s.points, &s.deleted))
        .chain(std::iter::once((
            &state.growing.points,
            &state.growing.deleted,
        )));
    for (points, deleted) in all {
        for p in 0..points.len() {
            if !deleted.get(p) && !seen.insert(points.id(p)) {
                return Err(format!("item id {:?} is live twice", points.id(p)));
            }
        }
    }
    Ok(())
}

/// The vectors of a 0.1.0 graph, by point number; each point must be there once, with
/// the index's dimension.
fn v1_vectors(graph: &Graph, n: usize, dim: usize) -> Result<Vec<Option<Vec<f32>>>, String> {
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; n];
    for (p, v) in graph.vectors() {
        if p >= n || v.len() != dim || vectors[p].is_some() {
            return Err(format!(
                "graph point {p} (dim {}) does not fit {n} points of dim {dim}",
                v.len(),
            ));
        }
        vectors[p] = Some(v);
    }
    Ok(vectors)
}

/// A 0.1.0 item or a tombstone for each point: the items' ids and metadata by point
/// number, and the tombstones as a bit set with its count. A point may not be both.
#[allow(clippy::type_complexity)]
fn v1_items_and_tombstones(
    listed: Vec<v1::ItemRecord>,
    tombstones: Vec<usize>,
    n: usize,
) -> Result<(Vec<Option<(String, Map<String, Value>)>>, BitSet, usize), String> {
    let mut items: Vec<Option<(String, Map<String, Value>)>> = vec![None; n];
    for item in listed {
        let p = item.point;
        if p >= n || items[p].is_some() {
            return Err(format!(
                "item {:?} has a bad or repeated point {p}",
                item.id
            ));
        }
        items[p] = Some((item.id, item.metadata));
    }
    let mut deleted = BitSet::with_len(n);
    let mut deleted_count = 0;
    for p in tombstones {
        if p >= n || items[p].is_some() || !deleted.set(p) {
            return Err(format!("tombstone {p} is out of range, repeated or live"));
        }
        deleted_count += 1;
    }
    Ok((items, deleted, deleted_count))
}

/// A 0.1.0 index: its `hnsw_rs` graph is loaded, copied into the flat layout with its
/// vectors, and becomes one sealed segment (same neighbour lists); tombstoned points keep
/// their place (with an empty id) and their tombstone.
fn from_v1(
    envelope: v1::Envelope,
    dump: Option<v1::GraphDump>,
    config: EngineConfig,
) -> Result<Index, String> {
    let params = envelope.params;
    params
        .check()
        .map_err(|e| format!("bad index parameters: {e}"))?;
    let n = envelope.points;
    let index = Index::new(params.clone(), config);
    let Some(dump) = dump else {
        if n == 0 {
            return Ok(index);
        }
        return Err(format!("{n} points but no graph"));
    };
    let graph = Graph::load(params.distance, &dump)?;
    drop(dump);
    if graph.len() != n {
        return Err(format!(
            "envelope lists {n} points, graph holds {}",
            graph.len()
        ));
    }
    let vectors = v1_vectors(&graph, n, params.dim)?;
    let flat = graph.export(n, params.m)?;
    drop(graph);
    let (mut items, deleted, deleted_count) =
        v1_items_and_tombstones(envelope.items, envelope.tombstones, n)?;
    let mut points = Points::with_capacity(params.dim, n, n * 8);
    for (p, vector) in vectors.into_iter().enumerate() {
        let vector = vector.ok_or_else(|| format!("graph point {p} is missing"))?;
        match items[p].take() {
            Some((id, metadata)) => points.push(&id, &vector, metadata, None),
            None if deleted.get(p) => points.push("", &vector, Map::new(), None),
            None => return Err(format!("point {p} is neither an item nor a tombstone")),
        };
    }
    let state = State {
        growing: Growing::new(2, params.dim),
        segments: vec![Segment {
            id: 1,
            points: Arc::new(points),
            graph: Some(Arc::new(flat)),
            deleted,
            deleted_count,
            busy: AtomicBool::new(false),
            first_lsn: None,
            filters: Default::default(),
            fields: Default::default(),
            codes: None,
        }],
        next_id: 3,
        fields: Default::default(),
    };
    check_unique_live_ids(&state)?;
    Ok(Index::from_state(params, config, state))
}
