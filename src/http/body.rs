//! Reading request bodies: the size limit (413) and JSON decoding that names the field
//! at fault (400), with unknown fields refused by the request types themselves.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::decimal;
use super::errors::ApiError;

/// Reads the whole body, refusing more than `limit` bytes (early, from Content-Length,
/// when the client sent one).
pub async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = declared_length(req, limit)?;
    read_chunks(payload, limit, declared, |_| Ok(())).await
}

/// Reads the body of a write, counted against the budget of write bytes held by the
/// process (in KiB permits, held by the returned permit until the write is done): a
/// write that would pass it is refused with 503 `busy` before more of it is read, so a
/// flood of large writes cannot grow memory without limit.
pub async fn read_budgeted(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(web::Bytes, OwnedSemaphorePermit), ApiError> {
    let busy = || {
        vectord_actors::metrics::metrics()
            .busy_rejections
            .with_label_values(&["write_bytes"])
            .inc();
        ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many bytes of writes are waiting in vectord (vectord.max_write_backlog_bytes); retry shortly",
            )
        }
    };
    let kib = |n: usize| (n.div_ceil(1024)).max(1) as u32;
    let declared = declared_length(req, limit)?;
    let mut permit = budget
        .clone()
        .try_acquire_many_owned(kib(declared.unwrap_or(0)))
        .map_err(|_| busy())?;
    let mut held = kib(declared.unwrap_or(0)) as usize * 1024;
    let body = read_chunks(payload, limit, declared, |len| {
        if len > held {
            // A body longer than announced (or not announced): take more as it comes.
            let more = kib(len - held);
            let extra = budget
                .clone()
                .try_acquire_many_owned(more)
                .map_err(|_| busy())?;
            permit.merge(extra);
            held += more as usize * 1024;
        }
        Ok(())
    })
    .await?;
    Ok((body, permit))
}

/// The Content-Length the client announced, refused with 413 when it passes `limit`.
fn declared_length(req: &HttpRequest, limit: usize) -> Result<Option<usize>, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_big(limit));
    }
    Ok(declared)
}

/// Reads the body chunk by chunk, up to `limit` bytes; `grown` hears the length read so
/// far after every chunk and may refuse to go on.
async fn read_chunks(
    mut payload: web::Payload,
    limit: usize,
    declared: Option<usize>,
    mut grown: impl FnMut(usize) -> Result<(), ApiError>,
) -> Result<web::Bytes, ApiError> {
    // Reserve from Content-Length only up to 1 MiB: a client that announces 64 MiB and
    // sends nothing must not hold 64 MiB of this process.
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit).min(1 << 20));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("bad_body", format!("reading the body failed: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_big(limit));
        }
        body.extend_from_slice(&chunk);
        grown(body.len())?;
    }
    Ok(body.freeze())
}

fn too_big(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body is larger than the limit of {limit} bytes"),
    )
}

/// Decodes JSON into `T`; the message names the path of the bad field (`items[3].vector`).
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "request body is empty: expected a JSON object",
        ));
    }
    // Every body is an object; serde alone would also read a struct from a list (`[{}]`).
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(ApiError::bad_request(
            "invalid_json",
            "request body must be a JSON object",
        ));
    }
    // Fast path: plain serde_json. Only a body that fails is decoded again with path
    // tracking, to say where it failed.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let err = match result {
        Ok(_) => match de.end() {
            Err(e) => format!("invalid JSON body: {e}"),
            Ok(()) => "invalid JSON body".to_string(),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." {
                format!("invalid JSON body: {inner}")
            } else {
                format!("invalid JSON at {path}: {inner}")
            }
        }
    };
    Err(ApiError::bad_request("invalid_json", err))
}

/// Deserializes a count or size (`#[serde(deserialize_with)]`): a non-negative integer,
/// also when written as a whole float (`24.0`, as JSON Schema and many clients count it).
pub fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    use serde::de::Error;
    let n: serde_json::Number = serde::Deserialize::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return usize::try_from(u).map_err(|_| D::Error::custom(format!("{u} is too large")));
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 2f64.powi(53) => Ok(f as usize),
        _ => Err(D::Error::custom(format!(
            "expected a non-negative whole number, got {n}"
        ))),
    }
}

/// `whole` for an optional field (absent or `null` is `None`).
pub fn whole_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole")] usize);
    let v: Option<Whole> = serde::Deserialize::deserialize(d)?;
    Ok(v.map(|Whole(n)| n))
}

/// Deserializes a vector (`#[serde(deserialize_with)]`) from its JSON text: each number is
/// checked against JSON's grammar, then read straight to the nearest f32 by the standard
/// library (correctly rounded, and about twice as fast as serde's exact f64 parsing that
/// the metadata needs). A value beyond f32's range becomes infinite and is then refused by
/// the index's checks with a message naming the item.
///
/// A JSON string instead is read as the base64 (standard alphabet, padded) of the
/// vector's little-endian f32 values: what clients send to skip writing (and vectord
/// reading) decimal numbers.
pub fn f32_vector<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    use serde::de::Error;
    let raw: Box<serde_json::value::RawValue> = serde::Deserialize::deserialize(d)?;
    let text = raw.get();
    if text.starts_with('"') {
        let encoded: String = serde_json::from_str(text).map_err(D::Error::custom)?;
        return from_base64(&encoded).map_err(D::Error::custom);
    }
    parse_numbers(text).map_err(D::Error::custom)
}

/// A vector from the base64 of its little-endian f32 values.
pub fn from_base64(encoded: &str) -> Result<Vec<f32>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| {
            format!("a vector given as a string must be base64 of little-endian f32 values: {e}")
        })?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "a base64 vector holds {} bytes, not a whole number of 4-byte f32 values",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The numbers of a JSON array text, as f32.
fn parse_numbers(text: &str) -> Result<Vec<f32>, String> {
    let mut cursor = Cursor { text, at: 0 };
    cursor.skip_ws();
    let numbers = cursor.numbers()?;
    cursor.skip_ws();
    if cursor.at != text.len() {
        return Err(format!(
            "expected an array of numbers, got {}",
            preview(text)
        ));
    }
    Ok(numbers)
}

/// A value of a flat JSON object decoded by `plain_object`.
#[derive(Debug, PartialEq)]
pub enum Plain {
    Numbers(Vec<f32>),
    Whole(usize),
    Null,
}

/// Decodes, in one pass, a JSON object whose keys are among `keys` (plain: no escapes, no
/// repeats) and whose values are arrays of numbers, non-negative integers or `null` — the
/// shape of nearly every search. Anything else (or anything invalid) is `None`, found at
/// the first byte that does not fit, and the caller decodes the body with serde, which also
/// names what is wrong. This saves serde's separate `RawValue` scan of the numbers: by
/// `perf` on the search route, decoding went from ~27 % to ~21 % of a trivial search's CPU.
pub fn plain_object<'a>(bytes: &'a [u8], keys: &[&str]) -> Option<Vec<(&'a str, Plain)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut cursor = Cursor { text, at: 0 };
    cursor.skip_ws();
    let fields = cursor.plain_fields(keys)?;
    cursor.skip_ws();
    (cursor.at == text.len()).then_some(fields)
}

/// `plain_object` for each object of the list under `list` in `{"<list>": [{...}, ...]}`
/// (the shape of a batch search); `None` as soon as anything does not fit.
pub fn plain_objects<'a>(
    bytes: &'a [u8],
    list: &str,
    keys: &[&str],
) -> Option<Vec<Vec<(&'a str, Plain)>>> {
    plain_list(bytes, list, |cursor| cursor.plain_fields(keys))
}

/// One item of an `add` batch decoded by `plain_items`.
pub struct PlainItem {
    pub id: String,
    pub vector: Vec<f32>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub document: Option<String>,
}

/// Decodes, in one pass, an `add` body of the usual shape: `{"items": [...]}` whose items
/// have a plain `id` (no escapes), a `vector` of numbers and, optionally, `metadata` that
/// is `null` or an object (that one decoded by serde where it stands) and a `document`
/// that is `null` or a string (escapes and all). Anything else is
/// `None`, and the caller decodes the body with serde, which also names what is wrong. This
/// saves serde's separate `RawValue` scan of every vector: by `perf`, ~40 % of decoding a
/// batch.
pub fn plain_items(bytes: &[u8]) -> Option<Vec<PlainItem>> {
    plain_list(bytes, "items", Cursor::plain_item)
}

/// Decodes, in one pass, a body `{"<list>": [e, ...]}` of one member, a non-empty list
/// whose elements `element` reads (`None` as soon as anything does not fit).
fn plain_list<'a, T>(
    bytes: &'a [u8],
    list: &str,
    mut element: impl FnMut(&mut Cursor<'a>) -> Option<T>,
) -> Option<Vec<T>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut cursor = Cursor { text, at: 0 };
    let mut found = None;
    cursor.skip_ws();
    cursor.object(|cursor, key| {
        (key == list && found.is_none()).then_some(())?;
        cursor.eat(b'[').then_some(())?;
        let mut elements = Vec::new();
        loop {
            cursor.skip_ws();
            elements.push(element(cursor)?);
            cursor.skip_ws();
            if cursor.eat(b']') {
                break;
            }
            cursor.eat(b',').then_some(())?;
        }
        found = Some(elements);
        Some(())
    })?;
    cursor.skip_ws();
    (cursor.at == text.len()).then_some(())?;
    found
}

/// Levels of arrays and objects in `value` (a scalar is 0).
fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A position in a JSON text, for the shapes decoded by hand on the hot path.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.at += 1;
        }
        found
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.text[self.at..].starts_with(word);
        if found {
            self.at += word.len();
        }
        found
    }

    /// A string without escapes or control characters (`None` for anything else).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"').then_some(())?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        let s = &self.text[start..self.at];
        self.at += 1;
        Some(s)
    }

    /// A vector: an array of numbers, or a string of base64 (`None` for anything else,
    /// a bad one included: serde's path then names what is wrong).
    fn vector(&mut self) -> Option<Vec<f32>> {
        if self.peek()? == b'"' {
            return from_base64(self.plain_string()?).ok();
        }
        self.numbers().ok()
    }

    /// The object at the cursor, `{"key": value, ...}` with plain keys: `member` reads the
    /// value of each key (the cursor at it), or refuses the key. `None` at the first byte
    /// that does not fit; the cursor is left after the `}`.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{').then_some(())?;
        self.skip_ws();
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            self.skip_ws();
            let key = self.plain_string()?;
            self.skip_ws();
            self.eat(b':').then_some(())?;
            self.skip_ws();
            member(self, key)?;
            self.skip_ws();
            if self.eat(b'}') {
                return Some(());
            }
            self.eat(b',').then_some(())?;
        }
    }

    /// The object at the cursor as `plain_object` reads it: keys among `keys`, each at
    /// most once, values that are arrays of numbers, non-negative integers or `null`.
    fn plain_fields(&mut self, keys: &[&str]) -> Option<Vec<(&'a str, Plain)>> {
        let mut fields: Vec<(&str, Plain)> = Vec::with_capacity(4);
        self.object(|cursor, key| {
            // Bounded work: at most `keys.len()` fields are ever held or compared.
            if !keys.contains(&key) || fields.iter().any(|(k, _)| *k == key) {
                return None;
            }
            let value = match cursor.peek()? {
                b'[' | b'"' => Plain::Numbers(cursor.vector()?),
                b'n' => {
                    cursor.eat_word("null").then_some(())?;
                    Plain::Null
                }
                _ => Plain::Whole(cursor.whole()?),
            };
            fields.push((key, value));
            Some(())
        })?;
        Some(fields)
    }

    /// One item of `plain_items`: each of `id` and `vector` exactly once, `metadata` and
    /// `document` at most once, in any order (`None` for anything else).
    fn plain_item(&mut self) -> Option<PlainItem> {
        let (mut id, mut vector, mut metadata, mut document) = (None, None, None, None);
        self.object(|cursor, key| {
            match key {
                "id" if id.is_none() => id = Some(cursor.plain_string()?.to_string()),
                "vector" if vector.is_none() => vector = Some(cursor.vector()?),
                "metadata" if metadata.is_none() => metadata = Some(cursor.metadata()?),
                "document" if document.is_none() => document = Some(cursor.text()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(PlainItem {
            id: id?,
            vector: vector?,
            metadata: metadata.flatten(),
            document: document.flatten(),
        })
    }

    /// `null` (`Some(None)`) or a string, escapes and all (decoded by serde where it
    /// stands); `None` for anything else.
    fn text(&mut self) -> Option<Option<String>> {
        if self.eat_word("null") {
            return Some(None);
        }
        if self.peek()? != b'"' {
            return None;
        }
        let mut stream =
            serde_json::Deserializer::from_str(&self.text[self.at..]).into_iter::<String>();
        let text = stream.next()?.ok()?;
        self.at += stream.byte_offset();
        Some(Some(text))
    }

    /// `null` (`Some(None)`) or an object, decoded by serde where it stands; `None` for
    /// anything else. Decoded as a `Value`, as the serde path does (serde_json gives some
    /// keys a meaning of their own there), and refused when nested deeper than the serde
    /// path allows: it starts three levels down (body, `items`, item) within serde_json's
    /// limit of 127 levels, where this deserializer starts afresh.
    fn metadata(&mut self) -> Option<Option<serde_json::Map<String, serde_json::Value>>> {
        const DEEPEST: usize = 127 - 3;
        if self.eat_word("null") {
            return Some(None);
        }
        if self.peek()? != b'{' {
            return None;
        }
        let mut stream = serde_json::Deserializer::from_str(&self.text[self.at..])
            .into_iter::<serde_json::Value>();
        let value = stream.next()?.ok()?;
        if depth(&value) > DEEPEST {
            return None;
        }
        self.at += stream.byte_offset();
        match value {
            serde_json::Value::Object(map) => Some(Some(map)),
            _ => None,
        }
    }

    /// A non-negative integer written with digits only (`None` for anything else).
    fn whole(&mut self) -> Option<usize> {
        let (token, _) = self.number()?;
        if token.bytes().all(|b| b.is_ascii_digit()) {
            token.parse().ok()
        } else {
            None
        }
    }

    /// One number, checked against JSON's grammar (see `decimal::scan`): its text, and its
    /// nearest f32 when the fast path decided it. The cursor is left after it.
    fn number(&mut self) -> Option<(&'a str, Option<f32>)> {
        let start = self.at;
        let (len, value) = decimal::scan(&self.text.as_bytes()[start..])?;
        self.at = start + len;
        Some((&self.text[start..self.at], value))
    }

    /// An array of numbers, each read straight to the nearest f32.
    fn numbers(&mut self) -> Result<Vec<f32>, String> {
        let whole = self.text;
        if !self.eat(b'[') {
            return Err(format!(
                "expected an array of numbers, got {}",
                preview(&whole[self.at..])
            ));
        }
        // Grown as read (a handful of doublings, next to hundreds of numbers parsed): no
        // guess from the text left, which in a body of many items would reserve room for
        // the numbers of every later item.
        let mut out = Vec::new();
        self.skip_ws();
        if self.eat(b']') {
            return Ok(out);
        }
        loop {
            self.skip_ws();
            let position = out.len();
            let Some((token, value)) = self.number() else {
                let rest = &whole[self.at..];
                let end = rest.find([',', ']']).unwrap_or(rest.len());
                return Err(format!(
                    "expected a number at position {position}, got {}",
                    preview(rest[..end].trim_end())
                ));
            };
            out.push(match value {
                Some(v) => v,
                None => token
                    .parse::<f32>()
                    .map_err(|e| format!("position {position}: {e}"))?,
            });
            self.skip_ws();
            if self.eat(b']') {
                return Ok(out);
            }
            if !self.eat(b',') {
                return Err(format!(
                    "expected ',' or ']' after the number at position {position}, got {}",
                    preview(&whole[self.at..])
                ));
            }
        }
    }
}

fn preview(s: &str) -> String {
    truncate_chars(s, 40)
}

/// At most `max` characters of `s`, for messages.
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_json_and_round_to_nearest_f32() {
        assert_eq!(
            parse_numbers("[1, -2.5, 3e2, 0.1, -0, 1E-3]").unwrap(),
            vec![1.0, -2.5, 300.0, 0.1, -0.0, 0.001]
        );
        assert_eq!(parse_numbers(" [ ] ").unwrap(), Vec::<f32>::new());
        assert_eq!(parse_numbers("[\n1 ,\t2\r]").unwrap(), vec![1.0, 2.0]);
        assert!(parse_numbers("[1e39]").unwrap()[0].is_infinite());
        for bad in [
            "[1,]", "[,1]", "[01]", "[1.]", "[.5]", "[+1]", "[NaN]", "[inf]", "[\"1\"]", "[null]",
            "[[1]]", "{}", "1", "[1 2]", "[-]", "[1e]",
        ] {
            assert!(parse_numbers(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            parse_numbers("[0.30000001192092896]").unwrap(),
            vec![0.3f32]
        );
        assert!(parse_numbers("[1, x]")
            .unwrap_err()
            .contains("position 1, got x"));
    }

    #[test]
    fn plain_objects_take_only_the_simple_shape() {
        const KEYS: &[&str] = &["a", "b", "c"];
        assert_eq!(
            plain_object(br#" { "a" : [1, 2] , "b":7,"c" :null} "#, KEYS),
            Some(vec![
                ("a", Plain::Numbers(vec![1.0, 2.0])),
                ("b", Plain::Whole(7)),
                ("c", Plain::Null)
            ])
        );
        assert_eq!(plain_object(b"{}", KEYS), Some(vec![]));
        for other in [
            r#"{"a":1,"a":2}"#,
            r#"{"a\"b":1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":-1}"#,
            r#"{"a":1e2}"#,
            r#"{"a":"s"}"#,
            r#"{"a":{}}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} 2"#,
            r#"{"a":nul}"#,
            r#"{"a":nullx}"#,
            r#"{"a":1"#,
            "[1]",
            "",
        ] {
            assert_eq!(plain_object(other.as_bytes(), KEYS), None, "{other}");
        }
        assert_eq!(plain_object(b"{\"a\":[1]}\xff", KEYS), None);
        // A key it does not take stops it at once, whatever follows.
        assert_eq!(plain_object(br#"{"a":1,"d":[],"#, KEYS), None);
    }
}
