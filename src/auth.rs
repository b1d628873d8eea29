//! Bearer-token checks shared by vectord's HTTP front (`crate::http::auth`) and storaged
//! (`crate::storaged::http`): whether a request carries the configured API key, compared in
//! constant time. Each server decides for itself which paths need the key and how it
//! answers without one; this module holds no HTTP routes and no configuration.

use actix_web::http::header;

/// Compares in time independent of where the inputs differ (the length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether the request carries `key` as a bearer token.
pub fn has_key(headers: &header::HeaderMap, key: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn only_the_bearer_header_with_the_key_passes() {
        let with = |value: &str| {
            let mut headers = header::HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                header::HeaderValue::from_str(value).unwrap(),
            );
            headers
        };
        let key = "0123456789abcdef";
        assert!(has_key(&with("Bearer 0123456789abcdef"), key));
        assert!(has_key(&with("Bearer 0123456789abcdef "), key));
        assert!(!has_key(&with("Bearer 0123456789abcdeX"), key));
        assert!(!has_key(&with("Basic 0123456789abcdef"), key));
        assert!(!has_key(&header::HeaderMap::new(), key));
    }
}
