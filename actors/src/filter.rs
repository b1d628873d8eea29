//! The filter language of searches, gets, counts and deletes, in Chroma's `where` syntax so
//! that a Chroma user's filters work as written, with item ids as Qdrant's `has_id` does.
//!
//! ```text
//! {"lang": "en"}                          a bare value means $eq (every filter of 0.2 keeps its meaning)
//! {"year": {"$gte": 2000, "$lt": 2010}}   several operators on one field: all must hold
//! {"$or": [{"lang": "en"}, {"tags": {"$contains": "rust"}}]}
//! {"$and": [...]}, {"$not": {...}}        several keys at one level: all must hold
//! {"$id": {"$in": ["a", "b"]}}            item ids ($id: "a" is $eq)
//! ```
//!
//! Field operators: `$eq $ne $gt $gte $lt $lte $in $nin $contains $not_contains $exists`.
//! Meanings, where peers differ:
//! - Numbers compare as numbers (`3` matches `3.0`); a comparison across types matches
//!   nothing (`"3"` never equals `3`, `true` is not `1`).
//! - `$eq` compares whole values: an array field equals an array operand; use `$contains`
//!   to ask whether an array holds an element. An object operand without `$` keys is a
//!   literal object (as 0.2 compared it), compared member by member.
//! - `$ne`, `$nin` and `$not_contains` are the negations of `$eq`, `$in` and `$contains`:
//!   an item without the field matches them.
//! - Ranges take a number and match number fields only; a string operand is refused
//!   (strings have no order here that every client would agree on).
//! - `$in` and `$nin` take a list of strings, numbers and booleans; `$contains` one such value.
//!
//! A filter that cannot be read is refused with 400 `invalid_filter` and a message naming
//! where (`filter.$or[1].year.$gte`): never a silent empty answer. Limits (settings): how
//! deep operators nest, and how many conditions a filter holds.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::IndexError;

/// The error code of every refused filter.
pub const INVALID_FILTER: &str = "invalid_filter";

/// How large a filter may be (`vectord.max_filter_depth`, `vectord.max_filter_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterLimits {
    /// Operators nested in operators (`$and` in `$or` in `$not` ...), at most.
    pub max_depth: usize,
    /// Conditions (one operator on one field, or on ids), at most.
    pub max_terms: usize,
}

/// A filter, read and checked: what `matches` evaluates.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    node: Node,
    /// The filter's JSON text (object keys sorted, as serde_json writes them): equal
    /// filters have equal keys, which name remembered results.
    key: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Field { name: String, test: Test },
    Id(Test),
}

/// One operator and its operand.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    Eq(Value),
    Ne(Value),
    Range { op: RangeOp, bound: f64 },
    In(Values),
    Nin(Values),
    Contains(Value),
    NotContains(Value),
    Exists(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RangeOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// The operand of `$in` / `$nin`, ready for lookups that agree with `same` on every pair:
/// integers against integers exactly, anything else with a float as f64.
#[derive(Debug, Clone, PartialEq, Default)]
struct Values {
    strings: HashSet<String>,
    integers: HashSet<i128>,
    /// The integers as f64, and the other numbers; both sorted, for a binary search.
    integers_f64: Vec<f64>,
    floats: Vec<f64>,
    bools: [bool; 2],
}

impl Filter {
    /// Reads `value` (the request's `filter`), naming `path` (e.g. `filter` or
    /// `searches[3].filter`) in errors. An empty object matches everything.
    pub fn parse(value: &Value, path: &str, limits: FilterLimits) -> Result<Filter, IndexError> {
        let mut reader = Reader { limits, terms: 0 };
        let node = reader.filter(value, path, 0)?;
        Ok(Filter {
            node,
            key: serde_json::to_string(value).unwrap_or_default(),
        })
    }

    /// A filter of exact matches on every pair of `pairs` (the 0.2 form, still used by
    /// tests and callers that build filters in code).
    pub fn exact(pairs: &Map<String, Value>) -> Filter {
        let node = Node::All(
            pairs
                .iter()
                .map(|(k, v)| Node::Field {
                    name: k.clone(),
                    test: Test::Eq(v.clone()),
                })
                .collect(),
        );
        Filter {
            node,
            key: serde_json::to_string(pairs).unwrap_or_default(),
        }
    }

    /// Whether it matches everything (an empty object): searches skip it.
    pub fn is_empty(&self) -> bool {
        matches!(&self.node, Node::All(v) if v.is_empty())
    }

    /// The filter's canonical text: equal filters have equal keys.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the item `id` with `metadata` (none: `{}`) passes.
    pub fn matches(&self, id: &str, metadata: Option<&Map<String, Value>>) -> bool {
        static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
        self.node.matches(id, metadata.unwrap_or(&EMPTY))
    }
}

/// A value a field index can look up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
}

/// What a field index is asked about one field (see `Filter::lookup`).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldQuery<'a> {
    /// The field equals one of these, or is an array holding one of them.
    OneOf(Vec<Scalar<'a>>),
    /// The field is a number within these bounds, each `(value, inclusive)`.
    Range {
        low: Option<(f64, bool)>,
        high: Option<(f64, bool)>,
    },
}

/// The part of a filter that indexes can answer, as a superset: every item that passes
/// the filter passes its lookup, so the items a lookup finds are the only candidates,
/// each still checked against the whole filter. Negations (`$ne`, `$nin`, `$not`, ...)
/// have no lookup: they pass most items, which a graph walk finds as well.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<'a> {
    Field {
        name: &'a str,
        query: FieldQuery<'a>,
    },
    Ids(Vec<&'a str>),
    /// Items found by every one of these.
    All(Vec<Lookup<'a>>),
    /// Items found by any of these.
    Any(Vec<Lookup<'a>>),
}

impl Filter {
    /// What indexes can answer of this filter (none when nothing: a filter of negations),
    /// and whether that is the whole filter (`complete`: a point the lookup finds on
    /// indexes that answer it exactly passes the filter, with no metadata read).
    pub fn lookup(&self) -> Option<(Lookup<'_>, bool)> {
        self.node.lookup()
    }
}

impl Node {
    fn lookup(&self) -> Option<(Lookup<'_>, bool)> {
        match self {
            Node::All(nodes) => {
                let mut found: Vec<Lookup> = Vec::with_capacity(nodes.len());
                let mut complete = true;
                for node in nodes {
                    let Some((lookup, whole)) = node.lookup() else {
                        complete = false;
                        continue;
                    };
                    complete &= whole;
                    // Bounds on one field are one range (`$gte` and `$lt` of a year).
                    if let Lookup::Field {
                        name,
                        query: FieldQuery::Range { low, high },
                    } = &lookup
                    {
                        let same_field = found.iter_mut().find_map(|l| match l {
                            Lookup::Field {
                                name: n,
                                query: FieldQuery::Range { low, high },
                            } if n == name => Some((low, high)),
                            _ => None,
                        });
                        if let Some((l, h)) = same_field {
                            *l = tighter(*l, *low, true);
                            *h = tighter(*h, *high, false);
                            continue;
                        }
                    }
                    found.push(lookup);
                }
                match found.len() {
                    0 => None,
                    1 => found.pop().map(|l| (l, complete)),
                    _ => Some((Lookup::All(found), complete)),
                }
            }
            Node::Any(nodes) => {
                let parts = nodes.iter().map(Node::lookup).collect::<Option<Vec<_>>>()?;
                let complete = parts.iter().all(|(_, whole)| *whole);
                Some((
                    Lookup::Any(parts.into_iter().map(|(l, _)| l).collect()),
                    complete,
                ))
            }
            Node::Not(_) => None,
            Node::Field { name, test } => {
                let query = match test {
                    Test::Eq(v) | Test::Contains(v) => FieldQuery::OneOf(vec![as_scalar(v)?]),
                    Test::In(values) => FieldQuery::OneOf(values.scalars()),
                    Test::Range { op, bound } => {
                        let b = Some((*bound, matches!(op, RangeOp::Gte | RangeOp::Lte)));
                        match op {
                            RangeOp::Gt | RangeOp::Gte => FieldQuery::Range { low: b, high: None },
                            RangeOp::Lt | RangeOp::Lte => FieldQuery::Range { low: None, high: b },
                        }
                    }
                    Test::Ne(_) | Test::Nin(_) | Test::NotContains(_) | Test::Exists(_) => {
                        return None
                    }
                };
                // `$contains` holds of arrays only, which no exact answer covers.
                let whole = !matches!(test, Test::Contains(_));
                Some((Lookup::Field { name, query }, whole))
            }
            Node::Id(Test::Eq(Value::String(id))) => Some((Lookup::Ids(vec![id]), true)),
            Node::Id(Test::In(values)) => Some((
                Lookup::Ids(values.strings.iter().map(String::as_str).collect()),
                true,
            )),
            Node::Id(_) => None,
        }
    }
}

/// The tighter of two bounds: the larger low bound (`low`) or the smaller high one; at
/// equal values, the exclusive one.
fn tighter(a: Option<(f64, bool)>, b: Option<(f64, bool)>, low: bool) -> Option<(f64, bool)> {
    match (a, b) {
        (Some(x), Some(y)) => {
            let x_tighter = if x.0 == y.0 { !x.1 } else { (x.0 > y.0) == low };
            Some(if x_tighter { x } else { y })
        }
        (x, None) => x,
        (None, y) => y,
    }
}

fn as_scalar(v: &Value) -> Option<Scalar<'_>> {
    match v {
        Value::String(s) => Some(Scalar::Str(s)),
        Value::Number(n) => n.as_f64().map(Scalar::Num),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

impl Values {
    /// Every value of the list, for lookups.
    fn scalars(&self) -> Vec<Scalar<'_>> {
        let strings = self.strings.iter().map(|s| Scalar::Str(s));
        let numbers = self.integers_f64.iter().chain(&self.floats);
        let bools = [false, true]
            .into_iter()
            .filter(|&b| self.bools[b as usize]);
        strings
            .chain(numbers.map(|&x| Scalar::Num(x)))
            .chain(bools.map(Scalar::Bool))
            .collect()
    }
}

impl Node {
    fn matches(&self, id: &str, metadata: &Map<String, Value>) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|n| n.matches(id, metadata)),
            Node::Any(nodes) => nodes.iter().any(|n| n.matches(id, metadata)),
            Node::Not(node) => !node.matches(id, metadata),
            Node::Field { name, test } => test.matches(metadata.get(name)),
            Node::Id(test) => test.matches_id(id),
        }
    }
}

impl Test {
    fn matches(&self, field: Option<&Value>) -> bool {
        match self {
            Test::Eq(want) => field.is_some_and(|v| same(v, want)),
            Test::Ne(want) => !field.is_some_and(|v| same(v, want)),
            Test::Range { op, bound } => field
                .and_then(Value::as_f64)
                .is_some_and(|v| op.holds(v, *bound)),
            Test::In(values) => field.is_some_and(|v| values.contains(v)),
            Test::Nin(values) => !field.is_some_and(|v| values.contains(v)),
            Test::Contains(want) => field.is_some_and(|v| contains(v, want)),
            Test::NotContains(want) => !field.is_some_and(|v| contains(v, want)),
            Test::Exists(want) => field.is_some() == *want,
        }
    }

    fn matches_id(&self, id: &str) -> bool {
        match self {
            Test::Eq(Value::String(want)) => id == want,
            Test::Ne(Value::String(want)) => id != want,
            Test::In(values) => values.strings.contains(id),
            Test::Nin(values) => !values.strings.contains(id),
            _ => false, // refused by the reader
        }
    }
}

impl RangeOp {
    fn holds(self, v: f64, bound: f64) -> bool {
        match self {
            RangeOp::Gt => v > bound,
            RangeOp::Gte => v >= bound,
            RangeOp::Lt => v < bound,
            RangeOp::Lte => v <= bound,
        }
    }
}

impl Values {
    fn contains(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.strings.contains(s.as_str()),
            Value::Number(n) => {
                // `+ 0.0` makes -0 0: numbers compare by value, as `$eq` and ranges do.
                let sorted_has = |list: &[f64], x: f64| {
                    list.binary_search_by(|y| y.total_cmp(&(x + 0.0))).is_ok()
                };
                match (integer(n), n.as_f64()) {
                    (Some(i), Some(x)) => self.integers.contains(&i) || sorted_has(&self.floats, x),
                    (None, Some(x)) => {
                        sorted_has(&self.floats, x) || sorted_has(&self.integers_f64, x)
                    }
                    _ => false,
                }
            }
            Value::Bool(b) => self.bools[*b as usize],
            _ => false,
        }
    }
}

/// A number written as an integer, exactly.
fn integer(n: &serde_json::Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Equality of two JSON values, numbers by their value (`3` equals `3.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            // Integers beyond 2^53 compare exactly, not through f64.
            _ if x.is_i64() && y.is_i64() => x.as_i64() == y.as_i64(),
            _ if x.is_u64() && y.is_u64() => x.as_u64() == y.as_u64(),
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

/// Whether `field` is an array holding an element equal to `want`.
fn contains(field: &Value, want: &Value) -> bool {
    match field {
        Value::Array(items) => items.iter().any(|v| same(v, want)),
        _ => false,
    }
}

/// Reads a filter, counting its conditions against the limits.
struct Reader {
    limits: FilterLimits,
    terms: usize,
}

fn invalid(path: &str, message: impl std::fmt::Display) -> IndexError {
    IndexError::invalid(INVALID_FILTER, format!("{path}: {message}"))
}

impl Reader {
    /// A filter object: each key a field, `$id`, or `$and` / `$or` / `$not`.
    fn filter(&mut self, value: &Value, path: &str, depth: usize) -> Result<Node, IndexError> {
        if depth > self.limits.max_depth {
            return Err(invalid(
                path,
                format_args!(
                    "operators nest deeper than {} (vectord.max_filter_depth)",
                    self.limits.max_depth
                ),
            ));
        }
        let Value::Object(object) = value else {
            return Err(invalid(
                path,
                format_args!("a filter is an object, not {}", kind(value)),
            ));
        };
        let mut all = Vec::with_capacity(object.len());
        for (key, operand) in object {
            let here = format!("{path}.{key}");
            let node =
                match key.as_str() {
                    "$and" | "$or" => {
                        let nodes = self.list_of_filters(operand, &here, depth)?;
                        if key == "$and" {
                            Node::All(nodes)
                        } else {
                            Node::Any(nodes)
                        }
                    }
                    "$not" => Node::Not(Box::new(self.filter(operand, &here, depth + 1)?)),
                    "$id" => Node::Id(self.id_test(operand, &here)?),
                    op if op.starts_with('$') => return Err(invalid(
                        &here,
                        "unknown operator (at this level: $and, $or, $not, $id, or a field name)",
                    )),
                    name => self.field(name, operand, &here)?,
                };
            all.push(node);
        }
        Ok(match all.len() {
            1 => all.pop().unwrap_or(Node::All(Vec::new())),
            _ => Node::All(all),
        })
    }

    fn list_of_filters(
        &mut self,
        operand: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Vec<Node>, IndexError> {
        let Value::Array(items) = operand else {
            return Err(invalid(
                path,
                format_args!("takes a list of filters, not {}", kind(operand)),
            ));
        };
        if items.is_empty() {
            return Err(invalid(path, "takes at least one filter"));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.filter(item, &format!("{path}[{i}]"), depth + 1))
            .collect()
    }

    /// The condition on one field: a bare value (`$eq`), a literal object, or an object of
    /// operators.
    fn field(&mut self, name: &str, operand: &Value, path: &str) -> Result<Node, IndexError> {
        let operators = match operand {
            Value::Object(o) if o.keys().any(|k| k.starts_with('$')) => o,
            _ => {
                self.count(path)?;
                return Ok(Node::Field {
                    name: name.to_string(),
                    test: Test::Eq(operand.clone()),
                });
            }
        };
        if let Some(plain) = operators.keys().find(|k| !k.starts_with('$')) {
            return Err(invalid(
                path,
                format_args!(
                    "mixes operators with the plain key {plain:?} (an object of operators, or a literal object, not both)"
                ),
            ));
        }
        let mut tests = Vec::with_capacity(operators.len());
        for (op, value) in operators {
            let here = format!("{path}.{op}");
            self.count(&here)?;
            tests.push(Node::Field {
                name: name.to_string(),
                test: field_test(op, value, &here)?,
            });
        }
        Ok(match tests.len() {
            1 => tests.pop().unwrap_or(Node::All(Vec::new())),
            _ => Node::All(tests),
        })
    }

    /// `$id`: an id (`$eq`), or an object of `$eq`, `$ne`, `$in`, `$nin` on ids.
    fn id_test(&mut self, operand: &Value, path: &str) -> Result<Test, IndexError> {
        self.count(path)?;
        let (op, value, here) = match operand {
            Value::String(_) => ("$eq", operand, path.to_string()),
            Value::Object(o) if o.len() == 1 => {
                let (op, value) = o.iter().next().ok_or_else(|| invalid(path, "is empty"))?;
                (op.as_str(), value, format!("{path}.{op}"))
            }
            _ => {
                return Err(invalid(
                    path,
                    "takes an id, or one of {\"$eq\": id}, {\"$ne\": id}, {\"$in\": [ids]}, {\"$nin\": [ids]}",
                ))
            }
        };
        let test = match op {
            "$eq" | "$ne" | "$in" | "$nin" => field_test(op, value, &here)?,
            _ => {
                return Err(invalid(
                    &here,
                    "unknown operator on ids (use $eq, $ne, $in or $nin)",
                ))
            }
        };
        let strings_only = match &test {
            Test::Eq(v) | Test::Ne(v) => v.is_string(),
            Test::In(v) | Test::Nin(v) => {
                v.integers.is_empty() && v.floats.is_empty() && !v.bools[0] && !v.bools[1]
            }
            _ => false,
        };
        if !strings_only {
            return Err(invalid(&here, "ids are strings"));
        }
        Ok(test)
    }

    fn count(&mut self, path: &str) -> Result<(), IndexError> {
        self.terms += 1;
        if self.terms > self.limits.max_terms {
            return Err(invalid(
                path,
                format_args!(
                    "the filter holds more than {} conditions (vectord.max_filter_keys)",
                    self.limits.max_terms
                ),
            ));
        }
        Ok(())
    }
}

/// One operator on a field.
fn field_test(op: &str, value: &Value, path: &str) -> Result<Test, IndexError> {
    let range = |op| match value.as_f64() {
        Some(bound) if value.is_number() => Ok(Test::Range { op, bound }),
        _ => Err(invalid(
            path,
            format_args!(
                "takes a number, not {} (ranges apply to numbers only)",
                kind(value)
            ),
        )),
    };
    match op {
        "$eq" => Ok(Test::Eq(value.clone())),
        "$ne" => Ok(Test::Ne(value.clone())),
        "$gt" => range(RangeOp::Gt),
        "$gte" => range(RangeOp::Gte),
        "$lt" => range(RangeOp::Lt),
        "$lte" => range(RangeOp::Lte),
        "$in" => Ok(Test::In(values(value, path)?)),
        "$nin" => Ok(Test::Nin(values(value, path)?)),
        "$contains" => Ok(Test::Contains(scalar(value, path)?)),
        "$not_contains" => Ok(Test::NotContains(scalar(value, path)?)),
        "$exists" => match value {
            Value::Bool(b) => Ok(Test::Exists(*b)),
            _ => Err(invalid(
                path,
                format_args!("takes true or false, not {}", kind(value)),
            )),
        },
        _ => Err(invalid(
            path,
            "unknown operator (on a field: $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $contains, $not_contains, $exists)",
        )),
    }
}

/// A string, number or boolean.
fn scalar(value: &Value, path: &str) -> Result<Value, IndexError> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(value.clone()),
        _ => Err(invalid(
            path,
            format_args!("takes a string, number or boolean, not {}", kind(value)),
        )),
    }
}

/// The list of `$in` / `$nin`.
fn values(value: &Value, path: &str) -> Result<Values, IndexError> {
    let Value::Array(items) = value else {
        return Err(invalid(
            path,
            format_args!("takes a list, not {}", kind(value)),
        ));
    };
    let mut out = Values::default();
    for (i, item) in items.iter().enumerate() {
        match scalar(item, &format!("{path}[{i}]"))? {
            Value::String(s) => {
                out.strings.insert(s);
            }
            Value::Bool(b) => out.bools[b as usize] = true,
            Value::Number(n) => match (integer(&n), n.as_f64()) {
                (Some(i), Some(x)) => {
                    out.integers.insert(i);
                    out.integers_f64.push(x);
                }
                (_, x) => out.floats.extend(x.map(|x| x + 0.0)),
            },
            _ => {}
        }
    }
    for list in [&mut out.integers_f64, &mut out.floats] {
        list.sort_by(f64::total_cmp);
        list.dedup();
    }
    Ok(out)
}

/// What a JSON value is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const LIMITS: FilterLimits = FilterLimits {
        max_depth: 4,
        max_terms: 8,
    };

    fn filter(value: Value) -> Filter {
        Filter::parse(&value, "filter", LIMITS).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    fn refused(value: Value) -> String {
        match Filter::parse(&value, "filter", LIMITS) {
            Ok(f) => panic!("{value} was taken: {f:?}"),
            Err(IndexError::Invalid { code, message }) => {
                assert_eq!(code, INVALID_FILTER, "{message}");
                message
            }
            Err(e) => panic!("{value}: {e:?}"),
        }
    }

    fn passes(f: &Value, id: &str, metadata: Value) -> bool {
        let Value::Object(m) = metadata else {
            panic!("metadata is an object")
        };
        filter(f.clone()).matches(id, Some(&m))
    }

    #[test]
    fn a_bare_value_is_an_exact_match_as_in_0_2() {
        let f = json!({"lang": "en", "n": 3, "meta": {"a": [1, 2]}});
        assert!(passes(
            &f,
            "x",
            json!({"lang": "en", "n": 3, "meta": {"a": [1, 2]}, "z": 1})
        ));
        assert!(!passes(
            &f,
            "x",
            json!({"lang": "fr", "n": 3, "meta": {"a": [1, 2]}})
        ));
        assert!(!passes(&f, "x", json!({"lang": "en", "n": 3})));
        assert!(filter(json!({})).is_empty());
        assert!(filter(json!({})).matches("x", None));
    }

    #[test]
    fn numbers_compare_as_numbers_and_types_never_mix() {
        let f = json!({"n": 3});
        assert!(passes(&f, "x", json!({"n": 3.0})));
        assert!(!passes(&f, "x", json!({"n": "3"})));
        assert!(!passes(&json!({"n": 1}), "x", json!({"n": true})));
        assert!(passes(
            &json!({"n": {"$in": [1, 2.5]}}),
            "x",
            json!({"n": 2.5})
        ));
        assert!(passes(&json!({"n": {"$in": [1.0]}}), "x", json!({"n": 1})));
        assert!(!passes(&json!({"n": {"$in": ["1"]}}), "x", json!({"n": 1})));
        // Large integers compare exactly, in $in too.
        let big = json!({"n": 9_007_199_254_740_993u64});
        assert!(!passes(&big, "x", json!({"n": 9_007_199_254_740_992u64})));
        assert!(passes(&big, "x", json!({"n": 9_007_199_254_740_993u64})));
        let big_in = json!({"n": {"$in": [9_007_199_254_740_993u64, 1.5]}});
        assert!(passes(&big_in, "x", json!({"n": 9_007_199_254_740_993u64})));
        assert!(!passes(
            &big_in,
            "x",
            json!({"n": 9_007_199_254_740_992u64})
        ));
        assert!(passes(&big_in, "x", json!({"n": 1.5})));
        assert!(passes(&json!({"n": {"$in": [2]}}), "x", json!({"n": 2.0})));
    }

    #[test]
    fn ranges_apply_to_numbers() {
        let f = json!({"year": {"$gte": 2000, "$lt": 2010}});
        assert!(passes(&f, "x", json!({"year": 2000})));
        assert!(passes(&f, "x", json!({"year": 2009.5})));
        assert!(!passes(&f, "x", json!({"year": 2010})));
        assert!(!passes(&f, "x", json!({"year": "2005"})));
        assert!(!passes(&f, "x", json!({})));
        assert!(passes(&json!({"p": {"$gt": -1}}), "x", json!({"p": 0})));
        assert!(passes(&json!({"p": {"$lte": 0}}), "x", json!({"p": 0})));
        let message = refused(json!({"year": {"$gte": "2000"}}));
        assert!(
            message.contains("filter.year.$gte") && message.contains("numbers"),
            "{message}"
        );
    }

    #[test]
    fn negations_match_items_without_the_field() {
        for f in [
            json!({"lang": {"$ne": "en"}}),
            json!({"lang": {"$nin": ["en"]}}),
            json!({"tags": {"$not_contains": "a"}}),
            json!({"lang": {"$exists": false}}),
            json!({"$not": {"lang": "en"}}),
        ] {
            assert!(passes(&f, "x", json!({})), "{f}");
        }
        assert!(!passes(
            &json!({"lang": {"$ne": "en"}}),
            "x",
            json!({"lang": "en"})
        ));
        assert!(passes(
            &json!({"lang": {"$exists": true}}),
            "x",
            json!({"lang": null})
        ));
    }

    #[test]
    fn contains_asks_an_array_for_an_element() {
        let f = json!({"tags": {"$contains": "rust"}});
        assert!(passes(&f, "x", json!({"tags": ["go", "rust"]})));
        assert!(!passes(&f, "x", json!({"tags": ["go"]})));
        assert!(!passes(&f, "x", json!({"tags": "rust"})));
        assert!(passes(
            &json!({"v": {"$contains": 2}}),
            "x",
            json!({"v": [1, 2.0]})
        ));
        // $eq compares whole arrays.
        assert!(passes(
            &json!({"tags": ["go"]}),
            "x",
            json!({"tags": ["go"]})
        ));
        assert!(!passes(
            &json!({"tags": "go"}),
            "x",
            json!({"tags": ["go"]})
        ));
    }

    #[test]
    fn and_or_not_combine() {
        let f = json!({"$or": [{"lang": "en"}, {"$and": [{"lang": "fr"}, {"n": {"$gt": 5}}]}]});
        assert!(passes(&f, "x", json!({"lang": "en"})));
        assert!(passes(&f, "x", json!({"lang": "fr", "n": 6})));
        assert!(!passes(&f, "x", json!({"lang": "fr", "n": 5})));
        let not = json!({"$not": {"$or": [{"a": 1}, {"b": 1}]}});
        assert!(passes(&not, "x", json!({"a": 2})));
        assert!(!passes(&not, "x", json!({"b": 1})));
    }

    #[test]
    fn ids_are_filtered_by_id() {
        assert!(passes(&json!({"$id": "a"}), "a", json!({})));
        assert!(!passes(&json!({"$id": "a"}), "b", json!({})));
        let f = json!({"$id": {"$in": ["a", "b"]}, "lang": "en"});
        assert!(passes(&f, "b", json!({"lang": "en"})));
        assert!(!passes(&f, "c", json!({"lang": "en"})));
        assert!(passes(&json!({"$id": {"$nin": ["a"]}}), "c", json!({})));
        assert!(passes(&json!({"$id": {"$ne": "a"}}), "c", json!({})));
        let message = refused(json!({"$id": {"$in": [1]}}));
        assert!(
            message.contains("filter.$id.$in") && message.contains("strings"),
            "{message}"
        );
        refused(json!({"$id": {"$gt": "a"}}));
        refused(json!({"$id": 3}));
    }

    #[test]
    fn what_cannot_be_read_is_refused_naming_where() {
        let cases = [
            (json!({"year": {"$gtee": 1}}), "filter.year.$gtee"),
            (json!({"$nor": []}), "filter.$nor"),
            (
                json!({"$or": [{"a": 1}, {"b": {"$in": 3}}]}),
                "filter.$or[1].b.$in",
            ),
            (json!({"$or": []}), "filter.$or"),
            (json!({"$or": {"a": 1}}), "filter.$or"),
            (json!({"$and": [1]}), "filter.$and[0]"),
            (json!({"a": {"$eq": 1, "b": 2}}), "filter.a"),
            (json!({"a": {"$exists": 1}}), "filter.a.$exists"),
            (json!({"a": {"$contains": [1]}}), "filter.a.$contains"),
            (json!({"a": {"$in": [[1]]}}), "filter.a.$in[0]"),
            (json!([1]), "filter"),
            (json!({"$not": 1}), "filter.$not"),
        ];
        for (value, path) in cases {
            let message = refused(value.clone());
            assert!(
                message.starts_with(&format!("{path}:")),
                "{value}: {message}"
            );
        }
    }

    #[test]
    fn limits_on_depth_and_conditions_are_settings() {
        let mut deep = json!({"a": 1});
        for _ in 0..LIMITS.max_depth {
            deep = json!({"$not": deep});
        }
        filter(deep.clone());
        let message = refused(json!({"$not": deep}));
        assert!(message.contains("max_filter_depth"), "{message}");
        let many: Map<String, Value> = (0..LIMITS.max_terms + 1)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        let message = refused(Value::Object(many));
        assert!(message.contains("max_filter_keys"), "{message}");
        let wide = json!({"a": {"$in": (0..1000).collect::<Vec<_>>()}});
        assert!(passes(&wide, "x", json!({"a": 999})));
    }

    #[test]
    fn equal_filters_have_equal_keys() {
        let a = filter(json!({"b": 1, "a": {"$in": [1, 2]}}));
        let b = filter(json!({"a": {"$in": [1, 2]}, "b": 1}));
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), filter(json!({"b": 2})).key());
        assert_eq!(
            Filter::exact(json!({"a": 1}).as_object().unwrap()).key(),
            filter(json!({"a": 1})).key()
        );
    }
}
