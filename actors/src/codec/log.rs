//! Log objects: the changes of an index since its manifest, one object per save, so that a
//! trickle of writes costs bytes in proportion to the trickle.
//!
//! Every client mutation of an index (an `add` batch, an item delete) gets a log sequence
//! number (lsn), consecutive from 1. A log object holds the records of a run of consecutive
//! lsns, `first_lsn..=last_lsn`; its envelope holds the payload's length and CRC32C. Records,
//! little-endian, back to back:
//!
//! ```text
//! add:    [1u8][lsn u64][count u32] then count × [id_len u16][id][meta_len u32][meta JSON][dim × f32]
//! add with documents (written when any item of the batch has one):
//!         [5u8][lsn u64][count u32] then count × [id_len u16][id][meta_len u32][meta JSON]
//!         [doc_len u32, u32::MAX for none][doc UTF-8][dim × f32]
//! delete: [2u8][lsn u64][id_len u16][id]
//! delete of several ids in one change: [3u8][lsn u64][count u32] then count × [id_len u16][id]
//! fields declared for indexing:         [4u8][lsn u64][len u32][JSON object: name → kind]
//! ```
//!
//! Decoding checks the envelope, the checksum and every length before it builds anything,
//! and never panics (property test below).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{DecodeError, FORMAT_NAME, VERSION};

pub const KIND_LOG: &str = "log";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEnvelope {
    pub format: String,
    pub version: u32,
    pub kind: String,
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub dim: usize,
    pub records: usize,
    pub payload_len: u64,
    pub crc32c: u32,
}

/// One item of an add record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogItem {
    pub id: String,
    pub vector: Vec<f32>,
    pub metadata: Map<String, Value>,
    pub document: Option<String>,
}

/// One item of an add record, borrowed for encoding.
pub struct AddedItem<'a> {
    pub id: &'a str,
    pub vector: &'a [f32],
    pub metadata: &'a Map<String, Value>,
    pub document: Option<&'a str>,
}

/// `doc_len` of an item without a document.
const NO_DOCUMENT: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
pub enum LogRecord {
    Add {
        lsn: u64,
        items: Vec<LogItem>,
    },
    /// One id (record type 2) or several deleted as one change (type 3).
    Delete {
        lsn: u64,
        ids: Vec<String>,
    },
    /// Fields declared for indexing (`{"lang": "keyword"}`), read as `params::parse_fields`.
    Fields {
        lsn: u64,
        fields: Map<String, Value>,
    },
}

impl LogRecord {
    pub fn lsn(&self) -> u64 {
        match self {
            LogRecord::Add { lsn, .. }
            | LogRecord::Delete { lsn, .. }
            | LogRecord::Fields { lsn, .. } => *lsn,
        }
    }
}

/// Records being collected for the next log object: their bytes and lsn range.
#[derive(Debug, Default, Clone)]
pub struct LogBatch {
    pub bytes: Vec<u8>,
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub records: usize,
}

impl LogBatch {
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    fn note(&mut self, lsn: u64) {
        if self.records == 0 {
            self.first_lsn = lsn;
        }
        self.last_lsn = lsn;
        self.records += 1;
    }

    /// Appends an add record: of type 1 (as before documents existed) unless an item has
    /// a document. Documents must be shorter than 4 GiB (the limits keep them far below).
    pub fn push_add(&mut self, lsn: u64, items: &[AddedItem]) {
        self.note(lsn);
        let documents = items.iter().any(|i| i.document.is_some());
        let b = &mut self.bytes;
        b.push(if documents { 5 } else { 1 });
        b.extend_from_slice(&lsn.to_le_bytes());
        b.extend_from_slice(&(items.len() as u32).to_le_bytes());
        for item in items {
            b.extend_from_slice(&(item.id.len() as u16).to_le_bytes());
            b.extend_from_slice(item.id.as_bytes());
            let meta = if item.metadata.is_empty() {
                Vec::new()
            } else {
                // A map of JSON values always serializes.
                serde_json::to_vec(item.metadata).unwrap_or_default()
            };
            b.extend_from_slice(&(meta.len() as u32).to_le_bytes());
            b.extend_from_slice(&meta);
            if documents {
                match item.document {
                    Some(text) => {
                        b.extend_from_slice(&(text.len() as u32).to_le_bytes());
                        b.extend_from_slice(text.as_bytes());
                    }
                    None => b.extend_from_slice(&NO_DOCUMENT.to_le_bytes()),
                }
            }
            for x in item.vector {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
    }

    pub fn push_delete(&mut self, lsn: u64, id: &str) {
        self.note(lsn);
        let b = &mut self.bytes;
        b.push(2);
        b.extend_from_slice(&lsn.to_le_bytes());
        b.extend_from_slice(&(id.len() as u16).to_le_bytes());
        b.extend_from_slice(id.as_bytes());
    }

    /// Appends one record deleting every id of `ids` (one change, however many ids).
    pub fn push_delete_many(&mut self, lsn: u64, ids: &[String]) {
        self.note(lsn);
        let b = &mut self.bytes;
        b.push(3);
        b.extend_from_slice(&lsn.to_le_bytes());
        b.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids {
            b.extend_from_slice(&(id.len() as u16).to_le_bytes());
            b.extend_from_slice(id.as_bytes());
        }
    }

    /// Appends a declaration of fields to index (a JSON object of name to kind).
    pub fn push_fields(&mut self, lsn: u64, fields: &impl Serialize) {
        self.note(lsn);
        // A map of names to kinds always serializes.
        let json = serde_json::to_vec(fields).unwrap_or_default();
        let b = &mut self.bytes;
        b.push(4);
        b.extend_from_slice(&lsn.to_le_bytes());
        b.extend_from_slice(&(json.len() as u32).to_le_bytes());
        b.extend_from_slice(&json);
    }

    /// Appends a later batch (its lsns follow this one's).
    pub fn append(&mut self, later: LogBatch) {
        if later.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = later;
            return;
        }
        self.bytes.extend_from_slice(&later.bytes);
        self.last_lsn = later.last_lsn;
        self.records += later.records;
    }

    /// The framed object.
    pub fn encode(&self, dim: usize) -> Result<Vec<u8>, String> {
        let envelope = LogEnvelope {
            format: FORMAT_NAME.into(),
            version: VERSION,
            kind: KIND_LOG.into(),
            first_lsn: self.first_lsn,
            last_lsn: self.last_lsn,
            dim,
            records: self.records,
            payload_len: self.bytes.len() as u64,
            crc32c: crc32c::crc32c(&self.bytes),
        };
        super::encode(&envelope, &[&self.bytes])
    }
}

/// Decodes a log object of an index of dimension `dim`.
pub fn decode(bytes: &[u8], dim: usize) -> Result<(LogEnvelope, Vec<LogRecord>), DecodeError> {
    let (env_bytes, payload) = super::unframe(bytes)?;
    let h = super::head(env_bytes)?;
    if h.version != VERSION || h.kind.as_deref() != Some(KIND_LOG) {
        return Err(DecodeError::UnknownVersion {
            format: h.format,
            version: h.version,
            kind: h.kind.unwrap_or_default(),
        });
    }
    let env: LogEnvelope =
        serde_json::from_slice(env_bytes).map_err(|e| DecodeError::BadJson(e.to_string()))?;
    if env.payload_len != payload.len() as u64 {
        return Err(DecodeError::Length {
            what: "log payload".into(),
            expected: env.payload_len,
            actual: payload.len() as u64,
        });
    }
    let actual = crc32c::crc32c(payload);
    if actual != env.crc32c {
        return Err(DecodeError::ChecksumMismatch {
            what: "log payload".into(),
            expected: env.crc32c,
            actual,
        });
    }
    if env.dim != dim {
        return Err(DecodeError::Invalid(format!(
            "log of dim {}, index of dim {dim}",
            env.dim
        )));
    }
    let records = read_records(payload, dim)
        .map_err(|e| DecodeError::Invalid(format!("log {}: {e}", env.first_lsn)))?;
    let lsns_ok = records.len() == env.records
        && records
            .iter()
            .enumerate()
            .all(|(i, r)| r.lsn() == env.first_lsn.wrapping_add(i as u64))
        && records.last().is_none_or(|r| r.lsn() == env.last_lsn);
    if !lsns_ok {
        return Err(DecodeError::Invalid(format!(
            "log {}: records are not lsns {}..={}",
            env.first_lsn, env.first_lsn, env.last_lsn
        )));
    }
    Ok((env, records))
}

/// A cursor over payload bytes that fails instead of panicking.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, n: usize) -> Result<String, String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "an id is not UTF-8".to_string())
    }

    /// The items of an add record (type 1, or 5 with documents).
    fn add_items(&mut self, lsn: u64, dim: usize, documents: bool) -> Result<Vec<LogItem>, String> {
        let count = self.u32()? as usize;
        // Each item takes at least 6 + 4·dim bytes: a count past the payload's end is
        // refused before anything is allocated for it.
        if count > (self.bytes.len() - self.at) / (6 + 4 * dim) {
            return Err(format!("add record {lsn} claims {count} items"));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let id_len = self.u16()? as usize;
            let id = self.string(id_len)?;
            let meta_len = self.u32()? as usize;
            let meta = self.take(meta_len)?;
            let metadata = if meta.is_empty() {
                Map::new()
            } else {
                serde_json::from_slice(meta).map_err(|e| format!("metadata: {e}"))?
            };
            let document = match documents {
                false => None,
                true => match self.u32()? {
                    NO_DOCUMENT => None,
                    len => Some(
                        String::from_utf8(self.take(len as usize)?.to_vec())
                            .map_err(|_| format!("add record {lsn}: a document is not UTF-8"))?,
                    ),
                },
            };
            let raw = self.take(4 * dim)?;
            let vector = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            items.push(LogItem {
                id,
                vector,
                metadata,
                document,
            });
        }
        Ok(items)
    }
}

fn read_records(payload: &[u8], dim: usize) -> Result<Vec<LogRecord>, String> {
    let mut c = Cursor {
        bytes: payload,
        at: 0,
    };
    let mut out = Vec::new();
    while c.at < payload.len() {
        match c.u8()? {
            kind @ (1 | 5) => {
                let lsn = c.u64()?;
                let items = c.add_items(lsn, dim, kind == 5)?;
                out.push(LogRecord::Add { lsn, items });
            }
            2 => {
                let lsn = c.u64()?;
                let id_len = c.u16()? as usize;
                out.push(LogRecord::Delete {
                    lsn,
                    ids: vec![c.string(id_len)?],
                });
            }
            3 => {
                let lsn = c.u64()?;
                let count = c.u32()? as usize;
                // Each id takes at least 2 bytes.
                if count > (payload.len() - c.at) / 2 {
                    return Err(format!("delete record {lsn} claims {count} ids"));
                }
                let mut ids = Vec::with_capacity(count);
                for _ in 0..count {
                    let id_len = c.u16()? as usize;
                    ids.push(c.string(id_len)?);
                }
                out.push(LogRecord::Delete { lsn, ids });
            }
            4 => {
                let lsn = c.u64()?;
                let len = c.u32()? as usize;
                let fields = serde_json::from_slice(c.take(len)?)
                    .map_err(|e| format!("fields record {lsn}: {e}"))?;
                out.push(LogRecord::Fields { lsn, fields });
            }
            other => return Err(format!("unknown record type {other} at byte {}", c.at - 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut batch = LogBatch::default();
        let meta: Map<String, Value> =
            serde_json::from_str(r#"{"k": 1.4000000000000001, "s": "x"}"#).unwrap();
        let empty = Map::new();
        let item = |id, vector, metadata, document| AddedItem {
            id,
            vector,
            metadata,
            document,
        };
        let items = [
            item("a", &[1.0f32, 2.0][..], &meta, None),
            item("b", &[3.0, 4.0][..], &empty, None),
        ];
        batch.push_add(7, &items);
        batch.push_delete(8, "a");
        let mut later = LogBatch::default();
        later.push_delete(9, "zz");
        later.push_delete_many(10, &["b".to_string(), "é".to_string()]);
        let with_documents = [
            item("c", &[5.0, 6.0][..], &empty, Some("chunk\n\"quoted\" é")),
            item("d", &[7.0, 8.0][..], &meta, None),
            item("e", &[9.0, 1.0][..], &empty, Some("")),
        ];
        later.push_add(11, &with_documents);
        batch.append(later);
        batch.encode(2).unwrap()
    }

    #[test]
    fn round_trip() {
        let (env, records) = decode(&sample(), 2).unwrap();
        assert_eq!((env.first_lsn, env.last_lsn, env.records), (7, 11, 5));
        assert_eq!(records.len(), 5);
        match &records[0] {
            LogRecord::Add { lsn: 7, items } => {
                assert_eq!(items[0].id, "a");
                assert_eq!(items[0].vector, [1.0, 2.0]);
                assert_eq!(items[0].metadata["k"].to_string(), "1.4000000000000001");
                assert!(items[1].metadata.is_empty());
                assert!(items.iter().all(|i| i.document.is_none()));
            }
            other => panic!("{other:?}"),
        }
        match &records[4] {
            LogRecord::Add { lsn: 11, items } => {
                let documents: Vec<Option<&str>> =
                    items.iter().map(|i| i.document.as_deref()).collect();
                assert_eq!(documents, [Some("chunk\n\"quoted\" é"), None, Some("")]);
                assert_eq!(items[1].vector, [7.0, 8.0]);
                assert_eq!(items[1].metadata["s"], "x");
            }
            other => panic!("{other:?}"),
        }
        let plain = &sample()[..];
        let types: Vec<u8> = {
            let (_, payload) = crate::codec::unframe(plain).unwrap();
            vec![payload[0]]
        };
        assert_eq!(
            types,
            [1],
            "a batch without documents is written as before them"
        );
        assert_eq!(
            records[2],
            LogRecord::Delete {
                lsn: 9,
                ids: vec!["zz".into()]
            }
        );
        assert_eq!(
            records[3],
            LogRecord::Delete {
                lsn: 10,
                ids: vec!["b".into(), "é".into()]
            }
        );
        assert!(
            decode(&sample(), 3).is_err(),
            "a log of another dim is refused"
        );
    }

    #[test]
    fn never_panics_on_damaged_logs() {
        let good = sample();
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], 2).is_err());
        }
        for i in 0..good.len() {
            for delta in [1u8, 0x80] {
                let mut b = good.clone();
                b[i] = b[i].wrapping_add(delta);
                let _ = decode(&b, 2);
            }
        }
        // a payload with a valid checksum but nonsense inside
        let mut s: u64 = 3;
        for n in 0..500 {
            let junk: Vec<u8> = (0..n % 97)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (s >> 56) as u8
                })
                .collect();
            let batch = LogBatch {
                records: 1,
                first_lsn: 1,
                last_lsn: 1,
                bytes: junk,
            };
            let _ = decode(&batch.encode(2).unwrap(), 2);
        }
    }
}
