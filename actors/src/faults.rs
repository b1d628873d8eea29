//! A test hook that injects panics, to prove that a panic costs one request only: the
//! process, the other indexes and the index's data survive. It does nothing unless the
//! environment variable `VECTORD_TEST_FAULTS` is set when vectord starts, to a comma list
//! of `<point>:<index>` (points: `search`, `add`), e.g. `search:a,add:b`.

use std::sync::OnceLock;

fn faults() -> &'static [(String, String)] {
    static FAULTS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    FAULTS.get_or_init(|| {
        std::env::var("VECTORD_TEST_FAULTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|f| f.split_once(':'))
            .map(|(p, i)| (p.trim().to_string(), i.trim().to_string()))
            .collect()
    })
}

/// Panics if a fault is set for `point` on `index`.
pub fn maybe_panic(point: &str, index: &str) {
    if faults().iter().any(|(p, i)| p == point && i == index) {
        panic!("VECTORD_TEST_FAULTS: injected panic at {point} on index {index:?}");
    }
}
