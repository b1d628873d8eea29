//! `/vectors/index/{name}/add` and `/vectors/index/{name}/items/{id}`: add (upsert) a batch,
//! read one item, delete one item.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use vectord_actors::index::NewItem;
use vectord_actors::index_actor::{AddItems, DeleteItem};
use vectord_actors::params::check_addressable_id;

use super::errors::ApiError;
use super::schema::{AddResponse, ErrorBody, ItemResponse};
use super::{body, AppState};

/// A batch to add (all or nothing). Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [{"id": "a", "vector": [1, 0, 0, 0], "metadata": {"lang": "en"}}]}))]
pub struct AddRequest {
    #[schema(min_items = 1)]
    items: Vec<AddItem>,
}

impl AddRequest {
    /// The batch as the index takes it (metadata `null` or absent becomes `{}`); the index
    /// checks the rest (ids, vectors, sizes).
    pub fn into_items(self) -> Result<Vec<NewItem>, ApiError> {
        let mut items = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.into_iter().enumerate() {
            let metadata = match item.metadata {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(map)) => map,
                Some(other) => {
                    return Err(ApiError::bad_request(
                        "invalid_metadata",
                        format!(
                            "items[{i}].metadata must be a JSON object, got {}",
                            kind(&other)
                        ),
                    ))
                }
            };
            check_addressable_id(&item.id, &format!("items[{i}].id"))?;
            items.push(NewItem {
                id: item.id,
                vector: item.vector,
                metadata,
                document: item.document,
            });
        }
        Ok(items)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    /// 1-256 bytes, not `.` or `..` (no HTTP client can address those in a path); an
    /// existing id is replaced (upsert).
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^([^.][\s\S]*|\.[^.][\s\S]*|\.\.[\s\S]+)$"
    )]
    id: String,
    /// `dim` finite numbers (not all zero under cosine), or the base64 of their
    /// little-endian f32 values.
    #[serde(deserialize_with = "body::f32_vector")]
    #[schema(value_type = super::schema::VectorIn)]
    vector: Vec<f32>,
    /// A JSON object (default `{}`; `null` is taken as `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// The text the vector was made from (a RAG chunk), returned on request by get and
    /// search; at most `vectord.max_document_bytes` (1 MiB by default). `null` is none.
    #[serde(default)]
    document: Option<String>,
}

/// The add request in `bytes`: the usual shape decoded in one pass, anything else (an
/// escaped id, metadata that is not an object, an error to explain) by serde.
pub fn decode(bytes: &[u8]) -> Result<AddRequest, ApiError> {
    if let Some(items) = body::plain_items(bytes) {
        let items = items
            .into_iter()
            .map(|item| AddItem {
                id: item.id,
                vector: item.vector,
                metadata: item.metadata.map(Value::Object),
                document: item.document,
            })
            .collect();
        return Ok(AddRequest { items });
    }
    body::json(bytes)
}

/// Adds or replaces items; acknowledged once the batch is in the index (searchable at once).
#[utoipa::path(post, path = "/vectors/index/{name}/add", tag = "items", request_body = AddRequest,
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, body = AddResponse),
        (status = 400, description = "an invalid item (the message names its position) or body", body = ErrorBody),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "too much waits to be indexed or written (`busy`, with Retry-After: nothing was applied), or still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn add(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let handle = state.index(&name)?;
    let _queued = state.write_slot(&handle)?;
    let (bytes, _held) =
        body::read_budgeted(&req, payload, state.max_body_bytes, &state.write_budget).await?;
    // Decoding a big batch is CPU work: keep it off the HTTP thread.
    let request: AddRequest = web::block(move || decode(&bytes))
        .await
        .map_err(|e| ApiError::bad_request("invalid_json", format!("decoding failed: {e}")))??;
    let items = request.into_items()?;
    let outcome = handle.actor.send(AddItems { items }).await??;
    Ok(HttpResponse::Ok().json(AddResponse {
        added: outcome.added,
        count: outcome.count,
    }))
}

/// The item id of an `.../items/{id}` request, decoded from the raw path: the router's own
/// decoding turns invalid UTF-8 into U+FFFD, which would name another item.
fn item_id(req: &HttpRequest) -> Result<String, ApiError> {
    let raw = req.uri().path().rsplit('/').next().unwrap_or("");
    let id = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|id| id.into_owned())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_id",
                format!("item id {raw:?} is not UTF-8 once percent-decoded"),
            )
        })?;
    check_addressable_id(&id, "item id")?;
    Ok(id)
}

/// One item.
#[utoipa::path(get, path = "/vectors/index/{name}/items/{id}", tag = "items",
    params(("name" = String, Path, description = "index name"),
           ("id" = String, Path, description = "item id, percent-escaped; never `.` or `..`", pattern = r"^([^.][\s\S]*|\.[^.][\s\S]*|\.\.[\s\S]+)$")),
    responses(
        (status = 200, body = ItemResponse),
        (status = 400, description = "the id is not UTF-8 once decoded, or is `.` or `..` (`invalid_id`)", body = ErrorBody),
        (status = 404, description = "no such index or item", body = ErrorBody),
    ))]
pub async fn get_item(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner().0;
    let id = item_id(&req)?;
    let handle = state.index(&name)?;
    let item = handle.index.get(&id).ok_or_else(|| {
        ApiError::from(vectord_actors::error::IndexError::ItemNotFound { index: name, id })
    })?;
    Ok(HttpResponse::Ok().json(ItemResponse {
        id: item.id,
        vector: item.vector,
        metadata: item.metadata,
        document: item.document,
    }))
}

/// Deletes one item.
#[utoipa::path(delete, path = "/vectors/index/{name}/items/{id}", tag = "items",
    params(("name" = String, Path, description = "index name"),
           ("id" = String, Path, description = "item id, percent-escaped; never `.` or `..`", pattern = r"^([^.][\s\S]*|\.[^.][\s\S]*|\.\.[\s\S]+)$")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "the id is not UTF-8 once decoded, or is `.` or `..` (`invalid_id`)", body = ErrorBody),
        (status = 404, description = "no such index or item", body = ErrorBody),
        (status = 503, description = "too many writes wait for the index (`busy`)", body = ErrorBody),
    ))]
pub async fn delete_item(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner().0;
    let id = item_id(&req)?;
    let handle = state.index(&name)?;
    let _queued = state.write_slot(&handle)?;
    handle.actor.send(DeleteItem { id }).await??;
    Ok(HttpResponse::NoContent().finish())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/vectors/index/{name}/add", "POST").route(web::post().to(add)))
        .service(
            super::resource("/vectors/index/{name}/items/{id}", "GET, DELETE")
                .route(web::get().to(get_item))
                .route(web::delete().to(delete_item)),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The items a body decodes to, by the one-pass path where it applies.
    fn items(body: &str) -> Result<Vec<NewItem>, String> {
        decode(body.as_bytes())
            .and_then(|r| r.into_items())
            .map_err(|e| e.message)
    }

    /// The same, by serde alone.
    fn by_serde(body: &str) -> Result<Vec<NewItem>, String> {
        body::json::<AddRequest>(body.as_bytes())
            .and_then(|r| r.into_items())
            .map_err(|e| e.message)
    }

    fn same(a: &[NewItem], b: &[NewItem]) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.id == y.id && bits(&x.vector) == bits(&y.vector) && x.metadata == y.metadata
            })
    }

    #[test]
    fn vectors_reserve_room_for_their_own_numbers_only() {
        let body = format!(
            r#"{{"items":[{}]}}"#,
            (0..2000)
                .map(|i| format!(r#"{{"id":"{i}","vector":[1,2,3]}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let request = decode(body.as_bytes()).unwrap();
        assert!(request.items.iter().all(|item| item.vector.capacity() <= 8));
    }

    #[test]
    fn the_one_pass_decoder_agrees_with_serde() {
        for body in [
            r#"{"items":[{"id":"a","vector":[1,-2.5,3e2]}]}"#,
            " {\n \"items\" : [ { \"vector\" : [ 0.1 ] , \"id\" : \"b\" , \"metadata\" : null } ,\n{\"id\":\"c\",\"vector\":[0.03687103092670441],\"metadata\":{\"lang\":\"en\",\"n\":[1,{\"x\":null}]}} ] } ",
            r#"{"items":[{"id":"é 😀","vector":[],"metadata":{}}]}"#,
            r#"{"items":[{"metadata":{"a":1,"a":2},"id":"d","vector":[1]}]}"#,
            // base64 of [1.0, -2.5]
            r#"{"items":[{"id":"f","vector":"AACAPwAAIMA="}]}"#,
            // Left to serde, with the same meaning.
            r#"{"items":[{"id":"g","vector":"AACAPwAAIMA="}]}"#,
            r#"{"items":[{"id":"e\u0066","vector":[1]}]}"#,
            r#"{"items":[]}"#,
        ] {
            let (ours, theirs) = (items(body), by_serde(body));
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert!(same(a, b), "{body}"),
                _ => panic!("{body}: {ours:?} vs {theirs:?}"),
            }
        }
        assert_eq!(
            items(r#"{"items":[{"id":"e\u0066","vector":[1]}]}"#).unwrap()[0].id,
            "ef"
        );
        // serde_json gives this key a meaning of its own in a `Value`: both paths agree.
        for metadata in [r#""{\"b\":1}""#, r#""[1]""#] {
            let body = format!(
                r#"{{"items":[{{"id":"a","vector":[1],"metadata":{{"$serde_json::private::RawValue":{metadata}}}}}]}}"#
            );
            match (items(&body), by_serde(&body)) {
                (Ok(a), Ok(b)) => assert!(same(&a, &b), "{body}"),
                (Err(a), Err(b)) => assert_eq!(a, b, "{body}"),
                (a, b) => panic!("{body}: {a:?} vs {b:?}"),
            }
        }
        // Metadata nested as deep as the serde path takes, and one level more.
        for levels in [124, 125, 127] {
            let nested = format!("{}1{}", "[".repeat(levels - 1), "]".repeat(levels - 1));
            let body =
                format!(r#"{{"items":[{{"id":"a","vector":[1],"metadata":{{"x":{nested}}}}}]}}"#);
            let (ours, theirs) = (items(&body), by_serde(&body));
            assert_eq!(ours.is_ok(), levels <= 124, "{levels} levels: {ours:?}");
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{levels} levels");
        }
        // Refused either way, with the field named.
        for (body, says) in [
            (
                r#"{"items":[{"id":"a","vector":[1],"id":"b"}]}"#,
                "duplicate field",
            ),
            (
                r#"{"items":[{"id":"a","vector":[1],"meta":{}}]}"#,
                "unknown field",
            ),
            (r#"{"items":[{"id":"a","vector":[1,]}]}"#, "vector"),
            (r#"{"items":[{"id":"a","vector":null}]}"#, "vector"),
            (
                r#"{"items":[{"id":"a","vector":[1],"metadata":[1]}]}"#,
                "metadata",
            ),
            (
                r#"{"items":[{"id":"a","vector":[1],"metadata":{"x":}}]}"#,
                "metadata",
            ),
            (r#"{"items":[{"id":7,"vector":[1]}]}"#, "id"),
            (r#"{"items":[{"vector":[1]}]}"#, "missing field `id`"),
            (
                r#"{"items":[{"id":"a","vector":[1]}],"more":1}"#,
                "unknown field",
            ),
            (r#"{"items":[{"id":"a","vector":[1]}]} x"#, "trailing"),
            (r#"{"items":[{"id":"a","vector":[1]}"#, "EOF"),
        ] {
            let message = items(body).expect_err(body);
            assert!(message.contains(says), "{body}: {message}");
            assert_eq!(Err(message), by_serde(body).map(|_| ()), "{body}");
        }
    }
}
