//! The arrays of one segment as payload sections: each section is a little-endian array
//! with its length and CRC32C in the segment's header, so that a reload reads arrays back
//! and rebuilds nothing.
//!
//! Sections, in payload order: `vectors` (f32, points × dim), `id_bytes` (the ids back to
//! back), `id_ends` (u64 end offset of each id), `metadata_bytes` (each point's metadata as
//! a JSON object, empty for `{}`), `metadata_ends` (u64), and for a sealed segment the flat
//! graph: `links0`, `upper_points`, `upper_start`, `upper` (u32) and `upper_levels` (u8).

use serde::{Deserialize, Serialize};

use super::DecodeError;

/// What the envelope says about one segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentHeader {
    /// The segment's number within its index.
    pub id: u64,
    pub points: usize,
    pub dim: usize,
    /// Takes the index's new items (at most one per index).
    #[serde(default)]
    pub growing: bool,
    /// The graph's parameters; none for a segment that is searched by scanning.
    pub graph: Option<GraphHeader>,
    /// Tombstoned points (deleted or replaced items), ascending.
    pub deleted: Vec<u32>,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GraphHeader {
    pub m: usize,
    pub entry: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    pub len: u64,
    pub crc32c: u32,
}

/// A segment's arrays, borrowed for encoding.
pub struct SegmentView<'a> {
    pub dim: usize,
    pub vectors: &'a [f32],
    pub id_bytes: &'a [u8],
    pub id_ends: &'a [u64],
    pub metadata_bytes: &'a [u8],
    pub metadata_ends: &'a [u64],
    pub graph: Option<GraphView<'a>>,
}

pub struct GraphView<'a> {
    pub m: usize,
    pub entry: u32,
    pub links0: &'a [u32],
    pub upper_points: &'a [u32],
    pub upper_levels: &'a [u8],
    pub upper_start: &'a [u32],
    pub upper: &'a [u32],
}

/// A segment's arrays, decoded and checked against their checksums.
pub struct SegmentArrays {
    pub vectors: Vec<f32>,
    pub id_bytes: Vec<u8>,
    pub id_ends: Vec<u64>,
    pub metadata_bytes: Vec<u8>,
    pub metadata_ends: Vec<u64>,
    pub graph: Option<GraphArrays>,
}

pub struct GraphArrays {
    pub m: usize,
    pub entry: u32,
    pub links0: Vec<u32>,
    pub upper_points: Vec<u32>,
    pub upper_levels: Vec<u8>,
    pub upper_start: Vec<u32>,
    pub upper: Vec<u32>,
}

const PLAIN: [&str; 5] = [
    "vectors",
    "id_bytes",
    "id_ends",
    "metadata_bytes",
    "metadata_ends",
];
const GRAPH: [&str; 5] = [
    "links0",
    "upper_points",
    "upper_start",
    "upper",
    "upper_levels",
];

impl SegmentHeader {
    /// Bytes of payload the segment's sections take.
    pub fn payload_len(&self) -> u64 {
        // Saturating: lengths come from stored bytes and must not wrap into a plausible sum.
        self.sections
            .iter()
            .fold(0u64, |total, s| total.saturating_add(s.len))
    }
}

/// Encodes a segment's arrays: its header (without id, growing and deleted, which the
/// caller fills in) and its sections' bytes, in payload order.
pub fn encode(view: &SegmentView) -> (SegmentHeader, Vec<Vec<u8>>) {
    let mut parts: Vec<(&str, Vec<u8>)> = vec![
        ("vectors", le_f32(view.vectors)),
        ("id_bytes", view.id_bytes.to_vec()),
        ("id_ends", le_u64(view.id_ends)),
        ("metadata_bytes", view.metadata_bytes.to_vec()),
        ("metadata_ends", le_u64(view.metadata_ends)),
    ];
    if let Some(g) = &view.graph {
        parts.push(("links0", le_u32(g.links0)));
        parts.push(("upper_points", le_u32(g.upper_points)));
        parts.push(("upper_start", le_u32(g.upper_start)));
        parts.push(("upper", le_u32(g.upper)));
        parts.push(("upper_levels", g.upper_levels.to_vec()));
    }
    let sections = parts
        .iter()
        .map(|(name, bytes)| Section {
            name: name.to_string(),
            len: bytes.len() as u64,
            crc32c: crc32c::crc32c(bytes),
        })
        .collect();
    let header = SegmentHeader {
        id: 0,
        points: view.id_ends.len(),
        dim: view.dim,
        growing: false,
        graph: view.graph.as_ref().map(|g| GraphHeader {
            m: g.m,
            entry: g.entry,
        }),
        deleted: Vec::new(),
        sections,
    };
    (header, parts.into_iter().map(|(_, b)| b).collect())
}

/// Reads a segment's sections from `payload` (exactly its sections, back to back),
/// checking names, lengths and checksums.
pub fn decode(header: &SegmentHeader, payload: &[u8]) -> Result<SegmentArrays, DecodeError> {
    let expected: Vec<&str> = match header.graph {
        Some(_) => PLAIN.iter().chain(GRAPH.iter()).copied().collect(),
        None => PLAIN.to_vec(),
    };
    let names: Vec<&str> = header.sections.iter().map(|s| s.name.as_str()).collect();
    if names != expected {
        return Err(DecodeError::Invalid(format!(
            "segment {} has sections {names:?}, expected {expected:?}",
            header.id
        )));
    }
    if header.payload_len() != payload.len() as u64 {
        return Err(DecodeError::Length {
            what: format!("segment {}", header.id),
            expected: header.payload_len(),
            actual: payload.len() as u64,
        });
    }
    let mut parts = Vec::with_capacity(header.sections.len());
    let mut at = 0usize;
    for s in &header.sections {
        let bytes = &payload[at..at + s.len as usize];
        at += s.len as usize;
        let actual = crc32c::crc32c(bytes);
        if actual != s.crc32c {
            return Err(DecodeError::ChecksumMismatch {
                what: format!("segment {} section {}", header.id, s.name),
                expected: s.crc32c,
                actual,
            });
        }
        parts.push(bytes);
    }
    let n = header.points;
    let sized = |what: &str, bytes: &[u8], want: u64| {
        if bytes.len() as u64 == want {
            Ok(())
        } else {
            Err(DecodeError::Length {
                what: format!("segment {} section {what}", header.id),
                expected: want,
                actual: bytes.len() as u64,
            })
        }
    };
    sized("vectors", parts[0], n as u64 * header.dim as u64 * 4)?;
    sized("id_ends", parts[2], n as u64 * 8)?;
    sized("metadata_ends", parts[4], n as u64 * 8)?;
    let graph = match header.graph {
        None => None,
        Some(g) => {
            sized("links0", parts[5], n as u64 * (1 + 2 * g.m as u64) * 4)?;
            if parts[6].len() % 4 != 0 || parts[7].len() != parts[6].len() {
                return Err(DecodeError::Invalid(format!(
                    "segment {}: upper-layer tables disagree",
                    header.id
                )));
            }
            sized("upper_levels", parts[9], parts[6].len() as u64 / 4)?;
            if parts[8].len() % 4 != 0 {
                return Err(DecodeError::Invalid(format!(
                    "segment {}: upper section is not whole u32 values",
                    header.id
                )));
            }
            Some(GraphArrays {
                m: g.m,
                entry: g.entry,
                links0: from_le_u32(parts[5]),
                upper_points: from_le_u32(parts[6]),
                upper_start: from_le_u32(parts[7]),
                upper: from_le_u32(parts[8]),
                upper_levels: parts[9].to_vec(),
            })
        }
    };
    Ok(SegmentArrays {
        vectors: from_le_f32(parts[0]),
        id_bytes: parts[1].to_vec(),
        id_ends: from_le_u64(parts[2]),
        metadata_bytes: parts[3].to_vec(),
        metadata_ends: from_le_u64(parts[4]),
        graph,
    })
}

fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le_u32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le_u64(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_le_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn from_le_u32(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn from_le_u64(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(graph: bool) -> (SegmentHeader, Vec<u8>) {
        let vectors = [1.0f32, 2.0, 3.0, 4.0];
        let links0 = [1u32, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        let view = SegmentView {
            dim: 2,
            vectors: &vectors,
            id_bytes: b"ab",
            id_ends: &[1, 2],
            metadata_bytes: b"{\"k\":1}",
            metadata_ends: &[0, 7],
            graph: graph.then_some(GraphView {
                m: 2,
                entry: 0,
                links0: &links0,
                upper_points: &[],
                upper_levels: &[],
                upper_start: &[],
                upper: &[],
            }),
        };
        let (header, parts) = encode(&view);
        (header, parts.concat())
    }

    #[test]
    fn round_trip() {
        for graph in [false, true] {
            let (header, payload) = sample(graph);
            let arrays = decode(&header, &payload).unwrap();
            assert_eq!(arrays.vectors, [1.0, 2.0, 3.0, 4.0]);
            assert_eq!(arrays.id_ends, [1, 2]);
            assert_eq!(arrays.metadata_bytes, b"{\"k\":1}");
            assert_eq!(arrays.graph.is_some(), graph);
        }
    }

    #[test]
    fn never_panics_on_damaged_payloads() {
        let (header, payload) = sample(true);
        for cut in 0..payload.len() {
            assert!(decode(&header, &payload[..cut]).is_err());
        }
        for i in 0..payload.len() {
            let mut b = payload.clone();
            b[i] ^= 0x40;
            assert!(matches!(
                decode(&header, &b),
                Err(DecodeError::ChecksumMismatch { .. })
            ));
        }
        let mut h = header.clone();
        h.points = 3;
        assert!(decode(&h, &payload).is_err());
        let mut h = header.clone();
        h.sections.swap(0, 1);
        assert!(decode(&h, &payload).is_err());
        let mut h = header;
        h.graph = Some(GraphHeader { m: 1000, entry: 0 });
        assert!(decode(&h, &payload).is_err());
    }
}
