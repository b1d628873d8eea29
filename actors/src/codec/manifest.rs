//! The manifest: `_vectors/<name>.lhv1`, an index's one authoritative object. It names the
//! index's parameters, its incarnation (the directory `_vectors/<name>/<incarnation>/`
//! that holds its segment and log objects), its sealed segments with their objects'
//! lengths, and the last log sequence number whose changes the segments hold: a reload
//! applies the log objects after it. The segments' tombstones are bitsets in the payload,
//! in segment order, each `ceil(points / 8)` bytes, under one CRC32C.

use serde::{Deserialize, Serialize};

use super::{DecodeError, FORMAT_NAME, VERSION};
use crate::params::{Fields, IndexParams};

pub const KIND_MANIFEST: &str = "manifest";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub kind: String,
    pub params: IndexParams,
    /// The fields with a field index (absent when none, as before 0.3).
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub fields: Fields,
    /// Sixteen hex digits, new for every index created under this name.
    pub incarnation: String,
    /// Every change with a log sequence number up to this one is in the segments.
    pub covered_lsn: u64,
    pub segments: Vec<ManifestSegment>,
    /// Length and checksum of the payload (the tombstone bitsets).
    pub payload_len: u64,
    pub crc32c: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSegment {
    pub id: u64,
    /// The segment object's name inside the incarnation directory.
    pub object: String,
    /// The segment object's length in bytes.
    pub bytes: u64,
    pub points: usize,
    /// Tombstoned points (their bits are in the payload).
    pub tombstones: usize,
}

/// The object name of segment `id`.
pub fn segment_object(id: u64) -> String {
    format!("seg-{id:016x}.lhv1")
}

/// The object name of the log object starting at `first_lsn`.
pub fn log_object(first_lsn: u64) -> String {
    format!("log-{first_lsn:016x}.lhv1")
}

/// The first lsn of a log object's name, if it is one.
pub fn parse_log_object(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("log-")?.strip_suffix(".lhv1")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Encodes a manifest; `tombstones` are the segments' bitsets, in segment order.
pub fn encode(
    params: &IndexParams,
    fields: &Fields,
    incarnation: &str,
    covered_lsn: u64,
    segments: Vec<ManifestSegment>,
    tombstones: &[Vec<u8>],
) -> Result<Vec<u8>, String> {
    let payload: Vec<u8> = tombstones.concat();
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        version: VERSION,
        kind: KIND_MANIFEST.into(),
        params: params.clone(),
        fields: fields.clone(),
        incarnation: incarnation.into(),
        covered_lsn,
        segments,
        payload_len: payload.len() as u64,
        crc32c: crc32c::crc32c(&payload),
    };
    super::encode(&manifest, &[&payload])
}

/// Decodes a manifest and returns each segment's tombstone bitset with it.
pub fn decode(bytes: &[u8]) -> Result<(Manifest, Vec<Vec<u8>>), DecodeError> {
    let (env, payload) = super::unframe(bytes)?;
    let m: Manifest =
        serde_json::from_slice(env).map_err(|e| DecodeError::BadJson(e.to_string()))?;
    if m.format != FORMAT_NAME || m.version != VERSION || m.kind != KIND_MANIFEST {
        return Err(DecodeError::UnknownVersion {
            format: m.format,
            version: m.version,
            kind: m.kind,
        });
    }
    if m.payload_len != payload.len() as u64 {
        return Err(DecodeError::Length {
            what: "manifest payload".into(),
            expected: m.payload_len,
            actual: payload.len() as u64,
        });
    }
    let actual = crc32c::crc32c(payload);
    if actual != m.crc32c {
        return Err(DecodeError::ChecksumMismatch {
            what: "manifest payload".into(),
            expected: m.crc32c,
            actual,
        });
    }
    if m.incarnation.len() != 16 || !m.incarnation.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DecodeError::Invalid(format!(
            "bad incarnation {:?}",
            m.incarnation
        )));
    }
    let mut bitsets = Vec::with_capacity(m.segments.len());
    let mut at = 0usize;
    for s in &m.segments {
        let len = s.points.div_ceil(8);
        let Some(bits) = payload.get(at..at.saturating_add(len)) else {
            return Err(DecodeError::Invalid(format!(
                "tombstones of segment {} run past the payload",
                s.id
            )));
        };
        if s.object != segment_object(s.id) {
            return Err(DecodeError::Invalid(format!(
                "segment {} names object {:?}",
                s.id, s.object
            )));
        }
        bitsets.push(bits.to_vec());
        at += len;
    }
    if at != payload.len() {
        return Err(DecodeError::Invalid(
            "tombstone bytes past the last segment".into(),
        ));
    }
    Ok((m, bitsets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Metric;

    fn params() -> IndexParams {
        IndexParams {
            name: "m".into(),
            dim: 2,
            distance: Metric::L2,
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            quantization: None,
            on_disk: false,
        }
    }

    fn sample() -> Vec<u8> {
        let segs = vec![
            ManifestSegment {
                id: 3,
                object: segment_object(3),
                bytes: 100,
                points: 10,
                tombstones: 1,
            },
            ManifestSegment {
                id: 9,
                object: segment_object(9),
                bytes: 50,
                points: 3,
                tombstones: 0,
            },
        ];
        encode(
            &params(),
            &Fields::new(),
            "00000000deadbeef",
            42,
            segs,
            &[vec![4, 0], vec![0]],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_names() {
        let (m, bits) = decode(&sample()).unwrap();
        assert_eq!((m.covered_lsn, m.segments.len()), (42, 2));
        assert_eq!(bits, [vec![4, 0], vec![0]]);
        assert_eq!(parse_log_object(&log_object(0xabc)), Some(0xabc));
        assert_eq!(parse_log_object("log-12.lhv1"), None);
        assert_eq!(parse_log_object("seg-0000000000000001.lhv1"), None);
    }

    #[test]
    fn never_panics_on_damaged_manifests() {
        let good = sample();
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err());
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x21;
            let _ = decode(&b);
        }
    }
}
