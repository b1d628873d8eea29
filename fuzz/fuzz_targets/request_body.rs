//! Request bodies as the HTTP front decodes them, then checked as the index checks them:
//! any bytes give a value or a 4xx error, never a panic; the search, batch search and add routes'
//! one-pass decoders and serde agree; the fast decimal reader gives what the standard parser gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vectord::http::body;
use vectord::http::index_api::CreateIndex;
use vectord::http::item_api::AddRequest;
use vectord::http::search_api::{BatchSearchRequest, SearchRequest};
use vectord_actors::distance::Metric;
use vectord_actors::index::IndexParams;

fuzz_target!(|data: &[u8]| {
    let params = |distance| IndexParams {
        name: "fuzz".into(),
        dim: 4,
        distance,
        m: 16,
        ef_construction: 200,
        ef_search: 64,
    };
    let add_by_serde = body::json::<AddRequest>(data).and_then(|add| add.into_items());
    // The add route's one-pass decoder must agree with serde on every input.
    let add_fast = vectord::http::item_api::decode(data).and_then(|add| add.into_items());
    match (&add_fast, &add_by_serde) {
        (Ok(fast), Ok(slow)) => {
            assert_eq!(fast.len(), slow.len());
            for (a, b) in fast.iter().zip(slow) {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!((&a.id, bits(&a.vector)), (&b.id, bits(&b.vector)));
                assert_eq!(a.metadata, b.metadata);
            }
        }
        (Err(fast), Err(slow)) => assert_eq!(fast.message, slow.message),
        _ => panic!("the add decoders disagree: one-pass ok = {}", add_fast.is_ok()),
    }
    if let Ok(items) = add_by_serde {
        for metric in [Metric::Cosine, Metric::L2, Metric::Ip] {
            let _ = params(metric).check_items(items.clone());
        }
    }
    // The search route's one-pass decoder must agree with serde on every input.
    let by_serde = body::json::<SearchRequest>(data);
    match (vectord::http::search_api::decode(data), &by_serde) {
        (Ok(fast), Ok(slow)) => {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast.vector), bits(&slow.vector));
            assert_eq!((fast.k, fast.ef), (slow.k, slow.ef));
            assert_eq!(fast.filter, slow.filter);
        }
        (Err(_), Err(_)) => {}
        (fast, _) => panic!("the decoders disagree: one-pass ok = {}", fast.is_ok()),
    }
    if let Ok(search) = by_serde {
        for metric in [Metric::Cosine, Metric::L2, Metric::Ip] {
            let p = params(metric);
            let _ = p.check_search(search.k, search.ef);
            let _ = p.check_vector(search.vector.clone(), "vector");
        }
    }
    // So must the batch search route's.
    let batch_by_serde = body::json::<BatchSearchRequest>(data).map(|b| b.searches);
    match (vectord::http::search_api::decode_batch(data), &batch_by_serde) {
        (Ok(fast), Ok(slow)) => {
            assert_eq!(fast.len(), slow.len());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for (a, b) in fast.iter().zip(slow) {
                assert_eq!(bits(&a.vector), bits(&b.vector));
                assert_eq!((a.k, a.ef, &a.filter), (b.k, b.ef, &b.filter));
            }
        }
        (Err(fast), Err(slow)) => assert_eq!(fast.message, slow.message),
        (fast, _) => panic!("the batch decoders disagree: one-pass ok = {}", fast.is_ok()),
    }
    // Any number the fast decimal reader decides must be the standard parser's f32.
    if let Some((len, Some(fast))) = vectord::http::decimal::scan(data) {
        let text = std::str::from_utf8(&data[..len]).expect("a scanned number is ASCII");
        let by_std: f32 = text.parse().expect("a scanned number parses");
        assert_eq!(fast.to_bits(), by_std.to_bits(), "{text}");
    }
    let _ = body::json::<CreateIndex>(data);
    let _ = body::json::<serde_json::Value>(data);
});
