//! LHV1 version 1: the files of vectord 0.1.0, one object per index. Read so that their
//! data keeps loading (then rewritten in the current layout by the next save); never
//! written by this version, except by tests.
//!
//! The envelope holds the index parameters, every live item (point, id, metadata), the
//! tombstoned points, and the lengths and CRC32C of the graph bytes, which are `hnsw_rs`'
//! two dump files back to back (graph file, then data file). Decoding checks everything
//! before a single byte reaches `hnsw_rs`, whose loader exits the process on truncated
//! input; it never panics on any input (see the property test below).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[cfg(test)]
use super::MAGIC;
use super::{DecodeError, FORMAT_NAME};
use crate::params::IndexParams;

pub const VERSION: u32 = 1;
/// Largest envelope 0.1.0 read; its files are read with the same limit.
pub const MAX_ENVELOPE: usize = 1 << 31;

/// The two files of an `hnsw_rs` dump, in memory.
#[derive(Debug)]
pub struct GraphDump {
    pub graph_file: Vec<u8>,
    pub data_file: Vec<u8>,
}

/// The JSON part of an LHV1 object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub format: String,
    pub version: u32,
    pub params: IndexParams,
    /// Points in the graph, live and tombstoned; points are numbered 0..points.
    pub points: usize,
    pub items: Vec<ItemRecord>,
    /// Points whose item was deleted or replaced; still in the graph until a compaction.
    pub tombstones: Vec<usize>,
    /// Where the graph bytes are; none for an index that never had a point.
    pub graph: Option<GraphInfo>,
}

/// One live item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRecord {
    pub point: usize,
    pub id: String,
    pub metadata: Map<String, Value>,
}

/// Lengths and checksum of the graph bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GraphInfo {
    pub graph_file_len: u64,
    pub data_file_len: u64,
    pub crc32c: u32,
}

/// Frames an envelope and an optional graph dump as 0.1.0 did; for tests.
#[cfg(test)]
pub fn encode(mut envelope: Envelope, dump: Option<&GraphDump>) -> Result<Vec<u8>, String> {
    envelope.graph = dump.map(|d| {
        let crc = crc32c::crc32c_append(crc32c::crc32c(&d.graph_file), &d.data_file);
        GraphInfo {
            graph_file_len: d.graph_file.len() as u64,
            data_file_len: d.data_file.len() as u64,
            crc32c: crc,
        }
    });
    let json = serde_json::to_vec(&envelope).map_err(|e| format!("encoding the envelope: {e}"))?;
    let len = u32::try_from(json.len())
        .map_err(|_| format!("envelope of {} bytes is too big", json.len()))?;
    let graph_len = dump.map_or(0, |d| d.graph_file.len() + d.data_file.len());
    let mut out = Vec::with_capacity(8 + json.len() + graph_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    if let Some(d) = dump {
        out.extend_from_slice(&d.graph_file);
        out.extend_from_slice(&d.data_file);
    }
    Ok(out)
}

/// Unframes and checks an object. The graph dump is returned only when the envelope
/// announces one and every check passed.
pub fn decode(bytes: &[u8]) -> Result<(Envelope, Option<GraphDump>), DecodeError> {
    let (env_bytes, rest) = super::unframe(bytes)?;
    let envelope: Envelope =
        serde_json::from_slice(env_bytes).map_err(|e| DecodeError::BadJson(e.to_string()))?;
    if envelope.format != FORMAT_NAME || envelope.version != VERSION {
        return Err(DecodeError::UnknownVersion {
            format: envelope.format,
            version: envelope.version,
            kind: String::new(),
        });
    }
    let Some(info) = envelope.graph else {
        if !rest.is_empty() {
            return Err(DecodeError::Length {
                what: "graph bytes".into(),
                expected: 0,
                actual: rest.len() as u64,
            });
        }
        return Ok((envelope, None));
    };
    let expected = info.graph_file_len.saturating_add(info.data_file_len);
    if rest.len() as u64 != expected {
        return Err(DecodeError::Length {
            what: "graph bytes".into(),
            expected,
            actual: rest.len() as u64,
        });
    }
    let actual = crc32c::crc32c(rest);
    if actual != info.crc32c {
        return Err(DecodeError::ChecksumMismatch {
            what: "graph bytes".into(),
            expected: info.crc32c,
            actual,
        });
    }
    let split = info.graph_file_len as usize;
    let dump = GraphDump {
        graph_file: rest[..split].to_vec(),
        data_file: rest[split..].to_vec(),
    };
    Ok((envelope, Some(dump)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Metric;

    fn envelope() -> Envelope {
        Envelope {
            format: FORMAT_NAME.into(),
            version: VERSION,
            params: IndexParams {
                name: "t".into(),
                dim: 2,
                distance: Metric::L2,
                m: 16,
                ef_construction: 200,
                ef_search: 64,
                quantization: None,
                on_disk: false,
            },
            points: 0,
            items: vec![],
            tombstones: vec![],
            graph: None,
        }
    }

    fn dump() -> GraphDump {
        GraphDump {
            graph_file: b"graph-part".to_vec(),
            data_file: b"data-part!".to_vec(),
        }
    }

    fn sample() -> Vec<u8> {
        encode(envelope(), Some(&dump())).unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        assert_eq!(&bytes[0..4], MAGIC);
        let (env, dump) = decode(&bytes).unwrap();
        assert_eq!(env.params.name, "t");
        let dump = dump.unwrap();
        assert_eq!(dump.graph_file, b"graph-part");
        assert_eq!(dump.data_file, b"data-part!");
        let empty = encode(envelope(), None).unwrap();
        assert!(decode(&empty).unwrap().1.is_none());
    }

    #[test]
    fn each_defect_has_its_own_error() {
        let good = sample();
        assert_eq!(
            decode(b"LHV").unwrap_err(),
            DecodeError::Truncated("3 bytes, no room for the magic".into())
        );
        assert_eq!(decode(b"XXXX\0\0\0\0").unwrap_err(), DecodeError::BadMagic);
        assert!(matches!(
            decode(&good[..6]).unwrap_err(),
            DecodeError::Truncated(_)
        ));
        let mut past = good.clone();
        past[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&past).unwrap_err(),
            DecodeError::EnvelopePastEnd { .. }
        ));
        let mut json = b"LHV1".to_vec();
        json.extend_from_slice(&3u32.to_be_bytes());
        json.extend_from_slice(b"{x}");
        assert!(matches!(
            decode(&json).unwrap_err(),
            DecodeError::BadJson(_)
        ));
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            decode(&flipped).unwrap_err(),
            DecodeError::ChecksumMismatch { .. }
        ));
        assert!(matches!(
            decode(&good[..good.len() - 1]).unwrap_err(),
            DecodeError::Length { .. }
        ));
        let mut env = envelope();
        env.version = 99;
        assert!(matches!(
            decode(&encode(env, None).unwrap()).unwrap_err(),
            DecodeError::UnknownVersion { .. }
        ));
    }

    #[test]
    fn decodes_the_sample_refuses_its_cuts_and_never_panics_on_changed_bytes() {
        // A seeded property test. The sample decodes to what was encoded; every prefix of
        // it is refused; every single-byte change, and random garbage after a valid header,
        // decode to an error or a value, never a panic, and the changes that no check can
        // miss (magic, graph bytes under their checksum, garbage without the magic) are
        // refused.
        let good = sample();
        let (env, got) = decode(&good).expect("the sample decodes");
        let info = env.graph.expect("the sample has graph bytes");
        let want = dump();
        assert_eq!(
            (info.graph_file_len, info.data_file_len),
            (want.graph_file.len() as u64, want.data_file.len() as u64)
        );
        let got = got.expect("the sample's graph dump");
        assert_eq!(
            (got.graph_file, got.data_file),
            (want.graph_file, want.data_file)
        );
        let without_graph = Envelope { graph: None, ..env };
        assert_eq!(
            serde_json::to_value(&without_graph).unwrap(),
            serde_json::to_value(envelope()).unwrap()
        );
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "a cut at {cut} decoded");
        }
        let graph_at = 8 + u32::from_be_bytes(good[4..8].try_into().unwrap()) as usize;
        for i in 0..good.len() {
            for delta in [1u8, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] = b[i].wrapping_add(delta);
                let decoded = decode(&b);
                if i < 4 || i >= graph_at {
                    assert!(decoded.is_err(), "byte {i} + {delta} decoded");
                }
            }
        }
        let mut s: u64 = 42;
        for n in 0..2000 {
            let len = n % 300;
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (s >> 56) as u8
                })
                .collect();
            if n % 2 == 0 && b.len() >= 8 {
                b[0..4].copy_from_slice(MAGIC);
                b[4..8].copy_from_slice(&((len as u32).saturating_sub(8) / 2).to_be_bytes());
            }
            let decoded = decode(&b);
            if !b.starts_with(MAGIC) {
                assert!(decoded.is_err(), "garbage without the magic decoded");
            }
        }
    }
}
