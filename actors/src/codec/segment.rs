//! The arrays of one segment as payload sections: each section is a little-endian array
//! with its length and CRC32C in the segment's header, so that a reload reads arrays back
//! and rebuilds nothing.
//!
//! Sections, in payload order: `vectors` (f32, points × dim), `id_bytes` (the ids back to
//! back), `id_ends` (u64 end offset of each id), `metadata_bytes` (each point's metadata as
//! a JSON object, empty for `{}`), `metadata_ends` (u64), when any point has a document
//! `document_bytes` and `document_ends` (u64; `index::documents` says how), and for a
//! sealed segment the flat graph: `links0`, `upper_points`, `upper_start`, `upper` (u32)
//! and `upper_levels` (u8), for a quantized index `code_range` (f32: low end, step) and
//! `codes` (u8, points × dim; `index::codes`), then one section `field:<name>` (bytes) per
//! field index (`index::field_index` encodes them). A segment without documents is written exactly
//! as before documents existed.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::floats::Floats;
use super::{DecodeError, FORMAT_NAME, MAGIC, MAX_ENVELOPE_BYTES, VERSION};

pub const KIND_SEGMENT: &str = "segment";

/// The envelope of a segment object (`_vectors/<name>/<incarnation>/seg-<id>.lhv1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentEnvelope {
    pub format: String,
    pub version: u32,
    pub kind: String,
    /// The index and incarnation the segment belongs to.
    pub index: String,
    pub incarnation: String,
    pub segment: SegmentHeader,
}

/// What the envelope says about one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Each point's document: bytes and end offsets; none when no point has one.
    pub documents: Option<(&'a [u8], &'a [u64])>,
    pub graph: Option<GraphView<'a>>,
    /// int8 codes: their range (low end, step) and bytes (sealed segments only).
    pub codes: Option<(&'a [f32], &'a [u8])>,
    /// Field indexes, encoded, by field name (sealed segments only).
    pub fields: Vec<(&'a str, &'a [u8])>,
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
    pub vectors: Floats,
    pub id_bytes: Vec<u8>,
    pub id_ends: Vec<u64>,
    pub metadata_bytes: Vec<u8>,
    pub metadata_ends: Vec<u64>,
    pub documents: Option<(Vec<u8>, Vec<u64>)>,
    pub graph: Option<GraphArrays>,
    pub codes: Option<(Vec<f32>, Vec<u8>)>,
    /// Field indexes, encoded, by field name.
    pub fields: Vec<(String, Vec<u8>)>,
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
const DOCUMENTS: [&str; 2] = ["document_bytes", "document_ends"];
const CODES: [&str; 2] = ["code_range", "codes"];
/// Prefix of a field index's section name.
const FIELD: &str = "field:";
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
    let parts: Vec<(Cow<str>, Vec<u8>)> = sections_of(view)
        .into_iter()
        .map(|(name, values)| {
            let mut bytes = Vec::with_capacity(values.count() * values.width());
            values.write(0, values.count(), &mut bytes);
            (name, bytes)
        })
        .collect();
    let sections = parts
        .iter()
        .map(|(name, bytes)| Section {
            name: name.to_string(),
            len: bytes.len() as u64,
            crc32c: crc32c::crc32c(bytes),
        })
        .collect();
    let header = header_of(view, 0, sections);
    (header, parts.into_iter().map(|(_, b)| b).collect())
}

/// A sealed (not growing) segment's header for `view`, with no tombstones: the caller
/// fills those in.
pub(super) fn header_of(view: &SegmentView, id: u64, sections: Vec<Section>) -> SegmentHeader {
    SegmentHeader {
        id,
        points: view.id_ends.len(),
        dim: view.dim,
        growing: false,
        graph: view.graph.as_ref().map(|g| GraphHeader {
            m: g.m,
            entry: g.entry,
        }),
        deleted: Vec::new(),
        sections,
    }
}

/// Reads a segment's sections from `payload` (exactly its sections, back to back),
/// checking names, lengths and checksums.
pub fn decode(header: &SegmentHeader, payload: &[u8]) -> Result<SegmentArrays, DecodeError> {
    let mut reader = SectionsReader::new(header.clone())?;
    reader.feed(payload)?;
    reader.finish()
}

/// The typed array a section fills.
enum Target {
    /// Checked (length, checksum) but not kept: the vectors of a mapped cache file.
    Skip,
    F32(Vec<f32>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Bytes(Vec<u8>),
}

impl Target {
    fn width(&self) -> usize {
        match self {
            Target::Skip | Target::F32(_) | Target::U32(_) => 4,
            Target::U64(_) => 8,
            Target::Bytes(_) => 1,
        }
    }

    /// Appends whole little-endian values.
    fn extend(&mut self, bytes: &[u8]) {
        match self {
            Target::Skip => {}
            Target::F32(v) => v.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            Target::U32(v) => v.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            Target::U64(v) => v.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
            ),
            Target::Bytes(v) => v.extend_from_slice(bytes),
        }
    }
}

/// Reads a segment's sections as their bytes arrive, straight into the arrays (no copy
/// of the whole payload is ever held), checking each section's length and checksum.
pub struct SectionsReader {
    header: SegmentHeader,
    targets: Vec<Target>,
    /// Section being read, bytes of it still to come, its running checksum.
    section: usize,
    left: u64,
    crc: u32,
    /// Bytes of a value split between two chunks.
    carry: Vec<u8>,
}

/// Most capacity reserved for a section before its bytes arrive: a header that claims a
/// huge segment cannot make the reader allocate more than what is actually sent.
const MAX_RESERVE: u64 = 64 << 20;

/// Checks a segment header's sections: their names and order, and their lengths against
/// points, dim and graph width.
pub(super) fn check_layout(header: &SegmentHeader) -> Result<(), DecodeError> {
    let names: Vec<&str> = header.sections.iter().map(|s| s.name.as_str()).collect();
    let (documents, codes, _) = optional_sections(header);
    let mut expected: Vec<&str> = PLAIN.to_vec();
    if documents {
        expected.extend(DOCUMENTS);
    }
    if header.graph.is_some() {
        expected.extend(GRAPH);
    }
    if codes {
        expected.extend(CODES);
    }
    // Field indexes follow a graph's sections, each once.
    let fields = names.get(expected.len()..).unwrap_or_default();
    let fields_ok = fields.iter().all(|n| n.starts_with(FIELD))
        && (fields.is_empty() || header.graph.is_some())
        && fields
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            == fields.len();
    if names.get(..expected.len()) != Some(&expected[..]) || !fields_ok {
        return Err(DecodeError::Invalid(format!(
            "segment {} has sections {names:?}, expected {expected:?}",
            header.id
        )));
    }
    let n = header.points as u64;
    let invalid = |what: &str| {
        DecodeError::Invalid(format!(
            "segment {}: section {what} does not fit {n} points of dim {}",
            header.id, header.dim
        ))
    };
    let len = |i: usize| header.sections[i].len;
    let vectors = n
        .checked_mul(header.dim as u64)
        .and_then(|x| x.checked_mul(4));
    if vectors != Some(len(0)) {
        return Err(invalid("vectors"));
    }
    if n.checked_mul(8) != Some(len(2)) || n.checked_mul(8) != Some(len(4)) {
        return Err(invalid("ends"));
    }
    if documents && n.checked_mul(8) != Some(len(6)) {
        return Err(invalid("document_ends"));
    }
    // Where the graph's sections start.
    let g0 = PLAIN.len() + if documents { DOCUMENTS.len() } else { 0 };
    if let Some(g) = header.graph {
        if g.m == 0 || g.m > 1024 {
            return Err(invalid("links0"));
        }
        let row = (1 + 2 * g.m as u64) * 4;
        if n.checked_mul(row) != Some(len(g0)) {
            return Err(invalid("links0"));
        }
        if len(g0 + 1) % 4 != 0
            || len(g0 + 2) != len(g0 + 1)
            || len(g0 + 4).checked_mul(4) != Some(len(g0 + 1))
            || len(g0 + 3) % 4 != 0
        {
            return Err(invalid("upper layers"));
        }
    }
    if codes {
        let at = g0 + GRAPH.len();
        let values = n.checked_mul(header.dim as u64);
        if len(at) != 8 || values != Some(len(at + 1)) {
            return Err(invalid("codes"));
        }
    }
    Ok(())
}

/// Whether a segment has documents' and codes' sections, and how many sections come
/// before its field indexes.
fn optional_sections(header: &SegmentHeader) -> (bool, bool, usize) {
    let named = |at: usize, name: &str| header.sections.get(at).is_some_and(|s| s.name == name);
    let documents = named(PLAIN.len(), DOCUMENTS[0]);
    let graph_end = PLAIN.len()
        + if documents { DOCUMENTS.len() } else { 0 }
        + header.graph.map_or(0, |_| GRAPH.len());
    let codes = header.graph.is_some() && named(graph_end, CODES[0]);
    (
        documents,
        codes,
        graph_end + if codes { CODES.len() } else { 0 },
    )
}

impl SectionsReader {
    /// Checks the header's consistency (section names, and lengths against points, dim
    /// and graph width) before anything is read.
    pub fn new(header: SegmentHeader) -> Result<SectionsReader, DecodeError> {
        SectionsReader::with_vectors(header, true)
    }

    /// A reader that checks the vectors but does not keep them (`finish` returns them
    /// empty): they are mapped from a cache file instead.
    pub fn without_vectors(header: SegmentHeader) -> Result<SectionsReader, DecodeError> {
        SectionsReader::with_vectors(header, false)
    }

    fn with_vectors(header: SegmentHeader, keep: bool) -> Result<SectionsReader, DecodeError> {
        check_layout(&header)?;
        let targets = header
            .sections
            .iter()
            .map(|s| {
                let cap = s.len.min(MAX_RESERVE) as usize;
                match s.name.as_str() {
                    "vectors" if !keep => Target::Skip,
                    "vectors" | "code_range" => Target::F32(Vec::with_capacity(cap / 4)),
                    "id_ends" | "metadata_ends" | "document_ends" => {
                        Target::U64(Vec::with_capacity(cap / 8))
                    }
                    "links0" | "upper_points" | "upper_start" | "upper" => {
                        Target::U32(Vec::with_capacity(cap / 4))
                    }
                    _ => Target::Bytes(Vec::with_capacity(cap)),
                }
            })
            .collect();
        let left = header.sections.first().map_or(0, |s| s.len);
        Ok(SectionsReader {
            header,
            targets,
            section: 0,
            left,
            crc: 0,
            carry: Vec::new(),
        })
    }

    /// Takes the next bytes of the payload.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), DecodeError> {
        while !chunk.is_empty() {
            // Sections of zero length are done before they start.
            self.skip_finished_sections()?;
            if self.section >= self.targets.len() {
                return Err(DecodeError::Length {
                    what: format!("segment {}", self.header.id),
                    expected: self.header.payload_len(),
                    actual: self.header.payload_len() + chunk.len() as u64,
                });
            }
            let take = (chunk.len() as u64).min(self.left) as usize;
            let (now, rest) = chunk.split_at(take);
            chunk = rest;
            self.crc = crc32c::crc32c_append(self.crc, now);
            self.left -= take as u64;
            let target = &mut self.targets[self.section];
            let width = target.width();
            if self.carry.is_empty() {
                let whole = now.len() / width * width;
                target.extend(&now[..whole]);
                self.carry.extend_from_slice(&now[whole..]);
            } else {
                self.carry.extend_from_slice(now);
                let whole = self.carry.len() / width * width;
                target.extend(&self.carry[..whole]);
                self.carry.drain(..whole);
            }
            if self.left == 0 {
                self.close_section()?;
            }
        }
        Ok(())
    }

    fn close_section(&mut self) -> Result<(), DecodeError> {
        let s = &self.header.sections[self.section];
        if self.crc != s.crc32c {
            return Err(DecodeError::ChecksumMismatch {
                what: format!("segment {} section {}", self.header.id, s.name),
                expected: s.crc32c,
                actual: self.crc,
            });
        }
        // Lengths are whole values (checked in `new`), so nothing can be left over.
        self.carry.clear();
        self.section += 1;
        self.crc = 0;
        self.left = self.header.sections.get(self.section).map_or(0, |s| s.len);
        Ok(())
    }

    fn skip_finished_sections(&mut self) -> Result<(), DecodeError> {
        while self.section < self.targets.len() && self.left == 0 {
            self.close_section()?;
        }
        Ok(())
    }

    /// The arrays, once every section has arrived whole.
    pub fn finish(mut self) -> Result<SegmentArrays, DecodeError> {
        self.skip_finished_sections()?;
        if self.section < self.targets.len() {
            let got: u64 = self.header.sections[..self.section]
                .iter()
                .map(|s| s.len)
                .sum::<u64>()
                + (self.header.sections[self.section].len - self.left);
            return Err(DecodeError::Length {
                what: format!("segment {}", self.header.id),
                expected: self.header.payload_len(),
                actual: got,
            });
        }
        let (documents, codes, fixed) = optional_sections(&self.header);
        let field_names: Vec<String> = self.header.sections
            [fixed.min(self.header.sections.len())..]
            .iter()
            .map(|s| s.name.strip_prefix(FIELD).unwrap_or_default().to_string())
            .collect();
        let mut t = self.targets.into_iter();
        let mut next = || t.next();
        let f32s = |x: Option<Target>| match x {
            Some(Target::F32(v)) => v,
            _ => Vec::new(),
        };
        let u32s = |x: Option<Target>| match x {
            Some(Target::U32(v)) => v,
            _ => Vec::new(),
        };
        let u64s = |x: Option<Target>| match x {
            Some(Target::U64(v)) => v,
            _ => Vec::new(),
        };
        let bytes = |x: Option<Target>| match x {
            Some(Target::Bytes(v)) => v,
            _ => Vec::new(),
        };
        let vectors = Floats::Heap(f32s(next()));
        let id_bytes = bytes(next());
        let id_ends = u64s(next());
        let metadata_bytes = bytes(next());
        let metadata_ends = u64s(next());
        let documents = documents.then(|| (bytes(next()), u64s(next())));
        let graph = self.header.graph.map(|g| GraphArrays {
            m: g.m,
            entry: g.entry,
            links0: u32s(next()),
            upper_points: u32s(next()),
            upper_start: u32s(next()),
            upper: u32s(next()),
            upper_levels: bytes(next()),
        });
        let codes = codes.then(|| (f32s(next()), bytes(next())));
        let fields = field_names
            .into_iter()
            .map(|name| (name, bytes(next())))
            .collect();
        Ok(SegmentArrays {
            vectors,
            id_bytes,
            id_ends,
            metadata_bytes,
            metadata_ends,
            documents,
            graph,
            codes,
            fields,
        })
    }
}

/// Whatever holds a segment's arrays, so that a writer can stream them without a copy.
pub trait SegmentSource: Send + Sync {
    fn view(&self) -> SegmentView<'_>;
}

/// One section's values, borrowed.
pub(super) enum Values<'a> {
    F32(&'a [f32]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    Bytes(&'a [u8]),
}

impl Values<'_> {
    pub(super) fn width(&self) -> usize {
        match self {
            Values::F32(_) | Values::U32(_) => 4,
            Values::U64(_) => 8,
            Values::Bytes(_) => 1,
        }
    }

    pub(super) fn count(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::U32(v) => v.len(),
            Values::U64(v) => v.len(),
            Values::Bytes(v) => v.len(),
        }
    }

    /// Hands the values to `f` as little-endian bytes, `CHUNK_BYTES` or so at a time
    /// (`buf` holds one chunk).
    pub(super) fn each_chunk(
        &self,
        buf: &mut Vec<u8>,
        mut f: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let per_chunk = (CHUNK_BYTES / self.width()).max(1);
        let mut at = 0;
        while at < self.count() {
            let to = (at + per_chunk).min(self.count());
            buf.clear();
            self.write(at, to, buf);
            f(buf)?;
            at = to;
        }
        Ok(())
    }

    /// Appends values `from..to` as little-endian bytes.
    pub(super) fn write(&self, from: usize, to: usize, out: &mut Vec<u8>) {
        match self {
            Values::F32(v) => v[from..to]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Values::U32(v) => v[from..to]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Values::U64(v) => v[from..to]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Values::Bytes(v) => out.extend_from_slice(&v[from..to]),
        }
    }
}

/// The sections of a view, in payload order.
pub(super) fn sections_of<'a>(view: &SegmentView<'a>) -> Vec<(Cow<'static, str>, Values<'a>)> {
    let mut out = vec![
        ("vectors".into(), Values::F32(view.vectors)),
        ("id_bytes".into(), Values::Bytes(view.id_bytes)),
        ("id_ends".into(), Values::U64(view.id_ends)),
        ("metadata_bytes".into(), Values::Bytes(view.metadata_bytes)),
        ("metadata_ends".into(), Values::U64(view.metadata_ends)),
    ];
    if let Some((bytes, ends)) = view.documents {
        out.push((DOCUMENTS[0].into(), Values::Bytes(bytes)));
        out.push((DOCUMENTS[1].into(), Values::U64(ends)));
    }
    if let Some(g) = &view.graph {
        out.push(("links0".into(), Values::U32(g.links0)));
        out.push(("upper_points".into(), Values::U32(g.upper_points)));
        out.push(("upper_start".into(), Values::U32(g.upper_start)));
        out.push(("upper".into(), Values::U32(g.upper)));
        out.push(("upper_levels".into(), Values::Bytes(g.upper_levels)));
        if let Some((range, codes)) = view.codes {
            out.push((CODES[0].into(), Values::F32(range)));
            out.push((CODES[1].into(), Values::Bytes(codes)));
        }
        for (name, bytes) in &view.fields {
            out.push((format!("{FIELD}{name}").into(), Values::Bytes(bytes)));
        }
    }
    out
}

/// Size of the chunks a segment object is streamed in.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Streams a segment object from its arrays, in chunks of about 1 MiB: at most one chunk
/// is ever held besides the arrays themselves.
pub struct SegmentWriter {
    source: Arc<dyn SegmentSource>,
    head: Option<Bytes>,
    len: u64,
    /// Section and value to write next.
    section: usize,
    value: usize,
}

impl SegmentWriter {
    /// Computes every section's checksum (one pass over the arrays, in chunks) and frames
    /// the envelope. Slow for big segments: run it off the async threads.
    pub fn new(
        source: Arc<dyn SegmentSource>,
        index: &str,
        incarnation: &str,
        id: u64,
    ) -> Result<SegmentWriter, String> {
        let view = source.view();
        let mut sections = Vec::new();
        let mut buf = Vec::with_capacity(CHUNK_BYTES);
        for (name, values) in sections_of(&view) {
            let mut crc = 0u32;
            values.each_chunk(&mut buf, |bytes| {
                crc = crc32c::crc32c_append(crc, bytes);
                Ok(())
            })?;
            sections.push(Section {
                name: name.to_string(),
                len: (values.count() * values.width()) as u64,
                crc32c: crc,
            });
        }
        let header = header_of(&view, id, sections);
        let payload = header.payload_len();
        let envelope = SegmentEnvelope {
            format: FORMAT_NAME.into(),
            version: VERSION,
            kind: KIND_SEGMENT.into(),
            index: index.into(),
            incarnation: incarnation.into(),
            segment: header,
        };
        let head = super::encode(&envelope, &[])?;
        Ok(SegmentWriter {
            len: head.len() as u64 + payload,
            head: Some(head.into()),
            source,
            section: 0,
            value: 0,
        })
    }

    /// The object's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Iterator for SegmentWriter {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        let view = self.source.view();
        let sections = sections_of(&view);
        let mut out = Vec::with_capacity(CHUNK_BYTES);
        while out.len() < CHUNK_BYTES {
            let (_, values) = sections.get(self.section)?;
            if self.value >= values.count() {
                self.section += 1;
                self.value = 0;
                if self.section >= sections.len() {
                    break;
                }
                continue;
            }
            let room = (CHUNK_BYTES - out.len()) / values.width();
            let to = (self.value + room.max(1)).min(values.count());
            values.write(self.value, to, &mut out);
            self.value = to;
        }
        (!out.is_empty()).then(|| out.into())
    }
}

/// The head of a segment object (magic, envelope length, envelope), read as its bytes
/// arrive.
#[derive(Default)]
pub struct HeadReader {
    head: Vec<u8>,
}

impl HeadReader {
    /// Takes bytes until the envelope is whole; then returns it with the rest of `chunk`
    /// (the first bytes of the payload).
    pub fn feed<'a>(
        &mut self,
        mut chunk: &'a [u8],
    ) -> Result<Option<(SegmentEnvelope, &'a [u8])>, DecodeError> {
        loop {
            // The head: magic and length (8 bytes), then the envelope.
            let want = if self.head.len() < 8 {
                8
            } else {
                let len =
                    u32::from_be_bytes([self.head[4], self.head[5], self.head[6], self.head[7]])
                        as usize;
                if len > MAX_ENVELOPE_BYTES {
                    return Err(DecodeError::EnvelopePastEnd { len, total: 8 });
                }
                if len == 0 {
                    // Not JSON; and `want` would stay 8, looping forever (found by fuzzing).
                    return Err(DecodeError::BadJson("the envelope is empty".into()));
                }
                8 + len
            };
            let take = want.saturating_sub(self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.head.len() >= 4 && &self.head[..4] != MAGIC {
                return Err(DecodeError::BadMagic);
            }
            if self.head.len() < want {
                return Ok(None); // more bytes needed
            }
            if want == 8 {
                continue; // the length is known now
            }
            let env: SegmentEnvelope = serde_json::from_slice(&self.head[8..])
                .map_err(|e| DecodeError::BadJson(e.to_string()))?;
            if env.format != FORMAT_NAME || env.version != VERSION || env.kind != KIND_SEGMENT {
                return Err(DecodeError::UnknownVersion {
                    format: env.format,
                    version: env.version,
                    kind: env.kind,
                });
            }
            return Ok(Some((env, chunk)));
        }
    }

    /// Bytes of the head read so far.
    pub fn len(&self) -> usize {
        self.head.len()
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_empty()
    }
}

/// Reads a segment object as its bytes arrive: the envelope first, then the sections
/// straight into the arrays.
#[derive(Default)]
pub struct SegmentObjectReader {
    head: HeadReader,
    envelope: Option<SegmentEnvelope>,
    sections: Option<SectionsReader>,
}

impl SegmentObjectReader {
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), DecodeError> {
        if self.sections.is_none() {
            let Some((env, rest)) = self.head.feed(chunk)? else {
                return Ok(());
            };
            self.sections = Some(SectionsReader::new(env.segment.clone())?);
            self.envelope = Some(env);
            chunk = rest;
        }
        match &mut self.sections {
            Some(reader) => reader.feed(chunk),
            None => Ok(()),
        }
    }

    pub fn finish(self) -> Result<(SegmentEnvelope, SegmentArrays), DecodeError> {
        match (self.envelope, self.sections) {
            (Some(env), Some(reader)) => Ok((env, reader.finish()?)),
            _ => Err(DecodeError::Truncated(format!(
                "{} bytes, the envelope is not complete",
                self.head.len()
            ))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sample(graph: bool, documents: bool) -> (SegmentHeader, Vec<u8>) {
        let vectors = [1.0f32, 2.0, 3.0, 4.0];
        let links0 = [1u32, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        let view = SegmentView {
            dim: 2,
            vectors: &vectors,
            id_bytes: b"ab",
            id_ends: &[1, 2],
            metadata_bytes: b"{\"k\":1}",
            metadata_ends: &[0, 7],
            documents: documents.then_some((b"\x01doc".as_slice(), [0u64, 4].as_slice())),
            graph: graph.then_some(GraphView {
                m: 2,
                entry: 0,
                links0: &links0,
                upper_points: &[],
                upper_levels: &[],
                upper_start: &[],
                upper: &[],
            }),
            codes: graph.then_some((&[0.5f32, 0.01][..], &[1u8, 2, 3, 4][..])),
            fields: Vec::new(),
        };
        let (header, parts) = encode(&view);
        (header, parts.concat())
    }

    #[test]
    fn round_trip() {
        for (graph, documents) in [(false, false), (true, false), (false, true), (true, true)] {
            let (header, payload) = sample(graph, documents);
            let names: Vec<&str> = header.sections.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names.contains(&"document_bytes"), documents, "{names:?}");
            let arrays = decode(&header, &payload).unwrap();
            assert_eq!(arrays.vectors.as_slice(), [1.0, 2.0, 3.0, 4.0]);
            assert_eq!(arrays.id_ends, [1, 2]);
            assert_eq!(arrays.metadata_bytes, b"{\"k\":1}");
            assert_eq!(arrays.graph.is_some(), graph);
            let want = documents.then(|| (b"\x01doc".to_vec(), vec![0u64, 4]));
            assert_eq!(arrays.documents, want);
            let codes = graph.then(|| (vec![0.5f32, 0.01], vec![1u8, 2, 3, 4]));
            assert_eq!(arrays.codes, codes);
        }
    }

    /// A small sealed segment with documents and a field index (also `cache_file`'s).
    pub(crate) struct Owned {
        vectors: Vec<f32>,
        links0: Vec<u32>,
    }

    pub(crate) fn owned() -> Owned {
        Owned {
            vectors: vec![1.0, 2.0, 3.0, 4.0],
            links0: vec![1, 1, 0, 0, 0, 1, 0, 0, 0, 0],
        }
    }

    impl SegmentSource for Owned {
        fn view(&self) -> SegmentView<'_> {
            SegmentView {
                dim: 2,
                vectors: &self.vectors,
                id_bytes: b"ab",
                id_ends: &[1, 2],
                metadata_bytes: b"{\"k\":1}",
                metadata_ends: &[0, 7],
                documents: Some((b"\x01d", &[2, 2])),
                graph: Some(GraphView {
                    m: 2,
                    entry: 0,
                    links0: &self.links0,
                    upper_points: &[],
                    upper_levels: &[],
                    upper_start: &[],
                    upper: &[],
                }),
                codes: None,
                fields: vec![("lang", b"xyz")],
            }
        }
    }

    #[test]
    fn streamed_objects_read_back_whatever_the_chunking() {
        let source = Arc::new(owned());
        let writer = SegmentWriter::new(source, "idx", "00000000000000aa", 5).unwrap();
        let len = writer.len();
        let bytes: Vec<u8> = writer.flat_map(|b| b.to_vec()).collect();
        assert_eq!(bytes.len() as u64, len);
        for step in [1, 2, 3, 7, 64, bytes.len()] {
            let mut reader = SegmentObjectReader::default();
            for chunk in bytes.chunks(step) {
                reader.feed(chunk).unwrap();
            }
            let (env, arrays) = reader.finish().unwrap();
            assert_eq!((env.index.as_str(), env.segment.id), ("idx", 5));
            assert_eq!(arrays.vectors.as_slice(), [1.0, 2.0, 3.0, 4.0]);
            assert_eq!(arrays.graph.unwrap().links0, [1, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
            assert_eq!(arrays.documents, Some((b"\x01d".to_vec(), vec![2, 2])));
            assert_eq!(arrays.fields, [("lang".to_string(), b"xyz".to_vec())]);
        }
        for cut in 0..bytes.len() {
            let mut reader = SegmentObjectReader::default();
            let fed = reader.feed(&bytes[..cut]);
            assert!(fed.is_err() || reader.finish().is_err(), "cut {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            let mut reader = SegmentObjectReader::default();
            let _ = reader.feed(&b).and_then(|_| reader.finish().map(|_| ()));
        }
    }

    #[test]
    fn an_empty_envelope_is_refused_not_looped_on() {
        let mut reader = SegmentObjectReader::default();
        let bytes = [b"LHV1".as_slice(), &[0, 0, 0, 0, 0, 0, 0, 8]].concat();
        assert!(matches!(reader.feed(&bytes), Err(DecodeError::BadJson(_))));
    }

    #[test]
    fn never_panics_on_damaged_payloads() {
        let (header, payload) = sample(true, true);
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
        let mut h = header.clone();
        h.graph = Some(GraphHeader { m: 1000, entry: 0 });
        assert!(decode(&h, &payload).is_err());
        // documents' sections anywhere but right after the metadata
        let mut h = header;
        let documents: Vec<Section> = h.sections.drain(5..7).collect();
        h.sections.extend(documents);
        assert!(decode(&h, &payload).is_err());
    }
}
