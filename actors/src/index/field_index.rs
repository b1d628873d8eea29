//! Field indexes of a sealed segment: for each declared field, which points hold which
//! value, so that a filtered search learns how many points may pass (and which) without
//! reading any point's metadata.
//!
//! - `keyword` and `bool` fields: each value's points, ascending (postings), values sorted.
//!   A string array posts each of its strings, so `$contains` is answered too.
//! - `integer` and `float` fields: every (number, point) pair, sorted by number: a range is
//!   two binary searches. Numbers are kept as f64, which orders every JSON number.
//!
//! Where a field holds no arrays, its index also keeps each point's value (a column:
//! the value's number for keywords, the number itself for numbers), derived from the
//! above at build and load: a graph walk then checks a point against the filter with an
//! array read instead of a look into its metadata.
//!
//! An index answers as a superset ("these points, and no others, may pass"), and says
//! when its answer is exact: then the filter need not be tried on the metadata at all.
//! Not exact: an array was indexed (`$eq` does not match an array that holds the value),
//! or an integer past 2^53 (kept as the nearest f64).
//! Built with the segment (seal, merge, compaction) or later by a background job when a
//! field is declared; stored with the segment, so a reload rebuilds nothing.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::points::Points;
use crate::filter::{FieldQuery, Lookup, Scalar};
use crate::params::{FieldKind, Fields};

/// The field indexes of one segment, by field name.
#[derive(Debug, Default, Clone)]
pub struct FieldIndexes {
    fields: BTreeMap<String, FieldIndex>,
}

#[derive(Debug, Clone)]
pub struct FieldIndex {
    kind: FieldKind,
    data: Data,
    /// An array's elements were indexed: lookups are supersets, and there is no column.
    arrays: bool,
    /// An integer past ±2^53 was indexed: `$eq` on numbers is a superset.
    big: bool,
    /// Each point's value, when no array was indexed (derived, not stored).
    column: Option<Column>,
}

/// Each point's value: the number of its keyword in `Data::Postings::values` (`NO_VALUE`
/// for none), or its number (NaN for none).
#[derive(Debug, Clone)]
enum Column {
    Ordinals(Vec<u32>),
    Numbers(Vec<f64>),
}

const NO_VALUE: u32 = u32::MAX;
/// Integers below this size are exact as f64 (2^53).
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

#[derive(Debug, Clone)]
enum Data {
    /// `keyword` and `bool` (values `"false"` / `"true"`): value `i`'s points are
    /// `points[starts[i]..starts[i + 1]]`, ascending.
    Postings {
        values: Vec<String>,
        starts: Vec<u32>,
        points: Vec<u32>,
    },
    /// `integer` and `float`: `values[i]` is held by `points[i]`; sorted by value.
    Sorted { values: Vec<f64>, points: Vec<u32> },
}

/// The points a lookup found in one segment, not yet gathered, and how to check one
/// point against the lookup from the columns.
pub enum Found<'s> {
    Field {
        /// Slices of the index, in any order, possibly overlapping.
        lists: Vec<&'s [u32]>,
        check: Option<Check<'s>>,
        exact: bool,
    },
    /// Ascending.
    Points(Vec<u32>),
    All {
        parts: Vec<Found<'s>>,
        /// Some part of the lookup has no index here.
        partial: bool,
    },
    Any(Vec<Found<'s>>),
}

/// One field's condition, checked against its column.
pub enum Check<'s> {
    /// `wanted`: the values' numbers, ascending.
    Ordinals { column: &'s [u32], wanted: Vec<u32> },
    Numbers {
        column: &'s [f64],
        ranges: Vec<Bounds>,
    },
    /// `set`: the numbers, ascending (no -0).
    NumberIn { column: &'s [f64], set: Vec<f64> },
}

type Bounds = (Option<(f64, bool)>, Option<(f64, bool)>);

impl FieldIndexes {
    /// Indexes of `fields` over every point of `points` (tombstoned ones too: tombstones
    /// are applied apart, and change after the build).
    pub fn build(points: &Points, fields: &Fields) -> FieldIndexes {
        FieldIndexes {
            fields: fields
                .iter()
                .map(|(name, &kind)| (name.clone(), FieldIndex::build(points, name, kind)))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields indexed.
    pub fn names(&self) -> Vec<String> {
        self.fields.keys().cloned().collect()
    }

    /// Whether every field of `declared` has its index here, of its kind.
    pub fn covers(&self, declared: &Fields) -> bool {
        declared
            .iter()
            .all(|(name, kind)| self.fields.get(name).is_some_and(|f| f.kind == *kind))
    }

    /// The fields of `declared` that have no index here (or one of another kind).
    pub fn missing(&self, declared: &Fields) -> Fields {
        declared
            .iter()
            .filter(|(name, kind)| self.fields.get(*name).is_none_or(|f| f.kind != **kind))
            .map(|(name, kind)| (name.clone(), *kind))
            .collect()
    }

    /// These indexes with `more`'s added (a field in both: `more`'s), and none but those
    /// `declared` now.
    pub fn with(&self, more: FieldIndexes, declared: &Fields) -> FieldIndexes {
        let mut fields = self.fields.clone();
        fields.extend(more.fields);
        fields.retain(|name, f| declared.get(name) == Some(&f.kind));
        FieldIndexes { fields }
    }

    pub fn heap_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|(name, f)| name.len() + f.heap_bytes())
            .sum()
    }

    /// The points of a segment of `n` points that `lookup` may match, from the indexes
    /// (and the id table, for ids); none when some part of it has no index here.
    pub fn find<'s>(&'s self, lookup: &Lookup, points: &'s Points) -> Option<Found<'s>> {
        match lookup {
            Lookup::Field { name, query } => self.fields.get(*name)?.find(query),
            Lookup::Ids(ids) => {
                let mut found: Vec<u32> = ids.iter().filter_map(|id| points.find(id)).collect();
                found.sort_unstable();
                found.dedup();
                Some(Found::Points(found))
            }
            Lookup::All(parts) => {
                let found: Vec<Found> = parts.iter().filter_map(|l| self.find(l, points)).collect();
                let partial = found.len() < parts.len();
                (!found.is_empty()).then_some(Found::All {
                    parts: found,
                    partial,
                })
            }
            Lookup::Any(parts) => parts
                .iter()
                .map(|l| self.find(l, points))
                .collect::<Option<Vec<_>>>()
                .map(Found::Any),
        }
    }

    /// The indexes as stored: one byte string per field (see `FieldIndex::encode`).
    pub fn encode(&self) -> Vec<(String, Vec<u8>)> {
        self.fields
            .iter()
            .map(|(name, f)| (name.clone(), f.encode()))
            .collect()
    }

    /// Indexes read back from `encode`'s byte strings, for a segment of `n` points.
    pub fn decode(stored: Vec<(String, Vec<u8>)>, n: usize) -> Result<FieldIndexes, String> {
        let mut fields = BTreeMap::new();
        for (name, bytes) in stored {
            let f =
                FieldIndex::decode(&bytes, n).map_err(|e| format!("field index {name:?}: {e}"))?;
            if fields.insert(name.clone(), f).is_some() {
                return Err(format!("field index {name:?} appears twice"));
            }
        }
        Ok(FieldIndexes { fields })
    }
}

impl FieldIndex {
    fn build(points: &Points, name: &str, kind: FieldKind) -> FieldIndex {
        let (mut arrays, mut big) = (false, false);
        let mut values_of = |p: usize| -> Vec<&Value> {
            match points.metadata(p).and_then(|m| m.get(name)) {
                Some(Value::Array(items)) => {
                    arrays = true;
                    items.iter().collect()
                }
                Some(v) => vec![v],
                None => Vec::new(),
            }
        };
        let data = match kind {
            FieldKind::Keyword | FieldKind::Bool => {
                let mut lists: HashMap<String, Vec<u32>> = HashMap::new();
                for p in 0..points.len() {
                    for v in values_of(p) {
                        let key = match (kind, v) {
                            (FieldKind::Keyword, Value::String(s)) => s.clone(),
                            (FieldKind::Bool, Value::Bool(b)) => b.to_string(),
                            _ => continue,
                        };
                        let list = lists.entry(key).or_default();
                        // An array naming a value twice posts the point once.
                        if list.last() != Some(&(p as u32)) {
                            list.push(p as u32);
                        }
                    }
                }
                let mut sorted: Vec<(String, Vec<u32>)> = lists.into_iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                let mut values = Vec::with_capacity(sorted.len());
                let mut starts = Vec::with_capacity(sorted.len() + 1);
                let mut all = Vec::new();
                starts.push(0);
                for (value, list) in sorted {
                    values.push(value);
                    all.extend_from_slice(&list);
                    starts.push(all.len() as u32);
                }
                Data::Postings {
                    values,
                    starts,
                    points: all,
                }
            }
            FieldKind::Integer | FieldKind::Float => {
                let mut pairs: Vec<(f64, u32)> = Vec::new();
                for p in 0..points.len() {
                    for v in values_of(p) {
                        if let Some(x) = v.as_f64().filter(|_| v.is_number()) {
                            big |= x.abs() >= EXACT_F64;
                            pairs.push((x, p as u32));
                        }
                    }
                }
                pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                pairs.dedup();
                Data::Sorted {
                    values: pairs.iter().map(|p| p.0).collect(),
                    points: pairs.iter().map(|p| p.1).collect(),
                }
            }
        };
        FieldIndex::new(kind, data, arrays, big, points.len())
    }

    /// An index of `data`, with its column when no array was indexed.
    fn new(kind: FieldKind, data: Data, arrays: bool, big: bool, n: usize) -> FieldIndex {
        let column = (!arrays).then(|| match &data {
            Data::Postings { starts, points, .. } => {
                let mut ordinals = vec![NO_VALUE; n];
                for (i, w) in starts.windows(2).enumerate() {
                    for &p in &points[w[0] as usize..w[1] as usize] {
                        ordinals[p as usize] = i as u32;
                    }
                }
                Column::Ordinals(ordinals)
            }
            Data::Sorted { values, points } => {
                let mut numbers = vec![f64::NAN; n];
                for (&x, &p) in values.iter().zip(points) {
                    numbers[p as usize] = x;
                }
                Column::Numbers(numbers)
            }
        });
        FieldIndex {
            kind,
            data,
            arrays,
            big,
            column,
        }
    }

    fn heap_bytes(&self) -> usize {
        (match &self.data {
            Data::Postings {
                values,
                starts,
                points,
            } => {
                values.iter().map(|v| v.capacity() + 24).sum::<usize>()
                    + (starts.capacity() + points.capacity()) * 4
            }
            Data::Sorted { values, points } => values.capacity() * 8 + points.capacity() * 4,
        }) + match &self.column {
            Some(Column::Ordinals(v)) => v.capacity() * 4,
            Some(Column::Numbers(v)) => v.capacity() * 8,
            None => 0,
        }
    }

    fn find(&self, query: &FieldQuery) -> Option<Found<'_>> {
        let (lists, check, exact) = match (&self.data, query) {
            (
                Data::Postings {
                    values,
                    starts,
                    points,
                },
                FieldQuery::OneOf(wanted),
            ) => {
                let mut lists = Vec::with_capacity(wanted.len());
                let mut ordinals = Vec::with_capacity(wanted.len());
                for w in wanted {
                    let key = match (self.kind, w) {
                        (FieldKind::Keyword, Scalar::Str(s)) => *s,
                        (FieldKind::Bool, Scalar::Bool(true)) => "true",
                        (FieldKind::Bool, Scalar::Bool(false)) => "false",
                        // A value of another type: only a scan can find it.
                        _ => return None,
                    };
                    if let Ok(i) = values.binary_search_by(|v| v.as_str().cmp(key)) {
                        lists.push(&points[starts[i] as usize..starts[i + 1] as usize]);
                        ordinals.push(i as u32);
                    }
                }
                ordinals.sort_unstable();
                let check = match &self.column {
                    Some(Column::Ordinals(column)) => Some(Check::Ordinals {
                        column,
                        wanted: ordinals,
                    }),
                    _ => None,
                };
                (lists, check, !self.arrays)
            }
            (Data::Sorted { values, points }, FieldQuery::OneOf(wanted)) => {
                let mut lists = Vec::with_capacity(wanted.len());
                let mut set = Vec::with_capacity(wanted.len());
                let mut exact = !self.arrays && !self.big;
                for w in wanted {
                    let Scalar::Num(x) = w else { return None };
                    exact &= x.abs() < EXACT_F64;
                    let from = values.partition_point(|v| v < x);
                    let to = values.partition_point(|v| v <= x);
                    lists.push(&points[from..to]);
                    set.push(*x + 0.0);
                }
                // Sorted, so that a long `$in` costs a binary search per point checked.
                set.sort_by(f64::total_cmp);
                set.dedup();
                let check = match &self.column {
                    Some(Column::Numbers(column)) => Some(Check::NumberIn { column, set }),
                    _ => None,
                };
                (lists, check, exact)
            }
            (Data::Sorted { values, points }, FieldQuery::Range { low, high }) => {
                let from = match low {
                    Some((x, true)) => values.partition_point(|v| v < x),
                    Some((x, false)) => values.partition_point(|v| v <= x),
                    None => 0,
                };
                let to = match high {
                    Some((x, true)) => values.partition_point(|v| v <= x),
                    Some((x, false)) => values.partition_point(|v| v < x),
                    None => values.len(),
                };
                let lists = vec![&points[from..to.max(from)]];
                (lists, self.numbers_check(vec![(*low, *high)]), !self.arrays)
            }
            (Data::Postings { .. }, FieldQuery::Range { .. }) => return None,
        };
        Some(Found::Field {
            lists,
            check,
            exact,
        })
    }

    fn numbers_check(&self, ranges: Vec<Bounds>) -> Option<Check<'_>> {
        match &self.column {
            Some(Column::Numbers(column)) => Some(Check::Numbers { column, ranges }),
            _ => None,
        }
    }

    /// As stored: `[kind u8][flags u8: 1 arrays, 2 big]`, then for postings `[values u32]`, each value as
    /// `[len u32][bytes]`, `values + 1` × `[start u32]`, then the points (u32); for sorted
    /// numbers `[count u32]`, `count` × `[f64]`, `count` × `[point u32]`. Little-endian.
    fn encode(&self) -> Vec<u8> {
        let flags = self.arrays as u8 | (self.big as u8) << 1;
        let mut out = vec![kind_code(self.kind), flags];
        let u32s = |out: &mut Vec<u8>, xs: &[u32]| {
            xs.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
        };
        match &self.data {
            Data::Postings {
                values,
                starts,
                points,
            } => {
                out.extend_from_slice(&(values.len() as u32).to_le_bytes());
                for v in values {
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v.as_bytes());
                }
                u32s(&mut out, starts);
                u32s(&mut out, points);
            }
            Data::Sorted { values, points } => {
                out.extend_from_slice(&(values.len() as u32).to_le_bytes());
                values
                    .iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                u32s(&mut out, points);
            }
        }
        out
    }

    /// Reads `encode`'s bytes back for a segment of `n` points, checking everything a
    /// lookup relies on (points in range, postings ascending, values sorted), so that no
    /// stored bytes can make a search read out of bounds.
    fn decode(bytes: &[u8], n: usize) -> Result<FieldIndex, String> {
        let mut r = Reader { bytes, at: 0 };
        let kind = match r.u8()? {
            1 => FieldKind::Keyword,
            2 => FieldKind::Integer,
            3 => FieldKind::Float,
            4 => FieldKind::Bool,
            other => return Err(format!("unknown kind {other}")),
        };
        let flags = r.u8()?;
        if flags > 3 {
            return Err(format!("unknown flags {flags}"));
        }
        let data = match kind {
            FieldKind::Keyword | FieldKind::Bool => {
                let count = r.u32()? as usize;
                let mut values = Vec::with_capacity(count.min(r.left() / 4));
                for _ in 0..count {
                    let len = r.u32()? as usize;
                    let v = std::str::from_utf8(r.take(len)?)
                        .map_err(|_| "a value is not UTF-8".to_string())?;
                    values.push(v.to_string());
                }
                if values.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("values are not sorted".into());
                }
                let starts = r.u32s(count + 1)?;
                let total = r.left() / 4;
                let points = r.u32s(total)?;
                let ok_starts = starts.first() == Some(&0)
                    && starts.last() == Some(&(points.len() as u32))
                    && starts.windows(2).all(|w| w[0] <= w[1]);
                if !ok_starts {
                    return Err("postings do not fit their points".into());
                }
                for w in starts.windows(2) {
                    let list = &points[w[0] as usize..w[1] as usize];
                    if list.windows(2).any(|p| p[0] >= p[1])
                        || list.iter().any(|&p| p as usize >= n)
                    {
                        return Err("a posting list is not ascending points of the segment".into());
                    }
                }
                Data::Postings {
                    values,
                    starts,
                    points,
                }
            }
            FieldKind::Integer | FieldKind::Float => {
                let count = r.u32()? as usize;
                let raw = r.take(count.checked_mul(8).ok_or("count overflows")?)?;
                let values: Vec<f64> = raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect();
                let points = r.u32s(count)?;
                if values.iter().any(|x| x.is_nan()) || values.windows(2).any(|w| w[0] > w[1]) {
                    return Err("numbers are not sorted".into());
                }
                if points.iter().any(|&p| p as usize >= n) {
                    return Err("a point is not in the segment".into());
                }
                Data::Sorted { values, points }
            }
        };
        if r.left() != 0 {
            return Err(format!("{} stray bytes", r.left()));
        }
        let (arrays, big) = (flags & 1 != 0, flags & 2 != 0);
        if !arrays && !data.one_value_per_point() {
            return Err("a point holds two values of a field with no arrays".into());
        }
        Ok(FieldIndex::new(kind, data, arrays, big, n))
    }
}

impl Data {
    /// Whether no point appears twice (as a field without arrays is indexed).
    fn one_value_per_point(&self) -> bool {
        let points = match self {
            Data::Postings { points, .. } | Data::Sorted { points, .. } => points,
        };
        let mut sorted = points.clone();
        sorted.sort_unstable();
        sorted.windows(2).all(|w| w[0] != w[1])
    }
}

fn kind_code(kind: FieldKind) -> u8 {
    match kind {
        FieldKind::Keyword => 1,
        FieldKind::Integer => 2,
        FieldKind::Float => 3,
        FieldKind::Bool => 4,
    }
}

/// Reads little-endian values, refusing to run past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.left() {
            return Err("ends early".into());
        }
        let out = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32s(&mut self, count: usize) -> Result<Vec<u32>, String> {
        let raw = self.take(count.checked_mul(4).ok_or("count overflows")?)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Points sampled to estimate how many of a conjunction's candidates pass all its parts.
const SAMPLE: usize = 256;

impl Found<'_> {
    /// Whether every point found passes the lookup (else the filter must be tried on
    /// the candidates' metadata).
    pub fn exact(&self) -> bool {
        match self {
            Found::Field { exact, .. } => *exact,
            Found::Points(_) => true,
            Found::All { parts, partial } => !partial && parts.iter().all(Found::exact),
            Found::Any(parts) => parts.iter().all(Found::exact),
        }
    }

    /// Whether point `p` may pass, by the columns (true where a part has none): every
    /// point that passes the lookup passes this.
    pub fn passes(&self, p: u32) -> bool {
        match self {
            Found::Field { check, .. } => check.as_ref().is_none_or(|c| c.passes(p)),
            Found::Points(points) => points.binary_search(&p).is_ok(),
            Found::All { parts, .. } => parts.iter().all(|f| f.passes(p)),
            Found::Any(parts) => parts.iter().any(|f| f.passes(p)),
        }
    }

    /// At most about how many points: exact for one list; for `All`, its smallest part's
    /// count times the share of a sample of those that passes every part.
    pub fn estimate(&self) -> usize {
        match self {
            Found::Field { lists, .. } => lists.iter().map(|l| l.len()).sum(),
            Found::Points(points) => points.len(),
            Found::Any(parts) => parts.iter().map(Found::estimate).sum(),
            Found::All { parts, .. } => {
                let Some(smallest) = parts.iter().min_by_key(|f| f.estimate()) else {
                    return 0;
                };
                let sample = smallest.sample(SAMPLE);
                if sample.is_empty() {
                    return 0;
                }
                let passed = sample.iter().filter(|&&p| self.passes(p)).count();
                // Rounded up: a conjunction that some sampled point passes is not empty.
                (smallest.estimate() * passed).div_ceil(sample.len())
            }
        }
    }

    /// Up to about `max` of the points, spread over all of them.
    fn sample(&self, max: usize) -> Vec<u32> {
        match self {
            Found::Field { lists, .. } => {
                let total: usize = lists.iter().map(|l| l.len()).sum();
                let step = total.div_ceil(max.max(1)).max(1);
                lists
                    .iter()
                    .flat_map(|l| l.iter())
                    .step_by(step)
                    .copied()
                    .collect()
            }
            Found::Points(points) => {
                let step = points.len().div_ceil(max.max(1)).max(1);
                points.iter().step_by(step).copied().collect()
            }
            Found::All { parts, .. } => parts
                .iter()
                .min_by_key(|f| f.estimate())
                .map_or_else(Vec::new, |f| f.sample(max)),
            Found::Any(parts) => parts
                .iter()
                .flat_map(|f| f.sample(max / parts.len().max(1) + 1))
                .collect(),
        }
    }

    /// The points, ascending, each once, in a segment of `n` points. For `All`, those
    /// of its smallest part that pass the other parts' columns.
    pub fn gather(&self, n: usize) -> Vec<u32> {
        if let Found::Points(points) = self {
            return points.clone();
        }
        let mut out = Vec::with_capacity(self.estimate());
        self.collect(&mut out);
        ascending_once(out, n)
    }

    /// The points, in any order, some perhaps twice.
    fn collect(&self, out: &mut Vec<u32>) {
        match self {
            Found::Field { lists, .. } => lists.iter().for_each(|l| out.extend_from_slice(l)),
            Found::Points(points) => out.extend_from_slice(points),
            Found::All { parts, .. } => {
                let Some(at) = (0..parts.len()).min_by_key(|&i| parts[i].estimate()) else {
                    return;
                };
                let from = out.len();
                parts[at].collect(out);
                // The smallest part's points, checked against the others' columns.
                let others = || parts.iter().enumerate().filter(move |&(i, _)| i != at);
                let mut keep = from;
                for i in from..out.len() {
                    if others().all(|(_, f)| f.passes(out[i])) {
                        out[keep] = out[i];
                        keep += 1;
                    }
                }
                out.truncate(keep);
            }
            Found::Any(parts) => parts.iter().for_each(|f| f.collect(out)),
        }
    }
}

/// `points` (all below `n`) ascending, each once: sorted when they are few, else through
/// a bitset of the segment (one pass over `n / 64` words, cheaper than a sort of many).
fn ascending_once(mut points: Vec<u32>, n: usize) -> Vec<u32> {
    if points.len() < n / 64 {
        points.sort_unstable();
        points.dedup();
        return points;
    }
    let mut words = vec![0u64; n.div_ceil(64)];
    for &p in &points {
        if let Some(w) = words.get_mut(p as usize / 64) {
            *w |= 1 << (p % 64);
        }
    }
    points.clear();
    for (i, &w) in words.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            points.push((i * 64) as u32 + w.trailing_zeros());
            w &= w - 1;
        }
    }
    points
}

impl Check<'_> {
    fn passes(&self, p: u32) -> bool {
        match self {
            Check::Ordinals { column, wanted } => column.get(p as usize).is_some_and(|o| {
                // `wanted` is sorted: a few are compared in turn, many searched.
                *o != NO_VALUE
                    && if wanted.len() <= 8 {
                        wanted.contains(o)
                    } else {
                        wanted.binary_search(o).is_ok()
                    }
            }),
            Check::NumberIn { column, set } => column.get(p as usize).is_some_and(|&x| {
                !x.is_nan() && set.binary_search_by(|y| y.total_cmp(&(x + 0.0))).is_ok()
            }),
            Check::Numbers { column, ranges } => column.get(p as usize).is_some_and(|&x| {
                ranges.iter().any(|(low, high)| {
                    low.is_none_or(|(b, inclusive)| x > b || (inclusive && x == b))
                        && high.is_none_or(|(b, inclusive)| x < b || (inclusive && x == b))
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map};

    use super::*;
    use crate::filter::{Filter, FilterLimits};

    const LIMITS: FilterLimits = FilterLimits {
        max_depth: 8,
        max_terms: 64,
    };

    /// Points whose metadata are `metas`, in order.
    fn points(metas: &[Value]) -> Points {
        let mut points = Points::new(2);
        for (i, m) in metas.iter().enumerate() {
            let m: Map<String, Value> = m.as_object().cloned().unwrap_or_default();
            points.push(&format!("id{i}"), &[1.0, 0.0], m, None);
        }
        points
    }

    fn fields(value: Value) -> Fields {
        crate::params::parse_fields(&value).unwrap()
    }

    fn sample() -> (Points, FieldIndexes) {
        let points = points(&[
            json!({"lang": "en", "year": 2020, "tags": ["a", "b", "a"], "ok": true}),
            json!({"lang": "de", "year": 2021.5, "tags": ["b"], "ok": false}),
            json!({"lang": 7, "year": "2022", "tags": "a"}),
            json!({"lang": "en", "year": 9_007_199_254_740_993u64}),
            json!({}),
        ]);
        let declared =
            fields(json!({"lang": "keyword", "year": "integer", "tags": "keyword", "ok": "bool"}));
        let indexes = FieldIndexes::build(&points, &declared);
        (points, indexes)
    }

    /// What the indexes find for a filter, gathered; none when they cannot answer it.
    fn found(indexes: &FieldIndexes, points: &Points, filter: Value) -> Option<Vec<u32>> {
        let filter = Filter::parse(&filter, "filter", LIMITS).unwrap();
        let (lookup, _) = filter.lookup()?;
        indexes
            .find(&lookup, points)
            .map(|f| f.gather(points.len()))
    }

    #[test]
    fn lookups_find_a_superset_of_the_matching_points() {
        let (points, ix) = sample();
        let find = |f: Value| found(&ix, &points, f);
        assert_eq!(find(json!({"lang": "en"})), Some(vec![0, 3]));
        assert_eq!(find(json!({"lang": {"$in": ["de", "fr"]}})), Some(vec![1]));
        // a number on a keyword field: only reading metadata can answer
        assert_eq!(find(json!({"lang": 7})), None);
        assert_eq!(find(json!({"tags": {"$contains": "a"}})), Some(vec![0, 2]));
        assert_eq!(find(json!({"ok": true})), Some(vec![0]));
        assert_eq!(find(json!({"year": {"$gte": 2021}})), Some(vec![1, 3]));
        assert_eq!(
            find(json!({"year": {"$gt": 2020, "$lt": 2022}})),
            Some(vec![1])
        );
        assert_eq!(find(json!({"year": {"$lte": 2020}})), Some(vec![0]));
        assert_eq!(find(json!({"year": 2021.5})), Some(vec![1]));
        // negations have no lookup; a conjunction needs one indexed part, a union all
        assert_eq!(find(json!({"lang": {"$ne": "en"}})), None);
        assert_eq!(find(json!({"lang": "en", "other": 1})), Some(vec![0, 3]));
        assert_eq!(
            find(json!({"$or": [{"lang": "de"}, {"ok": true}]})),
            Some(vec![0, 1])
        );
        assert_eq!(find(json!({"$or": [{"lang": "de"}, {"other": 1}]})), None);
        assert_eq!(find(json!({"$id": {"$in": ["id4", "id9"]}})), Some(vec![4]));
        assert_eq!(find(json!({"unindexed": 1})), None);
        // an `$and` of two indexed parts: the smaller part's points
        assert_eq!(find(json!({"lang": "en", "ok": true})), Some(vec![0]));
    }

    #[test]
    fn lookups_say_when_they_are_exact_and_estimate_conjunctions() {
        let (points, ix) = sample();
        let exact = |f: Value| {
            let filter = Filter::parse(&f, "filter", LIMITS).unwrap();
            let (lookup, complete) = filter.lookup().unwrap();
            complete && ix.find(&lookup, &points).unwrap().exact()
        };
        assert!(exact(json!({"lang": "en"})));
        assert!(exact(json!({"year": {"$gte": 2021}})));
        assert!(exact(json!({"$or": [{"lang": "de"}, {"ok": true}]})));
        assert!(exact(json!({"$id": "id3"})));
        // an array was indexed: `$eq` does not match an array holding the value
        assert!(!exact(json!({"tags": "a"})));
        // an integer past 2^53 was indexed: equality is a superset
        assert!(!exact(json!({"year": 2020})));
        // a part with no lookup, or no index here
        assert!(!exact(json!({"lang": "en", "year": {"$ne": 1}})));
        assert!(!exact(json!({"lang": "en", "other": 1})));
        // columns check a point without its metadata
        let filter = Filter::parse(&json!({"lang": "en", "ok": true}), "filter", LIMITS).unwrap();
        let found = ix.find(&filter.lookup().unwrap().0, &points).unwrap();
        assert!(found.passes(0) && !found.passes(1) && !found.passes(3));
        assert_eq!(found.estimate(), 1, "a sample of the smaller part, checked");
    }

    #[test]
    fn minus_zero_is_zero_to_filters_and_indexes_alike() {
        let points = points(&[json!({"n": -0.0}), json!({"n": 0}), json!({"n": 1})]);
        let ix = FieldIndexes::build(&points, &fields(json!({"n": "float"})));
        for f in [
            json!({"n": {"$in": [0]}}),
            json!({"n": {"$in": [-0.0, 5]}}),
            json!({"n": 0}),
        ] {
            let filter = Filter::parse(&f, "filter", LIMITS).unwrap();
            let (lookup, complete) = filter.lookup().unwrap();
            let found = ix.find(&lookup, &points).unwrap();
            assert!(complete && found.exact(), "{f}");
            for p in 0..3u32 {
                let by_metadata =
                    filter.matches(points.id(p as usize), points.metadata(p as usize));
                assert_eq!(found.passes(p), by_metadata, "{f}: point {p}");
                assert_eq!(by_metadata, p < 2, "{f}: point {p}");
            }
        }
    }

    #[test]
    fn every_match_is_among_what_the_indexes_find() {
        let (points, ix) = sample();
        let filters = [
            json!({"lang": "en"}),
            json!({"tags": {"$contains": "b"}}),
            json!({"year": {"$gte": 2020.5}}),
            json!({"year": 9_007_199_254_740_993u64}),
            json!({"year": {"$in": [2020, 2022]}}),
            json!({"$and": [{"lang": "en"}, {"year": {"$lt": 3000}}]}),
        ];
        for f in filters {
            let candidates = found(&ix, &points, f.clone()).unwrap();
            let filter = Filter::parse(&f, "filter", LIMITS).unwrap();
            for p in 0..points.len() as u32 {
                if filter.matches(points.id(p as usize), points.metadata(p as usize)) {
                    assert!(candidates.contains(&p), "{f}: point {p} passes, not found");
                }
            }
        }
    }

    #[test]
    fn stored_indexes_read_back_the_same() {
        let (points, ix) = sample();
        let back = FieldIndexes::decode(ix.encode(), points.len()).unwrap();
        // (compared as stored: a column holds NaN for points without a number)
        assert_eq!(back.encode(), ix.encode());
        assert_eq!(format!("{back:?}"), format!("{ix:?}"));
        assert!(back.covers(&fields(json!({"lang": "keyword", "ok": "bool"}))));
        assert!(!back.covers(&fields(json!({"lang": "float"}))));
        assert_eq!(
            back.missing(&fields(json!({"lang": "keyword", "new": "float"}))),
            fields(json!({"new": "float"}))
        );
        // points past the segment are refused
        assert!(FieldIndexes::decode(ix.encode(), 2).is_err());
    }

    #[test]
    fn damaged_indexes_are_refused_never_a_panic() {
        let (points, ix) = sample();
        for (name, bytes) in ix.encode() {
            for cut in 0..bytes.len() {
                let _ = FieldIndexes::decode(vec![(name.clone(), bytes[..cut].to_vec())], 5);
            }
            for i in 0..bytes.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut damaged = bytes.clone();
                    damaged[i] ^= flip;
                    if let Ok(back) =
                        FieldIndexes::decode(vec![(name.clone(), damaged)], points.len())
                    {
                        // whatever reads back is safe to look up in
                        let _ = found(&back, &points, json!({"lang": "en"}));
                        let _ = found(&back, &points, json!({"year": {"$gte": 1}}));
                    }
                }
            }
        }
    }
}
