//! Reading request bodies: the size limit (413) and JSON decoding that names the field
//! at fault (400), with unknown fields refused by the request types themselves.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::errors::ApiError;

/// Reads the whole body, refusing more than `limit` bytes (early, from Content-Length,
/// when the client sent one).
pub async fn read(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("bad_body", format!("reading the body failed: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Decodes JSON into `T`; the message names the path of the bad field (`items[3].vector`).
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "request body is empty: expected a JSON object",
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

/// Deserializes a vector as f64 values narrowed to f32, as `#[serde(deserialize_with)]`:
/// a value beyond f32's range becomes infinite and is then refused by the index's checks
/// with a message naming the item (serde's own f32 parsing would refuse it as bad JSON).
pub fn f32_vector<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    struct Numbers;
    impl<'de> serde::de::Visitor<'de> for Numbers {
        type Value = Vec<f32>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of numbers")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<f32>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(x) = seq.next_element::<f64>()? {
                out.push(x as f32);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Numbers)
}
