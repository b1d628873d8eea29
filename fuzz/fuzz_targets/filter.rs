//! The filter reader, fed arbitrary JSON: no panic; what it refuses is an `invalid_filter`
//! naming a path under `filter`; what it takes evaluates on any metadata without a panic,
//! and a filter and its `$not` never both match an item.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use vectord_actors::error::IndexError;
use vectord_actors::filter::{Filter, FilterLimits, INVALID_FILTER};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let limits = FilterLimits {
        max_depth: 8,
        max_terms: 64,
    };
    let filter = match Filter::parse(&value, "filter", limits) {
        Ok(f) => f,
        Err(IndexError::Invalid { code, message }) => {
            assert_eq!(code, INVALID_FILTER);
            assert!(message.starts_with("filter"), "{message}");
            return;
        }
        Err(e) => panic!("{e:?}"),
    };
    let negated = Filter::parse(&json!({ "$not": value }), "filter", FilterLimits {
        max_depth: 9,
        max_terms: 64,
    })
    .expect("the $not of a filter that reads reads too");
    let samples = [
        json!({}),
        json!({"a": 1, "b": "x", "c": [1, "x", true], "d": null, "e": {"f": 1.5}}),
        json!({"a": "1", "b": 2.0, "c": [], "year": 2021, "lang": "en", "tags": ["a", "b"]}),
    ];
    for (i, sample) in samples.iter().enumerate() {
        let metadata: &Map<String, Value> = sample.as_object().expect("an object");
        let id = ["a", "x", ""][i];
        let yes = filter.matches(id, Some(metadata));
        assert_ne!(yes, negated.matches(id, Some(metadata)), "{value} on {sample}");
    }
});
