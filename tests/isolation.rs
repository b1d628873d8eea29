//! A flood of writes to one index must not stall another: while a 50,000-vector batch goes
//! into index A and is indexed in the background, searches on index B and `/health` keep
//! answering quickly.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn a_big_batch_on_one_index_does_not_stall_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = ephemeral(dir.path());
    let api = server.api();
    let dim = 32;
    assert_eq!(
        api.post(
            "/vectors/index",
            &json!({"name": "a", "dim": dim, "distance": "l2", "ef_construction": 100})
        )
        .0,
        201
    );
    assert_eq!(
        api.post(
            "/vectors/index",
            &json!({"name": "b", "dim": dim, "distance": "l2"})
        )
        .0,
        201
    );
    let b_vectors = vectors(2, 2000, dim);
    assert_eq!(
        api.post("/vectors/index/b/add", &add_body("b", &b_vectors))
            .0,
        200
    );

    let a_vectors = vectors(1, 50_000, dim);
    let big = add_body("a", &a_vectors);
    let started = Instant::now();
    let (s, b) = api.post("/vectors/index/a/add", &big);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["count"], 50_000);
    let acknowledged = started.elapsed();
    // searchable as soon as add answered
    let (s, b) = api.post(
        "/vectors/index/a/search",
        &json!({"vector": a_vectors[4321], "k": 1}),
    );
    assert_eq!(
        (s, b["results"][0]["id"].as_str()),
        (200, Some("a4321")),
        "{b}"
    );

    let indexing = |api: &Api| {
        let info = api.get("/vectors/index/a").1;
        info["indexing"] == true || info["sealed_segments"] == 0
    };
    let mut during = 0;
    let mut slowest = Duration::ZERO;
    let mut i = 0;
    while indexing(&api) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "index a was not sealed within 300 s"
        );
        let q = &b_vectors[i % b_vectors.len()];
        let t = Instant::now();
        let (s, b) = api.post("/vectors/index/b/search", &json!({"vector": q, "k": 5}));
        let search = t.elapsed();
        assert_eq!(s, 200);
        assert_eq!(b["results"][0]["id"], format!("b{}", i % b_vectors.len()));
        let t = Instant::now();
        assert_eq!(api.get("/health").0, 200);
        let health = t.elapsed();
        slowest = slowest.max(search).max(health);
        assert!(
            search < Duration::from_secs(1),
            "search on b took {search:?} while a was indexing"
        );
        assert!(
            health < Duration::from_secs(1),
            "/health took {health:?} while a was indexing"
        );
        during += 1;
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "batch acknowledged in {acknowledged:?}, indexed in {:?}; {during} searches answered meanwhile, slowest {slowest:?}",
        started.elapsed()
    );
    assert!(
        during >= 3,
        "the batch was indexed too fast ({:?}) to show anything",
        started.elapsed()
    );
}
