//! An array of f32 values held on the heap, or in a memory-mapped file (the vectors of an
//! `on_disk` index's sealed segments, mapped from their cache files: `cache_file`).
//!
//! A mapped array costs no anonymous memory: its pages are the kernel's page cache,
//! read from the file on first touch and dropped under memory pressure.

use std::sync::Arc;

use memmap2::Mmap;

pub enum Floats {
    Heap(Vec<f32>),
    Mapped(MappedFloats),
}

/// `len` f32 values at byte `start` of a mapped file.
#[derive(Clone)]
pub struct MappedFloats {
    map: Arc<Mmap>,
    start: usize,
    len: usize,
}

impl MappedFloats {
    /// The values at `start..start + 4 * len` of `map`; none when that range is outside
    /// the map or not aligned for f32 (so `as_slice` can never fail).
    pub fn new(map: Arc<Mmap>, start: usize, len: usize) -> Option<MappedFloats> {
        let end = start.checked_add(len.checked_mul(4)?)?;
        let bytes = map.get(start..end)?;
        bytemuck::try_cast_slice::<u8, f32>(bytes).ok()?;
        Some(MappedFloats { map, start, len })
    }

    fn as_slice(&self) -> &[f32] {
        // Checked in `new` (same range, same immutable map): neither branch is taken.
        let bytes = self.map.get(self.start..self.start + self.len * 4);
        bytes
            .and_then(|b| bytemuck::try_cast_slice(b).ok())
            .unwrap_or_default()
    }
}

// The cache files hold little-endian values, which a mapped array reads as they are.
#[cfg(target_endian = "big")]
compile_error!("mapped vectors assume a little-endian machine");

impl Floats {
    #[inline]
    pub fn as_slice(&self) -> &[f32] {
        match self {
            Floats::Heap(v) => v,
            Floats::Mapped(m) => m.as_slice(),
        }
    }

    /// The values on the heap, to append to (a mapped array is copied there first; only
    /// growing segments append, and they are never mapped).
    pub fn heap_mut(&mut self) -> &mut Vec<f32> {
        if let Floats::Mapped(m) = self {
            *self = Floats::Heap(m.as_slice().to_vec());
        }
        match self {
            Floats::Heap(v) => v,
            Floats::Mapped(_) => unreachable!("copied to the heap just above"),
        }
    }

    /// Bytes on the heap (by capacity).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Floats::Heap(v) => v.capacity() * 4,
            Floats::Mapped(_) => 0,
        }
    }

    /// Bytes of the file the values are mapped from (the whole cache file).
    pub fn mapped_bytes(&self) -> usize {
        match self {
            Floats::Heap(_) => 0,
            Floats::Mapped(m) => m.map.len(),
        }
    }

    pub fn shrink_to_fit(&mut self) {
        if let Floats::Heap(v) = self {
            v.shrink_to_fit();
        }
    }
}

impl Default for Floats {
    fn default() -> Self {
        Floats::Heap(Vec::new())
    }
}
