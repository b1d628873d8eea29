//! Cache files: a sealed segment's arrays on local disk, laid out so that its vectors can be
//! memory-mapped (the `on_disk` indexes). storaged's segment object stays the truth; a
//! cache file is a copy that a restart maps instead of reading storaged, and that is
//! written again from the object when it is missing or fails its checks.
//!
//! ```text
//! [section 0][pad][section 1][pad]...[pad][footer: JSON][u64 LE footer length]["VDCACHE1"]
//! ```
//!
//! The sections are those of the segment object (`segment`), in the same order and with
//! the same checksums, each starting at a multiple of 64 bytes, so the f32 vectors are
//! aligned in the map. The footer holds the segment's header (sections, lengths, CRC32C).
//! Opening a cache file checks its length and every section's checksum, vectors included.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use super::floats::{Floats, MappedFloats};
use super::segment::{
    check_layout, header_of, sections_of, HeadReader, SectionsReader, SegmentArrays,
    SegmentEnvelope, SegmentHeader, SegmentView, CHUNK_BYTES,
};

const MAGIC: &[u8; 8] = b"VDCACHE1";
const ALIGN: u64 = 64;
const FORMAT: &str = "vectord-cache";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Footer {
    format: String,
    version: u32,
    segment: SegmentHeader,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<CacheSource>,
}

/// The stored segment object a cache file was written from. A segment number alone does
/// not name one object: an index deleted and created again numbers from 1 anew, and a read
/// replica's own seals take numbers its primary's segments will have too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSource {
    /// The object's storage key (the index's incarnation is part of it).
    pub key: String,
    /// The object's length in bytes.
    pub bytes: u64,
}

/// A cache file being written, section by section.
struct FileWriter {
    out: BufWriter<File>,
    at: u64,
}

impl FileWriter {
    fn create(path: &Path) -> Result<FileWriter, String> {
        let file = File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(FileWriter {
            out: BufWriter::with_capacity(CHUNK_BYTES, file),
            at: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.out
            .write_all(bytes)
            .map_err(|e| format!("writing: {e}"))?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Pads to the next multiple of `ALIGN`, where a section starts.
    fn align(&mut self) -> Result<(), String> {
        let pad = (ALIGN - self.at % ALIGN) % ALIGN;
        self.write(&[0u8; ALIGN as usize][..pad as usize])
    }

    /// Writes the footer; returns the file's length.
    fn finish(
        mut self,
        segment: SegmentHeader,
        source: Option<CacheSource>,
    ) -> Result<u64, String> {
        self.align()?;
        let footer = Footer {
            format: FORMAT.into(),
            version: VERSION,
            segment,
            source,
        };
        let json = serde_json::to_vec(&footer).map_err(|e| format!("encoding the footer: {e}"))?;
        self.write(&json)?;
        self.write(&(json.len() as u64).to_le_bytes())?;
        self.write(MAGIC)?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| format!("writing: {}", e.error()))?;
        file.sync_data().map_err(|e| format!("syncing: {e}"))?;
        Ok(self.at)
    }
}

/// Writes segment `id`'s arrays to a cache file at `path` (a file without a source: the
/// segment was built here); returns its length.
pub fn write_view(path: &Path, id: u64, view: &SegmentView) -> Result<u64, String> {
    let mut out = FileWriter::create(path)?;
    let mut sections = Vec::new();
    let mut buf = Vec::with_capacity(CHUNK_BYTES);
    for (name, values) in sections_of(view) {
        out.align()?;
        let mut crc = 0u32;
        values.each_chunk(&mut buf, |bytes| {
            crc = crc32c::crc32c_append(crc, bytes);
            out.write(bytes)
        })?;
        sections.push(super::segment::Section {
            name: name.to_string(),
            len: (values.count() * values.width()) as u64,
            crc32c: crc,
        });
    }
    out.finish(header_of(view, id, sections), None)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a segment object, as its bytes arrive from storaged, into a cache file: the
/// sections are checked (lengths, checksums) on the way.
pub struct ObjectToCache {
    head: HeadReader,
    envelope: Option<SegmentEnvelope>,
    out: FileWriter,
    /// Section being copied, bytes of it still to come, its running checksum.
    section: usize,
    left: u64,
    crc: u32,
}

impl ObjectToCache {
    pub fn create(path: &Path) -> Result<ObjectToCache, String> {
        Ok(ObjectToCache {
            head: HeadReader::default(),
            envelope: None,
            out: FileWriter::create(path)?,
            section: 0,
            left: 0,
            crc: 0,
        })
    }

    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), String> {
        if self.envelope.is_none() {
            let Some((env, rest)) = self.head.feed(chunk).map_err(|e| e.to_string())? else {
                return Ok(());
            };
            // The layout is checked as a reload would (names, lengths against points).
            check_layout(&env.segment).map_err(|e| e.to_string())?;
            self.left = env.segment.sections.first().map_or(0, |s| s.len);
            self.envelope = Some(env);
            chunk = rest;
        }
        // Taken out while the sections are copied (`close_finished` reads the header).
        let Some(env) = self.envelope.take() else {
            return Ok(());
        };
        let copied = self.copy_sections(&env.segment, chunk);
        self.envelope = Some(env);
        copied
    }

    /// Copies the next payload bytes into their sections, each aligned.
    fn copy_sections(&mut self, header: &SegmentHeader, mut chunk: &[u8]) -> Result<(), String> {
        while !chunk.is_empty() {
            self.close_finished(header)?;
            if self.section >= header.sections.len() {
                return Err(format!(
                    "segment {} is longer than its sections say",
                    header.id
                ));
            }
            let take = (chunk.len() as u64).min(self.left) as usize;
            let (now, rest) = chunk.split_at(take);
            self.out.write(now)?;
            self.crc = crc32c::crc32c_append(self.crc, now);
            self.left -= take as u64;
            chunk = rest;
        }
        Ok(())
    }

    /// Closes every section whose bytes have all arrived, checking its checksum.
    fn close_finished(&mut self, header: &SegmentHeader) -> Result<(), String> {
        while self.left == 0 && self.section < header.sections.len() {
            let s = &header.sections[self.section];
            if self.crc != s.crc32c {
                return Err(format!(
                    "segment {} section {}: checksum {:08x}, the header says {:08x}",
                    header.id, s.name, self.crc, s.crc32c
                ));
            }
            self.section += 1;
            self.crc = 0;
            self.left = header.sections.get(self.section).map_or(0, |s| s.len);
            self.out.align()?;
        }
        Ok(())
    }

    /// The object's envelope, once every section has arrived whole and is written; the
    /// file's footer names `source`, the object it was streamed from.
    pub fn finish(mut self, source: CacheSource) -> Result<SegmentEnvelope, String> {
        let Some(env) = self.envelope.take() else {
            return Err(format!(
                "{} bytes, the envelope is not complete",
                self.head.len()
            ));
        };
        self.close_finished(&env.segment)?;
        if self.section < env.segment.sections.len() {
            return Err(format!("segment {} is truncated", env.segment.id));
        }
        self.out.finish(env.segment.clone(), Some(source))?;
        Ok(env)
    }
}

/// A cache file, opened: the segment's header and arrays, its vectors mapped.
pub struct Opened {
    pub header: SegmentHeader,
    pub arrays: SegmentArrays,
    /// The file's length.
    pub bytes: u64,
    /// The stored object it was written from; none when it was written from a seal.
    pub source: Option<CacheSource>,
}

/// Opens a cache file: checks its length and every section's checksum, maps its vectors
/// and reads the other arrays onto the heap. Any failure means the file must be written
/// again from storaged.
pub fn open(path: &Path) -> Result<Opened, String> {
    let file = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    // SAFETY: a map is sound as long as nobody changes the file while it is mapped. vectord
    // writes each cache file once, under a temporary name, then renames it into place,
    // and never opens one for writing again; removing a mapped file (an index deleted, a
    // segment merged away) keeps its pages until the map is dropped. The cache directory
    // belongs to vectord alone (docs/operations.md says not to edit it).
    let map =
        unsafe { Mmap::map(&file) }.map_err(|e| format!("mapping {}: {e}", path.display()))?;
    let map = Arc::new(map);
    let (footer, offsets) = read_footer(&map).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = footer.segment;
    let mut reader = SectionsReader::without_vectors(header.clone())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for &(start, len) in &offsets {
        // In range: `read_footer` checked every section against the file's length.
        reader
            .feed(&map[start..start + len])
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut arrays = reader
        .finish()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (start, len) = offsets.first().copied().unwrap_or_default();
    let vectors = MappedFloats::new(map.clone(), start, len / 4)
        .ok_or_else(|| format!("{}: the vectors are not aligned", path.display()))?;
    arrays.vectors = Floats::Mapped(vectors);
    // The vectors were read in order for their checksum; searches read them at random.
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Random);
    Ok(Opened {
        header,
        arrays,
        bytes: map.len() as u64,
        source: footer.source,
    })
}

/// The footer, and where each section is in the file; checks the file's length.
fn read_footer(map: &[u8]) -> Result<(Footer, Vec<(usize, usize)>), String> {
    let total = map.len();
    if total < 16 || &map[total - 8..] != MAGIC {
        return Err("not a vectord cache file".into());
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&map[total - 16..total - 8]);
    let footer_len = u64::from_le_bytes(len_bytes);
    let footer_start = (total as u64 - 16)
        .checked_sub(footer_len)
        .ok_or("the footer runs past the start of the file")? as usize;
    let footer: Footer = serde_json::from_slice(&map[footer_start..total - 16])
        .map_err(|e| format!("the footer is not valid JSON: {e}"))?;
    if footer.format != FORMAT || footer.version != VERSION {
        return Err(format!(
            "format {:?} version {}, this build reads {FORMAT:?} version {VERSION}",
            footer.format, footer.version
        ));
    }
    let mut at = 0u64;
    let mut offsets = Vec::with_capacity(footer.segment.sections.len());
    for s in &footer.segment.sections {
        at = at.div_ceil(ALIGN).saturating_mul(ALIGN);
        offsets.push((at as usize, s.len as usize));
        at = at.saturating_add(s.len);
    }
    let expected = at.div_ceil(ALIGN).saturating_mul(ALIGN);
    if expected != footer_start as u64 {
        return Err(format!(
            "the sections end at byte {expected}, the footer starts at {footer_start}"
        ));
    }
    Ok((footer, offsets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::segment::{SegmentObjectReader, SegmentSource, SegmentWriter};

    use crate::codec::segment::tests::owned as source;

    #[test]
    fn a_view_written_and_opened_gives_its_arrays_back_with_mapped_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.vdc");
        let src = source();
        let len = write_view(&path, 7, &src.view()).unwrap();
        let opened = open(&path).unwrap();
        assert_eq!(opened.bytes, len);
        assert_eq!(opened.header.id, 7);
        assert!(matches!(opened.arrays.vectors, Floats::Mapped(_)));
        let view = src.view();
        assert_eq!(opened.arrays.vectors.as_slice(), view.vectors);
        assert_eq!(opened.arrays.id_bytes, view.id_bytes);
        assert_eq!(
            opened.arrays.graph.unwrap().links0,
            view.graph.unwrap().links0
        );
        assert_eq!(opened.arrays.fields.len(), 1);
        assert!(opened.arrays.documents.is_some());
    }

    #[test]
    fn an_object_streamed_into_a_cache_file_equals_the_view_written_directly() {
        let dir = tempfile::tempdir().unwrap();
        let src = Arc::new(source());
        let writer = SegmentWriter::new(src.clone(), "idx", "00000000000000aa", 7).unwrap();
        let object: Vec<u8> = writer.flat_map(|b| b.to_vec()).collect();
        let path = dir.path().join("streamed.vdc");
        let mut to_cache = ObjectToCache::create(&path).unwrap();
        for chunk in object.chunks(5) {
            to_cache.feed(chunk).unwrap();
        }
        let source = CacheSource {
            key: "_vectors/idx/00000000000000aa/seg-7".into(),
            bytes: object.len() as u64,
        };
        let env = to_cache.finish(source.clone()).unwrap();
        assert_eq!(env.segment.id, 7);
        let direct = dir.path().join("direct.vdc");
        write_view(&direct, 7, &src.view()).unwrap();
        // The same sections at the same places; only the footer's source differs.
        let (streamed, written) = (
            std::fs::read(&path).unwrap(),
            std::fs::read(&direct).unwrap(),
        );
        let (s_footer, s_offsets) = read_footer(&streamed).unwrap();
        let (d_footer, d_offsets) = read_footer(&written).unwrap();
        assert_eq!(s_offsets, d_offsets);
        assert_eq!(s_footer.segment, d_footer.segment);
        let sections_end = s_offsets.last().map_or(0, |&(at, len)| at + len);
        assert_eq!(streamed[..sections_end], written[..sections_end]);
        assert_eq!(open(&path).unwrap().source, Some(source));
        assert_eq!(open(&direct).unwrap().source, None);
        // And the object itself still decodes to the same arrays.
        let mut reader = SegmentObjectReader::default();
        reader.feed(&object).unwrap();
        let (_, arrays) = reader.finish().unwrap();
        assert_eq!(
            arrays.vectors.as_slice(),
            open(&path).unwrap().arrays.vectors.as_slice()
        );
    }

    #[test]
    fn a_damaged_or_cut_cache_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.vdc");
        write_view(&path, 7, &source().view()).unwrap();
        let good = std::fs::read(&path).unwrap();
        // A flipped bit in the vectors (mapped, yet checked).
        let mut bad = good.clone();
        bad[5] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(open(&path).err().unwrap().contains("checksum"));
        // Every cut is refused, never a panic.
        for cut in 0..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(open(&path).is_err(), "cut at {cut}");
        }
        // A damaged object is refused on its way into the cache.
        let writer = SegmentWriter::new(Arc::new(source()), "idx", "00000000000000aa", 7).unwrap();
        let mut object: Vec<u8> = writer.flat_map(|b| b.to_vec()).collect();
        let last = object.len() - 1;
        object[last] ^= 1;
        let mut to_cache = ObjectToCache::create(&dir.path().join("x.vdc")).unwrap();
        let fed = to_cache.feed(&object);
        let source = CacheSource {
            key: "k".into(),
            bytes: 0,
        };
        assert!(fed.is_err() || to_cache.finish(source).is_err());
    }
}
