//! The points of one segment: vectors in one contiguous `f32` array (on the heap, or
//! mapped from a cache file for a sealed segment of an `on_disk` index), item ids,
//! metadata, documents.
//! A growing segment appends to it; a frozen or sealed segment holds it behind an `Arc`
//! and never changes it again.

use serde_json::{Map, Value};

use super::documents::Documents;
use super::ids::IdTable;
use crate::codec::floats::Floats;

/// Metadata of one point; `None` stands for `{}` (8 bytes a point instead of 24 for an
/// empty map).
pub type Metadata = Option<Box<Map<String, Value>>>;

pub struct Points {
    dim: usize,
    /// Point p's vector is `vectors[p * dim..(p + 1) * dim]`.
    vectors: Floats,
    ids: IdTable,
    metadata: Vec<Metadata>,
    /// Estimated heap bytes of the metadata maps, kept up to date by every push (so
    /// `heap_bytes` need not walk them).
    metadata_heap: usize,
    documents: Documents,
}

/// Estimated heap bytes of one metadata map (its nodes, keys and values).
fn metadata_cost(m: &Metadata) -> usize {
    m.as_ref().map_or(0, |m| 64 + m.len() * 96)
}

impl Points {
    pub fn new(dim: usize) -> Points {
        Points::with_capacity(dim, 0, 0)
    }

    pub fn with_capacity(dim: usize, points: usize, id_bytes: usize) -> Points {
        Points {
            dim,
            vectors: Floats::Heap(Vec::with_capacity(points * dim)),
            ids: IdTable::with_capacity(points, id_bytes),
            metadata: Vec::with_capacity(points),
            metadata_heap: 0,
            documents: Documents::default(),
        }
    }

    /// Rebuilds points from their parts (a decoded segment); refuses parts that disagree.
    pub fn from_parts(
        dim: usize,
        vectors: Floats,
        ids: IdTable,
        metadata: Vec<Metadata>,
        documents: Documents,
    ) -> Result<Points, String> {
        let n = ids.len();
        if dim == 0 || vectors.as_slice().len() != n * dim || metadata.len() != n {
            return Err(format!(
                "{} vector values, {} metadata entries and {n} ids do not fit dim {dim}",
                vectors.as_slice().len(),
                metadata.len()
            ));
        }
        Ok(Points {
            dim,
            vectors,
            ids,
            metadata_heap: metadata.iter().map(metadata_cost).sum(),
            metadata,
            documents,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    #[inline]
    pub fn vector(&self, p: usize) -> &[f32] {
        &self.vectors.as_slice()[p * self.dim..(p + 1) * self.dim]
    }

    /// Every vector, back to back.
    pub fn vectors(&self) -> &[f32] {
        self.vectors.as_slice()
    }

    /// Bytes of the cache file the vectors are mapped from (0 on the heap).
    pub fn mapped_bytes(&self) -> usize {
        self.vectors.mapped_bytes()
    }

    /// The same points with these vectors instead (equal values, mapped from a cache file).
    pub fn with_vectors(&self, vectors: Floats) -> Result<Points, String> {
        if vectors.as_slice() != self.vectors() {
            return Err("the cached vectors differ from the segment's".into());
        }
        Ok(Points {
            dim: self.dim,
            vectors,
            ids: self.ids.clone(),
            metadata: self.metadata.clone(),
            metadata_heap: self.metadata_heap,
            documents: self.documents.clone(),
        })
    }

    pub fn id(&self, p: usize) -> &str {
        self.ids.get(p)
    }

    pub fn ids(&self) -> &IdTable {
        &self.ids
    }

    pub fn metadata(&self, p: usize) -> Option<&Map<String, Value>> {
        self.metadata[p].as_deref()
    }

    pub fn metadata_owned(&self, p: usize) -> Map<String, Value> {
        self.metadata(p).cloned().unwrap_or_default()
    }

    pub fn document(&self, p: usize) -> Option<&str> {
        self.documents.get(p)
    }

    pub fn documents(&self) -> &Documents {
        &self.documents
    }

    /// The newest point holding `id` (dead or alive: the segment's tombstones say).
    pub fn find(&self, id: &str) -> Option<u32> {
        self.ids.find(id)
    }

    /// Appends a point; returns its number. `vector` must have `dim` values.
    pub fn push(
        &mut self,
        id: &str,
        vector: &[f32],
        metadata: Map<String, Value>,
        document: Option<&str>,
    ) -> u32 {
        debug_assert_eq!(vector.len(), self.dim);
        self.documents.push(self.len(), document);
        self.vectors.heap_mut().extend_from_slice(vector);
        let metadata = (!metadata.is_empty()).then(|| Box::new(metadata));
        self.metadata_heap += metadata_cost(&metadata);
        self.metadata.push(metadata);
        self.ids.push(id)
    }

    /// Appends point `p` of `other` (same dim).
    pub fn push_from(&mut self, other: &Points, p: usize) -> u32 {
        self.documents.push(self.len(), other.document(p));
        self.vectors.heap_mut().extend_from_slice(other.vector(p));
        let metadata = other.metadata[p].clone();
        self.metadata_heap += metadata_cost(&metadata);
        self.metadata.push(metadata);
        self.ids.push(other.id(p))
    }

    /// Gives back spare capacity (a frozen segment never grows again).
    pub fn shrink_to_fit(&mut self) {
        self.vectors.shrink_to_fit();
        self.metadata.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.documents.shrink_to_fit();
    }

    /// Bytes held on the heap, by capacity (metadata maps estimated).
    pub fn heap_bytes(&self) -> usize {
        self.vectors.heap_bytes()
            + self.ids.heap_bytes()
            + self.metadata.capacity() * std::mem::size_of::<Metadata>()
            + self.metadata_heap
            + self.documents.heap_bytes()
    }

    pub fn metadata_slice(&self) -> &[Metadata] {
        &self.metadata
    }
}
