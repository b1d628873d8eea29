//! The parameters an index is created with, and the checks on them and on the items and
//! queries sent to it. All checks run before anything is changed, so a refused request
//! leaves the index exactly as it was.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::distance::{norm, normalize, Metric, MAX_NORM};
use crate::error::IndexError;
use crate::filter::FilterLimits;

/// Longest index name, in characters (API.md).
pub const MAX_NAME_LEN: usize = 128;
/// Longest item id, in bytes (API.md).
pub const MAX_ID_BYTES: usize = 256;
pub const MAX_DIM: usize = 4096;
/// `hnsw_rs` exits the process above 255; we stay well below.
pub const MAX_M: usize = 128;
pub const MAX_EF: usize = 10_000;
/// The most results one search may ask for, unless `vectord.max_k` says otherwise.
pub const MAX_K: usize = 1000;

/// Limits on what clients send, from the configuration (each with a safe default); a
/// request past one gets a 4xx naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Items in one `add` batch.
    pub max_batch_items: usize,
    /// Bytes of one item's metadata, as JSON.
    pub max_metadata_bytes: usize,
    /// Bytes of one item's document (UTF-8).
    pub max_document_bytes: usize,
    /// Bytes of an item id (API.md allows up to 256).
    pub max_id_bytes: usize,
    /// Conditions in a filter (one operator on one field, or on ids).
    pub max_filter_keys: usize,
    /// Operators nested in a filter (`$and` in `$or` in `$not` ...).
    pub max_filter_depth: usize,
    /// Results one search may ask for (`k`); at most `MAX_EF`, since `ef` is at least `k`.
    pub max_k: usize,
    /// Searches in one batch search.
    pub max_batch_searches: usize,
    /// Indexes in the process.
    pub max_indexes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_items: 100_000,
            max_metadata_bytes: 64 << 10,
            max_document_bytes: 1 << 20,
            max_id_bytes: MAX_ID_BYTES,
            max_filter_keys: 64,
            max_filter_depth: 8,
            max_k: MAX_K,
            max_batch_searches: 1_000,
            max_indexes: 10_000,
        }
    }
}

impl Limits {
    /// How large a filter may be.
    pub fn filter(&self) -> FilterLimits {
        FilterLimits {
            max_depth: self.max_filter_depth,
            max_terms: self.max_filter_keys,
        }
    }

    /// No limit but the contract's: for replaying stored changes, which were accepted
    /// under whatever limits applied then.
    pub fn contract() -> Limits {
        Limits {
            max_batch_items: usize::MAX,
            max_metadata_bytes: usize::MAX,
            max_document_bytes: usize::MAX,
            max_id_bytes: MAX_ID_BYTES,
            max_filter_keys: usize::MAX,
            max_filter_depth: usize::MAX,
            max_k: MAX_EF,
            max_batch_searches: usize::MAX,
            max_indexes: usize::MAX,
        }
    }
}

/// The fields of an index that have a field index, by name: declared at creation or later
/// (`POST /vectors/index/{name}/fields`), stored in the manifest.
pub type Fields = std::collections::BTreeMap<String, FieldKind>;

/// Most fields one index may declare.
pub const MAX_FIELDS: usize = 64;
/// Longest field name, in bytes.
pub const MAX_FIELD_NAME_BYTES: usize = 1024;

/// What a field index holds and answers (docs/API.md, "Field indexes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Strings (and the strings of an array): `$eq`, `$in`, `$contains`.
    Keyword,
    /// Numbers: `$eq`, `$in`, ranges. Kept as f64, which orders every JSON number; equal
    /// integers past 2^53 are told apart by the filter's own check of each candidate.
    Integer,
    /// Numbers, as `integer`: the two differ only in what a client declares.
    Float,
    /// `true` / `false`: `$eq`, `$in`.
    Bool,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Keyword => "keyword",
            FieldKind::Integer => "integer",
            FieldKind::Float => "float",
            FieldKind::Bool => "bool",
        }
    }
}

/// Reads a `fields` object (`{"lang": "keyword", "year": "integer"}`) as a client sent it:
/// 400 `invalid_fields` naming the field on anything else.
pub fn parse_fields(value: &Value) -> Result<Fields, IndexError> {
    let invalid = |message: String| IndexError::invalid("invalid_fields", message);
    let Value::Object(object) = value else {
        return Err(invalid(
            "fields is an object of field name to \"keyword\", \"integer\", \"float\" or \"bool\""
                .into(),
        ));
    };
    if object.len() > MAX_FIELDS {
        return Err(invalid(format!(
            "fields names {} fields, more than the limit of {MAX_FIELDS}",
            object.len()
        )));
    }
    let mut out = Fields::new();
    for (name, kind) in object {
        // Any metadata key may be indexed (a key starting with `$` cannot be filtered on,
        // as filters read such keys as operators, but it is no error to index it).
        if name.len() > MAX_FIELD_NAME_BYTES {
            return Err(invalid(format!(
                "fields.{}: a field name is at most {MAX_FIELD_NAME_BYTES} bytes",
                truncate(name, 160)
            )));
        }
        let kind = serde_json::from_value::<FieldKind>(kind.clone()).map_err(|_| {
            invalid(format!(
                "fields.{name}: {} is not \"keyword\", \"integer\", \"float\" or \"bool\"",
                truncate(&kind.to_string(), 80)
            ))
        })?;
        out.insert(name.clone(), kind);
    }
    Ok(out)
}

/// `declared` with `more` added: a field already declared keeps its kind (declaring it
/// again with the same kind is no change, with another kind is 400 `invalid_fields`), and
/// the whole stays within `MAX_FIELDS`.
pub fn merge_fields(declared: &Fields, more: &Fields) -> Result<Fields, IndexError> {
    let mut out = declared.clone();
    for (name, &kind) in more {
        match declared.get(name) {
            Some(&had) if had != kind => {
                return Err(IndexError::invalid(
                    "invalid_fields",
                    format!(
                        "fields.{name}: the field is already indexed as {}; an index keeps a field's kind",
                        had.as_str()
                    ),
                ))
            }
            _ => {
                out.insert(name.clone(), kind);
            }
        }
    }
    if out.len() > MAX_FIELDS {
        return Err(IndexError::invalid(
            "invalid_fields",
            format!("an index may index at most {MAX_FIELDS} fields"),
        ));
    }
    Ok(out)
}

/// Counts the bytes written to it (the JSON size of metadata, without a buffer).
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What an index is: fixed at creation, saved in its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexParams {
    pub name: String,
    pub dim: usize,
    pub distance: Metric,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// Compressed copies of sealed segments' vectors that searches walk the graph on
    /// (none: every index before it, and the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// Sealed segments' f32 vectors live in cache files under `vectord.cache_dir`,
    /// memory-mapped, instead of on the heap (false: every index before it, the default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_disk: bool,
}

/// How an index compresses its vectors for searches (`"quantization"` at creation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantization {
    /// `int8`: one byte per value (`index::codes`).
    #[serde(rename = "type")]
    pub kind: QuantizationKind,
    /// Share of the values the byte range covers; the rest are clamped (0.5-1).
    #[serde(default = "default_quantile")]
    pub quantile: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantizationKind {
    Int8,
}

fn default_quantile() -> f64 {
    0.99
}

/// One item of an `add` batch, as the client sent it.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: String,
    pub vector: Vec<f32>,
    pub metadata: Map<String, Value>,
    /// The text the vector was made from, if the client sent it.
    pub document: Option<String>,
}

/// Refuses the ids `.` and `..`, which no HTTP client can put in a URL path: they rewrite
/// them as "this" and "parent" segments (httpx sends `DELETE .../items/..` as a delete of
/// the index). `what` names the id in the message (`items[3].id`).
pub fn check_addressable_id(id: &str, what: &str) -> Result<(), IndexError> {
    if id == "." || id == ".." {
        return Err(IndexError::invalid(
            "invalid_id",
            format!(
                "{what} {id:?} cannot be an item id: HTTP clients rewrite \".\" and \"..\" in URL paths, so the item could not be read or deleted"
            ),
        ));
    }
    Ok(())
}

/// `name`: 1–128 chars of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn check_name(name: &str) -> Result<(), IndexError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars || name.starts_with('.') {
        return Err(IndexError::invalid(
            "invalid_name",
            format!(
                "name {:?} is invalid: use 1-{MAX_NAME_LEN} characters of [A-Za-z0-9._-], not starting with '.'",
                truncate(name, 160)
            ),
        ));
    }
    Ok(())
}

impl IndexParams {
    pub fn check(&self) -> Result<(), IndexError> {
        check_name(&self.name)?;
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(IndexError::invalid(
                "invalid_dim",
                format!("dim {} is out of range 1-{MAX_DIM}", self.dim),
            ));
        }
        if self.m < 2 || self.m > MAX_M {
            return Err(IndexError::invalid(
                "invalid_m",
                format!("m {} is out of range 2-{MAX_M}", self.m),
            ));
        }
        if self.ef_construction == 0 || self.ef_construction > MAX_EF {
            return Err(IndexError::invalid(
                "invalid_ef_construction",
                format!(
                    "ef_construction {} is out of range 1-{MAX_EF}",
                    self.ef_construction
                ),
            ));
        }
        if self.ef_search == 0 || self.ef_search > MAX_EF {
            return Err(IndexError::invalid(
                "invalid_ef_search",
                format!("ef_search {} is out of range 1-{MAX_EF}", self.ef_search),
            ));
        }
        if let Some(q) = self.quantization {
            if !(0.5..=1.0).contains(&q.quantile) {
                return Err(IndexError::invalid(
                    "invalid_quantization",
                    format!("quantization.quantile {} is out of range 0.5-1", q.quantile),
                ));
            }
        }
        Ok(())
    }

    /// Checks a vector for this index and returns it as stored (unit length under cosine).
    /// `what` says where it came from, for the message ("items[3].vector", "vector").
    pub fn check_vector(&self, mut vector: Vec<f32>, what: &str) -> Result<Vec<f32>, IndexError> {
        if vector.len() != self.dim {
            return Err(IndexError::invalid(
                "wrong_dimension",
                format!(
                    "{what} has {} values, index {:?} has dim {}",
                    vector.len(),
                    self.name,
                    self.dim
                ),
            ));
        }
        if let Some(pos) = vector.iter().position(|x| !x.is_finite()) {
            return Err(IndexError::invalid(
                "invalid_vector",
                format!("{what}[{pos}] is not a finite number"),
            ));
        }
        match self.distance {
            Metric::Cosine => {
                if !normalize(&mut vector) {
                    return Err(IndexError::invalid(
                        "zero_vector",
                        format!(
                            "{what} has zero length, which has no direction under cosine distance"
                        ),
                    ));
                }
            }
            Metric::L2 | Metric::Ip => {
                let n = norm(&vector);
                if n > MAX_NORM {
                    return Err(IndexError::invalid(
                        "invalid_vector",
                        format!(
                            "{what} has a Euclidean norm of {n:e}, above the limit of {MAX_NORM:e} \
                             under {} distance (larger distances would overflow)",
                            self.distance.as_str()
                        ),
                    ));
                }
            }
        }
        Ok(vector)
    }

    /// Checks a whole `add` batch under the default limits (see `check_items_within`).
    pub fn check_items(&self, items: Vec<NewItem>) -> Result<Vec<NewItem>, IndexError> {
        self.check_items_within(items, &Limits::default())
    }

    /// Checks a whole `add` batch, all of it before anything is stored. Returns the items
    /// with their vectors as stored.
    pub fn check_items_within(
        &self,
        items: Vec<NewItem>,
        limits: &Limits,
    ) -> Result<Vec<NewItem>, IndexError> {
        if items.is_empty() {
            return Err(IndexError::invalid(
                "empty_batch",
                "items is empty: send at least one item",
            ));
        }
        if items.len() > limits.max_batch_items {
            return Err(IndexError::invalid(
                "too_many_items",
                format!(
                    "items holds {} items, more than the limit of {} per batch (vectord.max_batch_items)",
                    items.len(),
                    limits.max_batch_items
                ),
            ));
        }
        let max_id = limits.max_id_bytes.min(MAX_ID_BYTES);
        let mut seen = std::collections::HashMap::with_capacity(items.len());
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            if item.id.is_empty() || item.id.len() > max_id {
                return Err(IndexError::invalid(
                    "invalid_id",
                    format!(
                        "items[{i}].id must be 1-{max_id} bytes, got {} bytes",
                        item.id.len()
                    ),
                ));
            }
            if !item.metadata.is_empty() && limits.max_metadata_bytes < usize::MAX {
                let mut size = ByteCount(0);
                // Writing JSON values to a counter cannot fail.
                let _ = serde_json::to_writer(&mut size, &item.metadata);
                if size.0 > limits.max_metadata_bytes {
                    return Err(IndexError::invalid(
                        "metadata_too_large",
                        format!(
                            "items[{i}].metadata is {} bytes as JSON, more than the limit of {} (vectord.max_metadata_bytes)",
                            size.0, limits.max_metadata_bytes
                        ),
                    ));
                }
            }
            let document = item.document.as_ref().map_or(0, String::len);
            if document > limits.max_document_bytes {
                return Err(IndexError::invalid(
                    "document_too_large",
                    format!(
                        "items[{i}].document is {document} bytes, more than the limit of {} (vectord.max_document_bytes)",
                        limits.max_document_bytes
                    ),
                ));
            }
            if let Some(first) = seen.insert(item.id.clone(), i) {
                return Err(IndexError::invalid(
                    "duplicate_id",
                    format!(
                        "items[{i}].id {:?} repeats items[{first}].id in the same batch",
                        item.id
                    ),
                ));
            }
            let vector = self.check_vector(item.vector, &format!("items[{i}].vector"))?;
            out.push(NewItem { vector, ..item });
        }
        Ok(out)
    }

    /// Checks a search's `k` (at most `max_k`) and `ef`, and returns the `ef` to use.
    pub fn check_search(
        &self,
        k: usize,
        ef: Option<usize>,
        max_k: usize,
    ) -> Result<usize, IndexError> {
        if k == 0 || k > max_k {
            let setting = if max_k == MAX_K {
                ""
            } else {
                " (vectord.max_k)"
            };
            return Err(IndexError::invalid(
                "invalid_k",
                format!("k {k} is out of range 1-{max_k}{setting}"),
            ));
        }
        match ef {
            Some(ef) if ef < k || ef > MAX_EF => Err(IndexError::invalid(
                "invalid_ef",
                format!("ef {ef} is out of range k-{MAX_EF} (k is {k})"),
            )),
            Some(ef) => Ok(ef),
            None => Ok(k.max(self.ef_search)),
        }
    }
}

/// At most `max` characters of `text`, for echoing client input in messages.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(distance: Metric) -> IndexParams {
        IndexParams {
            name: "t".into(),
            dim: 3,
            distance,
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            quantization: None,
            on_disk: false,
        }
    }

    fn item(id: &str, vector: Vec<f32>) -> NewItem {
        NewItem {
            id: id.into(),
            vector,
            metadata: Map::new(),
            document: None,
        }
    }

    fn code(err: IndexError) -> (&'static str, String) {
        match err {
            IndexError::Invalid { code, message } => (code, message),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "A-b_c.d", "x".repeat(128).as_str(), "0.9"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a b",
            "é",
            "x".repeat(129).as_str(),
            "a%2F",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_ranges() {
        let mut p = params(Metric::L2);
        assert!(p.check().is_ok());
        p.dim = 0;
        assert_eq!(code(p.check().unwrap_err()).0, "invalid_dim");
        p.dim = 4097;
        assert!(p.check().is_err());
        p.dim = 4096;
        p.m = 300;
        assert_eq!(code(p.check().unwrap_err()).0, "invalid_m");
    }

    #[test]
    fn batch_errors_name_the_item() {
        let p = params(Metric::Cosine);
        let cases: Vec<(Vec<NewItem>, &str, &str)> = vec![
            (vec![], "empty_batch", "items"),
            (
                vec![item("a", vec![1., 0., 0.]), item("", vec![1., 0., 0.])],
                "invalid_id",
                "items[1]",
            ),
            (
                vec![item(&"x".repeat(257), vec![1., 0., 0.])],
                "invalid_id",
                "items[0]",
            ),
            (
                vec![item("a", vec![1., 0., 0.]), item("b", vec![1., 0.])],
                "wrong_dimension",
                "items[1].vector",
            ),
            (
                vec![item("a", vec![1., f32::NAN, 0.])],
                "invalid_vector",
                "items[0].vector[1]",
            ),
            (
                vec![item("a", vec![1., f32::INFINITY, 0.])],
                "invalid_vector",
                "items[0].vector[1]",
            ),
            (
                vec![item("a", vec![1., 0., 0.]), item("b", vec![0., 0., 0.])],
                "zero_vector",
                "items[1]",
            ),
            (
                vec![item("a", vec![1., 0., 0.]), item("a", vec![0., 1., 0.])],
                "duplicate_id",
                "items[1]",
            ),
            (
                vec![
                    item("a", vec![1., 0., 0.]),
                    NewItem {
                        document: Some("x".repeat((1 << 20) + 1)),
                        ..item("b", vec![0., 1., 0.])
                    },
                ],
                "document_too_large",
                "items[1].document is 1048577 bytes",
            ),
        ];
        for (items, want_code, want_text) in cases {
            let (got, message) = code(p.check_items(items).unwrap_err());
            assert_eq!(got, want_code, "{message}");
            assert!(
                message.contains(want_text),
                "{message} should name {want_text}"
            );
        }
    }

    #[test]
    fn vectors_too_long_for_finite_distances_are_refused() {
        for metric in [Metric::L2, Metric::Ip] {
            let (code_, message) = code(
                params(metric)
                    .check_items(vec![item("a", vec![1e20, 1.0, 0.0])])
                    .unwrap_err(),
            );
            assert_eq!(code_, "invalid_vector");
            assert!(message.contains("items[0].vector") && message.contains("norm"));
            assert!(params(metric)
                .check_items(vec![item("a", vec![1e17, -1e17, 1e-30])])
                .is_ok());
        }
        // under cosine, huge and tiny vectors are simply normalized
        let out = params(Metric::Cosine)
            .check_items(vec![
                item("a", vec![1e20, 0.0, 0.0]),
                item("b", vec![0.0, 1e-25, 0.0]),
            ])
            .unwrap();
        assert_eq!(out[0].vector, vec![1.0, 0.0, 0.0]);
        assert_eq!(out[1].vector, vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn zero_vector_is_fine_outside_cosine() {
        assert!(params(Metric::L2)
            .check_items(vec![item("z", vec![0., 0., 0.])])
            .is_ok());
        assert!(params(Metric::Ip)
            .check_items(vec![item("z", vec![0., 0., 0.])])
            .is_ok());
    }

    #[test]
    fn cosine_vectors_are_normalized() {
        let out = params(Metric::Cosine)
            .check_items(vec![item("a", vec![3., 4., 0.])])
            .unwrap();
        assert!((out[0].vector[0] - 0.6).abs() < 1e-6);
    }

    #[test]
    fn search_ranges() {
        let p = params(Metric::L2);
        assert_eq!(p.check_search(10, None, MAX_K).unwrap(), 64);
        assert_eq!(p.check_search(100, None, MAX_K).unwrap(), 100);
        assert_eq!(p.check_search(10, Some(10), MAX_K).unwrap(), 10);
        assert!(p.check_search(0, None, MAX_K).is_err());
        assert!(p.check_search(1001, None, MAX_K).is_err());
        assert!(p.check_search(10, Some(9), MAX_K).is_err());
        assert!(p.check_search(10, Some(10_001), MAX_K).is_err());
        // the ceiling is a setting
        assert_eq!(p.check_search(5000, None, 10_000).unwrap(), 5000);
        assert!(p.check_search(11, None, 10).is_err());
    }
}
