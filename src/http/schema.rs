//! The JSON bodies vectord answers with, as types: the handlers build these, and the
//! OpenAPI document (`openapi`) describes them from the same definitions, so the spec
//! cannot drift from what is sent. Request bodies are declared next to their handlers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Every error: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "index_not_found", "message": "index \"docs\" not found"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case name of the error (e.g. `invalid_dim`, `index_exists`, `busy`).
    pub code: String,
    /// What was wrong, naming the field or value.
    pub message: String,
}

/// An index: its parameters, sizes, background indexing and saves.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "docs", "dim": 384, "distance": "cosine", "m": 16,
    "ef_construction": 200, "ef_search": 64, "count": 20000, "tombstones": 0,
    "memory_bytes_estimate": 34120000, "sealed_segments": 1, "unsealed_count": 0,
    "indexing": false, "persistence": "storaged", "last_save_at": 1764108000}))]
pub struct IndexInfo {
    pub name: String,
    pub dim: usize,
    /// `cosine`, `l2` or `ip`.
    pub distance: String,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// `{"type": "int8", "quantile": q}` for a quantized index (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub quantization: Option<serde_json::Value>,
    /// A quantized index's search defaults: `{"rescore": true, "oversampling": 4}`
    /// (a search's `rescore` and `oversampling` override them).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub rescoring: Option<serde_json::Value>,
    /// Metadata fields with a field index, by name: `keyword`, `integer`, `float`, `bool`.
    pub fields: std::collections::BTreeMap<String, String>,
    /// Live items.
    pub count: usize,
    /// Deleted or replaced points not yet compacted away.
    pub tombstones: usize,
    /// Heap bytes the index holds.
    pub memory_bytes_estimate: usize,
    /// Whether sealed segments' vectors live in cache files (mapped) instead of RAM.
    pub on_disk: bool,
    /// Bytes of those cache files (0 unless `on_disk`).
    pub disk_bytes: usize,
    /// On a read replica: how far it has followed the primary (absent on a primary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaInfo>,
    /// Segments searched by graph.
    pub sealed_segments: usize,
    /// Items not yet in a sealed segment (searched by scanning).
    pub unsealed_count: usize,
    /// Background seals, merges or compactions under way.
    pub indexing: bool,
    /// `storaged` or `ephemeral`.
    pub persistence: String,
    /// When the index was last stored (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_save_at: Option<u64>,
    /// How long its oldest unsaved change has waited, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsaved_for_ms: Option<u64>,
    /// The last save's error, while saves fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_save_error: Option<String>,
}

/// Every field an index indexes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"fields": {"lang": "keyword", "year": "integer"}}))]
pub struct FieldsResponse {
    pub fields: std::collections::BTreeMap<String, String>,
}

/// Every index, sorted by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexList {
    pub indexes: Vec<IndexInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"added": 2, "count": 2}))]
pub struct AddResponse {
    /// Items in the batch.
    pub added: usize,
    /// Live items in the index after it.
    pub count: usize,
}

/// A stored item (under cosine, the vector as stored: unit length).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "a", "vector": [1.0, 0.0, 0.0, 0.0], "metadata": {"lang": "en"}}))]
pub struct ItemResponse {
    pub id: String,
    /// Written as 0.1.0 wrote it: each f32 widened to f64 (`0.1` comes back as
    /// `0.10000000149011612`), which clients of 0.1.0 compare against.
    #[serde(serialize_with = "widened")]
    pub vector: Vec<f32>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// The item's document, when it has one (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"results": [{"id": "a", "distance": 0.0049628615, "metadata": {"lang": "en"}}]}))]
pub struct SearchResponse {
    /// Nearest first; ties by id.
    pub results: Vec<SearchResult>,
}

/// The answer to a batch search: one list per search, in the order of the searches.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"results": [[{"id": "a", "distance": 0.0049628615, "metadata": {"lang": "en"}}], []]}))]
pub struct BatchSearchResponse {
    /// `results[i]` answers `searches[i]`, as `search` would: nearest first; ties by id.
    pub results: Vec<Vec<SearchResult>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResult {
    pub id: String,
    pub distance: f32,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// With `"include": ["vector"]`: the item's vector as stored (unit length under cosine),
    /// as the request's `vector_encoding` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<VectorOut>,
    /// With `"include": ["document"]`: the item's document (`null` when it has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub document: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"persisted": true}))]
pub struct FlushResponse {
    /// True once every change made before the flush is stored; false in ephemeral mode.
    pub persisted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when vectord answers.
    pub status: String,
    pub indexes: usize,
    /// `storaged` or `ephemeral`.
    pub persistence: String,
    /// `primary` or `replica`.
    pub role: String,
    /// The start-up load is done (on a replica: its first poll of the store).
    pub ready: bool,
    /// On a replica: each index followed, with how far behind it may be.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicated: Vec<ReplicaIndex>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_indexes: Vec<FailedIndex>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub load_warnings: Vec<LoadWarning>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub save_errors: Vec<SaveErrorInfo>,
}

/// How far a read replica has followed the primary's changes to one index.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ReplicaInfo {
    /// The last of the primary's log sequence numbers applied.
    pub applied_lsn: u64,
    /// How old the replica's view may be: milliseconds since the start of the last poll
    /// after which it had applied everything stored.
    pub lag_ms: u64,
}

/// An index a read replica follows, with its lag (`/health`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaIndex {
    pub name: String,
    pub applied_lsn: u64,
    pub lag_ms: u64,
}

/// A stored index that could not be loaded (its files are left in place).
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedIndex {
    pub name: String,
    pub key: String,
    pub error: String,
    /// The failure looked transient: loading is retried.
    pub retrying: bool,
}

/// An index whose log replay stopped early at start-up.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoadWarning {
    pub name: String,
    pub warning: String,
}

/// An index whose saves fail.
#[derive(Debug, Serialize, ToSchema)]
pub struct SaveErrorInfo {
    pub name: String,
    pub error: String,
    /// Seconds since the epoch.
    pub failing_since: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// How a request wants the vectors of its answer written (`"vector_encoding"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VectorEncoding {
    /// JSON numbers (the default).
    #[default]
    Float,
    /// The base64 of the little-endian f32 values (standard alphabet, padded).
    Base64,
}

/// A vector in a request: `dim` numbers, or the base64 of its little-endian f32 values.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a shape for the OpenAPI document: `body::f32_vector` reads both
pub enum VectorIn {
    Numbers(Vec<f32>),
    Base64(String),
}

/// A vector in an answer: numbers, or the base64 of its little-endian f32 values when the
/// request asked for `"vector_encoding": "base64"`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum VectorOut {
    Numbers(Vec<f32>),
    Base64(String),
}

impl VectorOut {
    pub fn new(vector: Vec<f32>, encoding: VectorEncoding) -> VectorOut {
        match encoding {
            VectorEncoding::Float => VectorOut::Numbers(vector),
            VectorEncoding::Base64 => {
                use base64::Engine;
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                VectorOut::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

/// Serializes f32s as the f64s they widen to (exactly the stored values, in 0.1.0's form).
fn widened<S: serde::Serializer>(vector: &[f32], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(vector.len()))?;
    for x in vector {
        seq.serialize_element(&f64::from(*x))?;
    }
    seq.end()
}
