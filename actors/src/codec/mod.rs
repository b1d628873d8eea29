//! The LHV1 object format. Every object vectord stores has the same framing:
//!
//! ```text
//! [4 bytes magic "LHV1"][u32 big-endian envelope_len][envelope: JSON][payload bytes]
//! ```
//!
//! The envelope says what the object is (`format`, `version`, `kind`) and holds the
//! lengths and checksums of the payload's parts; the payload holds vectors and graphs as
//! little-endian arrays. Decoding checks magic, lengths, JSON, version and every checksum
//! before any array is read, and never panics on any input (see the property tests).
//!
//! - `v1`: the one-object-per-index files of vectord 0.1.0 (`hnsw_rs` dump as payload),
//!   read so that old data keeps loading; never written any more.
//! - `segment`: the arrays of one segment (vectors, ids, metadata, flat graph).
//! - `cache_file`: a segment's arrays on local disk, vectors mapped (`floats`).
//! - `IndexEnvelope` (version 2, kind `index`): a whole index in one object, its segments'
//!   sections back to back in the payload.
//!
//! This module is a leaf: it frames plain data and knows nothing of indexes or actors.

pub mod cache_file;
pub mod floats;
pub mod log;
pub mod manifest;
pub mod segment;
pub mod v1;

use serde::{Deserialize, Serialize};

use crate::params::IndexParams;
use segment::SegmentHeader;

pub const MAGIC: &[u8; 4] = b"LHV1";
pub const FORMAT_NAME: &str = "vectord-lhv1";
/// The version this build writes.
pub const VERSION: u32 = 2;
/// Largest envelope, checked on both sides: encode refuses to write what decode would
/// refuse to read.
pub const MAX_ENVELOPE_BYTES: usize = 1 << 30;

/// Why an object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("bad magic: not an LHV1 file")]
    BadMagic,
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("envelope length {len} runs past the end of the {total}-byte file or the limit")]
    EnvelopePastEnd { len: usize, total: usize },
    #[error("envelope is not valid JSON: {0}")]
    BadJson(String),
    #[error("unsupported format {format:?} version {version} kind {kind:?} (this build reads {FORMAT_NAME:?} versions 1 and {VERSION})")]
    UnknownVersion {
        format: String,
        version: u32,
        kind: String,
    },
    #[error("checksum mismatch in {what}: envelope says {expected:08x}, bytes give {actual:08x}")]
    ChecksumMismatch {
        what: String,
        expected: u32,
        actual: u32,
    },
    #[error("{what} is {actual} bytes long, envelope says {expected}")]
    Length {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// The parts are intact but do not describe a valid index.
    #[error("{0}")]
    Invalid(String),
}

/// What every envelope starts with; read first to pick the decoder.
#[derive(Debug, Clone, Deserialize)]
pub struct Head {
    pub format: String,
    pub version: u32,
    /// Absent in version 1 (which only had whole-index objects).
    #[serde(default)]
    pub kind: Option<String>,
}

/// A whole index in one object (version 2, kind `index`): its parameters and segments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEnvelope {
    pub format: String,
    pub version: u32,
    pub kind: String,
    pub params: IndexParams,
    /// In payload order; each segment's sections are back to back.
    pub segments: Vec<SegmentHeader>,
}

pub const KIND_INDEX: &str = "index";

/// Frames an envelope and its payload parts into one object.
pub fn encode(envelope: &impl Serialize, payload: &[&[u8]]) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(envelope).map_err(|e| format!("encoding the envelope: {e}"))?;
    if json.len() > MAX_ENVELOPE_BYTES {
        return Err(format!(
            "envelope of {} bytes is over the limit of {MAX_ENVELOPE_BYTES} bytes",
            json.len()
        ));
    }
    let total: usize = payload.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(8 + json.len() + total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    for part in payload {
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// Splits an object into its envelope (JSON bytes) and payload, checking the framing.
pub fn unframe(bytes: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    if bytes.len() < 4 {
        return Err(DecodeError::Truncated(format!(
            "{} bytes, no room for the magic",
            bytes.len()
        )));
    }
    if &bytes[0..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes.len() < 8 {
        return Err(DecodeError::Truncated(format!(
            "{} bytes, no room for the envelope length",
            bytes.len()
        )));
    }
    let len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if len > MAX_ENVELOPE_BYTES.max(v1::MAX_ENVELOPE) || 8 + len > bytes.len() {
        return Err(DecodeError::EnvelopePastEnd {
            len,
            total: bytes.len(),
        });
    }
    Ok((&bytes[8..8 + len], &bytes[8 + len..]))
}

/// The head of an envelope.
pub fn head(envelope: &[u8]) -> Result<Head, DecodeError> {
    let head: Head =
        serde_json::from_slice(envelope).map_err(|e| DecodeError::BadJson(e.to_string()))?;
    if head.format != FORMAT_NAME {
        return Err(unknown(&head));
    }
    Ok(head)
}

fn unknown(head: &Head) -> DecodeError {
    DecodeError::UnknownVersion {
        format: head.format.clone(),
        version: head.version,
        kind: head.kind.clone().unwrap_or_default(),
    }
}

/// A decoded whole-index object, of either version.
pub enum IndexObject<'a> {
    V1(v1::Envelope, Option<v1::GraphDump>),
    V2(IndexEnvelope, &'a [u8]),
}

/// Decodes a whole-index object: checks framing and version, and for version 1 the graph
/// checksum. Version 2 segments are checked when their sections are read.
pub fn decode_index(bytes: &[u8]) -> Result<IndexObject<'_>, DecodeError> {
    let (envelope, payload) = unframe(bytes)?;
    let h = head(envelope)?;
    match (h.version, h.kind.as_deref()) {
        (1, None) => {
            let (env, dump) = v1::decode(bytes)?;
            Ok(IndexObject::V1(env, dump))
        }
        (VERSION, Some(KIND_INDEX)) => {
            let env: IndexEnvelope = serde_json::from_slice(envelope)
                .map_err(|e| DecodeError::BadJson(e.to_string()))?;
            let total = env
                .segments
                .iter()
                .fold(0u64, |t, s| t.saturating_add(s.payload_len()));
            if total != payload.len() as u64 {
                return Err(DecodeError::Length {
                    what: "payload".into(),
                    expected: total,
                    actual: payload.len() as u64,
                });
            }
            Ok(IndexObject::V2(env, payload))
        }
        _ => Err(unknown(&h)),
    }
}
