//! Tests of the index without actors: recall against brute force over a mix of sealed and
//! growing segments, upserts and deletes across segments, filters, seals, merges and
//! compactions (also while searches and writes go on), back-pressure, and exact round trips
//! through LHV1, including files written by vectord 0.1.0.

use std::sync::Arc;

use super::*;
use crate::distance::Metric;
use serde_json::json;

use crate::sample::seeded_vectors as random_vectors;

fn params(distance: Metric, dim: usize) -> IndexParams {
    IndexParams {
        name: "test".into(),
        dim,
        distance,
        m: 16,
        ef_construction: 200,
        ef_search: 64,
    }
}

/// Small segments, so that tests of a few thousand points see many of them.
fn small(seal_points: usize) -> EngineConfig {
    EngineConfig {
        seal_points,
        max_unsealed_points: 1_000_000,
        ..EngineConfig::default()
    }
}

fn items(vectors: &[Vec<f32>], prefix: &str, p: &IndexParams) -> Vec<NewItem> {
    items_from(0, vectors, prefix, p)
}

/// Items `prefix{first}..`, with metadata `{"i": number, "parity": number % 2}`.
fn items_from(first: usize, vectors: &[Vec<f32>], prefix: &str, p: &IndexParams) -> Vec<NewItem> {
    let raw = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (first + i, v))
        .map(|(i, v)| NewItem {
            id: format!("{prefix}{i}"),
            vector: v.clone(),
            metadata: serde_json::from_value(json!({"i": i, "parity": i % 2})).unwrap(),
        })
        .collect();
    p.check_items(raw).unwrap()
}

/// Adds in batches of `batch`, as clients do.
fn add_all(index: &Index, data: &[Vec<f32>], prefix: &str, batch: usize) {
    let p = index.params().clone();
    for (b, chunk) in data.chunks(batch).enumerate() {
        index
            .add(items_from(b * batch, chunk, prefix, &p), 0)
            .unwrap();
    }
}

/// Runs background jobs until none is due, as the index actor does.
fn settle(index: &Index) {
    loop {
        let mut ran = false;
        for kind in [JobKind::Seal, JobKind::Merge] {
            if let Some(job) = index.next_job(kind) {
                let built = index.build(job).unwrap();
                index.install(built);
                ran = true;
            }
        }
        if !ran {
            return;
        }
    }
}

fn query(p: &IndexParams, v: &[f32]) -> Vec<f32> {
    p.check_vector(v.to_vec(), "q").unwrap()
}

/// Exact top-k ids by the API's distance.
fn brute_force(p: &IndexParams, data: &[Vec<f32>], q: &[f32], k: usize) -> Vec<usize> {
    let mut all: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (p.distance.reported(q, &query(p, v)), i))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter().take(k).map(|(_, i)| i).collect()
}

fn ids(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.id.clone()).collect()
}

#[test]
fn recall_at_10_is_at_least_095_over_sealed_and_growing_segments() {
    let (n, dim, k, ef) = (5000, 32, 10, 128);
    let data = random_vectors(1, n, dim);
    let queries = random_vectors(2, 100, dim);
    for distance in [Metric::Cosine, Metric::L2, Metric::Ip] {
        let p = params(distance, dim);
        let config = EngineConfig {
            merge_factor: 16,
            ..small(1200)
        };
        let index = Index::new(p.clone(), config);
        for (b, chunk) in data.chunks(1200).enumerate() {
            index.add(items_from(b * 1200, chunk, "", &p), 0).unwrap();
            settle(&index);
        }
        let segments = index.segments();
        assert!(
            segments.iter().filter(|s| s.sealed).count() >= 2,
            "{segments:?}"
        );
        assert!(
            segments.iter().any(|s| s.growing && s.points > 0),
            "{segments:?}"
        );
        let mut hits = 0;
        for q in &queries {
            let qv = query(&p, q);
            let truth = brute_force(&p, &data, &qv, k);
            let got: Vec<usize> = index
                .search(&qv, k, ef, None)
                .into_iter()
                .map(|h| h.id.parse().unwrap())
                .collect();
            hits += got.iter().filter(|id| truth.contains(id)).count();
        }
        let recall = hits as f64 / (queries.len() * k) as f64;
        assert!(recall >= 0.95, "{distance:?}: recall@10 {recall}");
    }
}

#[test]
fn an_added_vector_is_found_first_at_distance_zero_in_every_kind_of_segment() {
    for distance in [Metric::Cosine, Metric::L2] {
        let p = params(distance, 16);
        let data = random_vectors(3, 3000, 16);
        let index = Index::new(p.clone(), small(1000));
        add_all(&index, &data[..2500], "x", 250);
        settle(&index);
        add_all(&index, &data[2500..], "y", 250); // growing
        for (i, v) in data.iter().enumerate().step_by(37) {
            let hits = index.search(&query(&p, v), 5, 64, None);
            let want = if i < 2500 {
                format!("x{i}")
            } else {
                format!("y{}", i - 2500)
            };
            assert_eq!(hits[0].id, want, "{distance:?}");
            assert!(hits[0].distance.abs() <= 1e-6, "{}", hits[0].distance);
        }
    }
}

#[test]
fn exact_match_results_are_identical_before_and_after_seals_and_merges() {
    let p = params(Metric::L2, 12);
    let data = random_vectors(4, 2400, 12);
    let index = Index::new(p.clone(), small(600));
    add_all(&index, &data, "", 100);
    // four frozen segments, nothing sealed yet: every search is an exact scan
    let probes: Vec<usize> = (0..2400).step_by(61).collect();
    let before: Vec<Hit> = probes
        .iter()
        .map(|&i| index.search(&query(&p, &data[i]), 1, 64, None)[0].clone())
        .collect();
    settle(&index);
    let sealed = index.segments().iter().filter(|s| s.sealed).count();
    assert!(sealed >= 1, "{:?}", index.segments());
    for (&i, want) in probes.iter().zip(&before) {
        let got = &index.search(&query(&p, &data[i]), 1, 64, None)[0];
        assert_eq!(got, want);
        assert_eq!(got.id, i.to_string());
    }
}

#[test]
fn an_id_replaced_across_segments_is_returned_once_with_its_new_vector() {
    let p = params(Metric::L2, 8);
    let data = random_vectors(5, 3000, 8);
    let index = Index::new(p.clone(), small(1000));
    add_all(&index, &data, "", 500);
    settle(&index);
    // replace every fifth id (now in sealed segments) by a far vector in the growing one,
    // delete every third
    let far: Vec<NewItem> = (0..3000)
        .step_by(5)
        .map(|i| NewItem {
            id: i.to_string(),
            vector: vec![100.0 + i as f32; 8],
            metadata: serde_json::from_value(json!({"v": 2})).unwrap(),
        })
        .collect();
    let replaced = far.len();
    index.add(p.check_items(far).unwrap(), 0).unwrap();
    let mut deleted = 0;
    for i in (0..3000).step_by(3) {
        assert!(index.delete(&i.to_string()));
        deleted += 1;
    }
    assert!(!index.delete("0"), "a second delete finds nothing");
    let st = index.stats();
    assert_eq!(st.count, 3000 - deleted);
    assert_eq!(st.tombstones, replaced + deleted);
    for q in random_vectors(6, 30, 8) {
        let hits = index.search(&q, 60, 64, None);
        assert_eq!(hits.len(), 60);
        let mut seen = std::collections::HashSet::new();
        for h in &hits {
            assert!(seen.insert(h.id.clone()), "{} returned twice", h.id);
            let i: usize = h.id.parse().unwrap();
            assert!(!i.is_multiple_of(3), "deleted id {i} returned");
            assert!(
                !i.is_multiple_of(5),
                "replaced id {i} returned with its old vector"
            );
        }
        let mut sorted = hits.clone();
        sorted.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        assert_eq!(hits, sorted);
    }
    // the new copy is found by its new vector, exactly once
    let hits = index.search(&[105.0; 8], 3, 64, None);
    assert_eq!(hits[0].id, "5");
    assert_eq!(hits[0].metadata["v"], json!(2));
    assert_eq!(hits.iter().filter(|h| h.id == "5").count(), 1);
    assert_eq!(index.get("5").unwrap().vector, vec![105.0; 8]);
    assert!(index.get("3").is_none());
    settle(&index);
    assert_eq!(index.stats().count, 3000 - deleted);
    assert_eq!(index.get("10").unwrap().vector, vec![110.0; 8]);
}

#[test]
fn filters_return_k_matches_when_they_exist() {
    let p = params(Metric::Cosine, 8);
    let data = random_vectors(6, 6000, 8);
    let index = Index::new(p.clone(), small(2500));
    add_all(&index, &data, "", 1000);
    settle(&index);
    let q = query(&p, &data[0]);
    // broad filter (half the points): graph walk with a filter
    let f: Map<String, Value> = serde_json::from_value(json!({"parity": 1})).unwrap();
    let hits = index.search(&q, 20, 64, Some(&f));
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| h.metadata["parity"] == json!(1)));
    // narrow filter (one point): exact scan
    let f: Map<String, Value> = serde_json::from_value(json!({"i": 1234})).unwrap();
    let hits = index.search(&q, 20, 64, Some(&f));
    assert_eq!(ids(&hits), ["1234"]);
    // nothing matches
    let f: Map<String, Value> = serde_json::from_value(json!({"i": "1234"})).unwrap();
    assert!(index.search(&q, 20, 64, Some(&f)).is_empty());
    // k larger than the matches: all of them
    let f: Map<String, Value> = serde_json::from_value(json!({"parity": 0})).unwrap();
    assert_eq!(index.search(&q, 1000, 1000, Some(&f)).len(), 1000);
}

#[test]
fn filtered_searches_find_the_nearest_matching_items() {
    // Sealed segments past 2,048 points, the size from which (in unit tests) a filter is
    // first tried on a sample: one that half the points pass is answered first by a graph
    // walk trying it on the points met, then from its remembered result; one that a
    // single point passes by a scan.
    let (n, dim, k, ef) = (8000, 16, 10, 64);
    let p = params(Metric::L2, dim);
    let data = random_vectors(12, n, dim);
    let index = Index::new(p.clone(), small(4000));
    add_all(&index, &data, "", 1000);
    settle(&index);
    assert!(index.segments().iter().all(|s| s.sealed || s.points == 0));
    let queries = random_vectors(13, 50, dim);
    for (key, groups) in [("parity", 2), ("i", 0)] {
        let mut hits = 0;
        let mut wanted = 0;
        for (j, q) in queries.iter().enumerate() {
            let qv = query(&p, q);
            // parity 1: half the items; i = one item's number: a single match
            let (value, matching): (Value, Vec<usize>) = if groups == 2 {
                (json!(1), (0..n).filter(|i| i % 2 == 1).collect())
            } else {
                (json!(j * 97), vec![j * 97])
            };
            let subset: Vec<Vec<f32>> = matching.iter().map(|&i| data[i].clone()).collect();
            let truth: Vec<usize> = brute_force(&p, &subset, &qv, k)
                .into_iter()
                .map(|i| matching[i])
                .collect();
            let filter: Map<String, Value> = serde_json::from_value(json!({ key: value })).unwrap();
            let got = index.search(&qv, k, ef, Some(&filter));
            assert_eq!(got.len(), truth.len(), "{key}: every match or k of them");
            assert!(got.iter().all(|h| h.metadata[key] == value));
            hits += got
                .iter()
                .filter(|h| truth.contains(&h.id.parse().unwrap()))
                .count();
            wanted += truth.len();
        }
        let recall = hits as f64 / wanted as f64;
        assert!(recall >= 0.95, "filter on {key}: recall@10 {recall}");
    }
}

#[test]
fn a_remembered_filter_result_never_brings_back_a_deleted_item() {
    // A sealed segment past 2,048 points (the size from which, in unit tests, a filter is
    // first tried on a sample), and one below: a filter's result is remembered from its
    // second search on the first, from its first on the second, for a walk (half the
    // points pass) or a scan (one point passes).
    let p = params(Metric::L2, 8);
    let data = random_vectors(14, 5000, 8);
    let index = Index::new(p.clone(), small(4000));
    add_all(&index, &data[..4000], "", 1000);
    settle(&index);
    add_all(&index, &data[4000..], "late-", 1000);
    index.freeze_if_at_least(1);
    settle(&index);
    let mut sizes: Vec<usize> = index.segments().iter().map(|s| s.points).collect();
    sizes.sort();
    assert_eq!(sizes, [0, 1000, 4000], "{:?}", index.segments());
    // the remembered results count in memory_bytes_estimate, at most a byte per point
    let before = index.stats().memory_bytes;
    let any: Map<String, Value> = serde_json::from_value(json!({"parity": 1})).unwrap();
    index.search(&query(&p, &data[1]), 10, 64, Some(&any));
    index.search(&query(&p, &data[1]), 10, 64, Some(&any));
    let grown = index.stats().memory_bytes - before;
    assert!(grown > 5000 / 8 && grown < 5000 + 1000, "grew by {grown}");
    // deleted before any search with its filter: never found
    index.delete("2");
    let f: Map<String, Value> = serde_json::from_value(json!({"parity": 0})).unwrap();
    let q = query(&p, &data[2]);
    for _ in 0..3 {
        assert!(index
            .search(&q, 10, 64, Some(&f))
            .iter()
            .all(|h| h.id != "2"));
    }
    let q = query(&p, &data[0]);
    for filter in [json!({"parity": 0}), json!({"i": 1}), json!({"i": 2003})] {
        let f: Map<String, Value> = serde_json::from_value(filter.clone()).unwrap();
        let first = index.search(&q, 10, 64, Some(&f));
        assert!(!first.is_empty(), "{filter}");
        assert_eq!(
            index.search(&q, 10, 64, Some(&f)),
            first,
            "{filter}: remembered"
        );
        index.delete(&first[0].id);
        let again = index.search(&q, 10, 64, Some(&f));
        assert!(
            again.iter().all(|h| h.id != first[0].id),
            "{filter}: deleted item back"
        );
        // 2,000 items pass the broad filter: still 10; the one item of a narrow one: none
        let expected = if first.len() == 10 {
            10
        } else {
            first.len() - 1
        };
        assert_eq!(again.len(), expected, "{filter}");
        let key = filter.as_object().unwrap().keys().next().unwrap().clone();
        assert!(again.iter().all(|h| h.metadata[&key] == filter[&key]));
    }
}

#[test]
fn a_merge_keeps_every_item_and_compaction_drops_tombstones() {
    let p = params(Metric::L2, 8);
    let data = random_vectors(7, 4000, 8);
    let config = EngineConfig {
        merge_factor: 2,
        ..small(1000)
    };
    let index = Index::new(p.clone(), config);
    add_all(&index, &data, "", 1000);
    settle(&index);
    // four sealed segments of 1000 with factor 2: merged in pairs, then the pairs
    let segs = index.segments();
    assert_eq!(segs.iter().filter(|s| s.sealed).count(), 1, "{segs:?}");
    assert_eq!(index.stats().count, 4000);
    for i in (0..4000).step_by(401) {
        assert_eq!(index.get(&i.to_string()).unwrap().vector, data[i]);
    }
    for i in 0..1500 {
        assert!(index.delete(&i.to_string()));
    }
    let st = index.stats();
    assert_eq!((st.count, st.tombstones), (2500, 1500));
    settle(&index);
    let st = index.stats();
    assert_eq!((st.count, st.points, st.tombstones), (2500, 2500, 0));
    let hit = &index.search(&data[2000], 1, 64, None)[0];
    assert_eq!((hit.id.as_str(), hit.distance), ("2000", 0.0));
    // deleting everything leaves no segment behind
    for i in 1500..4000 {
        assert!(index.delete(&i.to_string()));
    }
    settle(&index);
    assert_eq!(index.stats().points, 0);
    assert!(index.search(&data[0], 5, 64, None).is_empty());
}

#[test]
fn a_merge_links_points_into_the_largest_graph_and_keeps_recall() {
    let (dim, k, ef) = (32, 10, 128);
    let data = random_vectors(11, 5000, dim);
    let queries = random_vectors(12, 100, dim);
    for distance in [Metric::Cosine, Metric::L2, Metric::Ip] {
        let p = params(distance, dim);
        let config = EngineConfig {
            merge_factor: 2,
            ..small(3000)
        };
        let index = Index::new(p.clone(), config);
        add_all(&index, &data[..3000], "", 1000);
        settle(&index);
        // tombstones in the segment whose graph the merge will keep
        for i in 0..100 {
            assert!(index.delete(&i.to_string()));
        }
        index
            .add(items_from(3000, &data[3000..], "", &p), 0)
            .unwrap();
        index.freeze_if_at_least(1);
        settle(&index);
        let segs = index.segments();
        let sealed: Vec<&SegmentInfo> = segs.iter().filter(|s| s.sealed).collect();
        // one segment: the old graph's 3000 points (tombstones kept) + 2000 linked in
        assert_eq!(sealed.len(), 1, "{segs:?}");
        assert_eq!((sealed[0].points, sealed[0].tombstones), (5000, 100));
        let st = index.stats();
        assert_eq!((st.count, st.tombstones), (4900, 100));
        let live = &data[100..];
        let mut hits = 0;
        for q in &queries {
            let qv = query(&p, q);
            let truth: Vec<usize> = brute_force(&p, live, &qv, k)
                .into_iter()
                .map(|i| i + 100)
                .collect();
            let got: Vec<usize> = index
                .search(&qv, k, ef, None)
                .into_iter()
                .map(|h| h.id.parse().unwrap())
                .collect();
            assert!(got.iter().all(|&i| i >= 100), "a deleted item came back");
            hits += got.iter().filter(|id| truth.contains(id)).count();
        }
        let recall = hits as f64 / (queries.len() * k) as f64;
        assert!(recall >= 0.95, "{distance:?}: recall@10 {recall}");
        // every linked-in point is reachable: its own vector finds it first
        for i in (3000..5000).step_by(97) {
            let hit = &index.search(&query(&p, &data[i]), 1, 64, None)[0];
            assert_eq!(hit.id, i.to_string(), "{distance:?}");
        }
    }
}

#[test]
fn writes_while_a_job_builds_are_kept() {
    let p = params(Metric::L2, 8);
    let data = random_vectors(21, 3000, 8);
    let index = Index::new(p.clone(), small(1000));
    add_all(&index, &data, "", 1000);
    let job = index.next_job(JobKind::Seal).unwrap();
    assert!(index.next_job(JobKind::Seal).is_none() || job.segments().len() == 1);
    // meanwhile: deletes, new items, a replacement of an item being sealed
    for i in 0..100 {
        assert!(index.delete(&i.to_string()));
    }
    let fresh = random_vectors(22, 50, 8);
    index.add(items(&fresh, "new-", &p), 0).unwrap();
    let replacement = NewItem {
        id: "999".into(),
        vector: vec![50.0; 8],
        metadata: serde_json::from_value(json!({"v": 2})).unwrap(),
    };
    index
        .add(p.check_items(vec![replacement]).unwrap(), 0)
        .unwrap();
    let built = index.build(job).unwrap();
    index.install(built);
    settle(&index);
    let st = index.stats();
    assert_eq!(st.count, 3000 - 100 + 50);
    assert!(index.get("50").is_none());
    assert_eq!(index.get("new-7").unwrap().vector, fresh[7]);
    let replaced = index.get("999").unwrap();
    assert_eq!(replaced.vector, vec![50.0; 8]);
    assert_eq!(replaced.metadata["v"], json!(2));
    for q in random_vectors(23, 20, 8) {
        let hits = index.search(&q, 30, 64, None);
        assert_eq!(hits.len(), 30);
        for h in hits {
            if let Ok(i) = h.id.parse::<usize>() {
                assert!(i >= 100, "deleted id {i} returned");
            }
        }
    }
}

#[test]
fn writes_while_a_merge_links_points_are_kept() {
    let p = params(Metric::L2, 8);
    let data = random_vectors(24, 2000, 8);
    let config = EngineConfig {
        merge_factor: 2,
        ..small(1000)
    };
    let index = Index::new(p.clone(), config);
    for (b, chunk) in data.chunks(1000).enumerate() {
        index.add(items_from(b * 1000, chunk, "", &p), 0).unwrap();
        let job = index.next_job(JobKind::Seal).unwrap();
        let built = index.build(job).unwrap();
        index.install(built);
    }
    let job = index
        .next_job(JobKind::Merge)
        .expect("two sealed segments of one tier");
    assert_eq!(job.segments().len(), 2);
    // meanwhile: deletes in both segments, a replacement in each
    for i in (0..2000).step_by(10) {
        assert!(index.delete(&i.to_string()));
    }
    let replacements = ["5", "1005"].map(|id| NewItem {
        id: id.into(),
        vector: vec![50.0; 8],
        metadata: serde_json::from_value(json!({"v": 2})).unwrap(),
    });
    index
        .add(p.check_items(replacements.to_vec()).unwrap(), 0)
        .unwrap();
    let built = index.build(job).unwrap();
    index.install(built);
    settle(&index);
    // one segment of both sources' points: the base kept whole, the other's live points
    // linked in; tombstones set during the merge carried over
    let segs = index.segments();
    let sealed: Vec<&SegmentInfo> = segs.iter().filter(|s| s.sealed).collect();
    assert_eq!(sealed.len(), 1, "{segs:?}");
    let (points, tombstones) = (sealed[0].points, sealed[0].tombstones);
    assert!(points - tombstones == 1798 && points >= 1900, "{segs:?}");
    let st = index.stats();
    assert_eq!(st.count, 2000 - 200);
    assert!(index.get("10").is_none() && index.get("1010").is_none());
    for id in ["5", "1005"] {
        let got = index.get(id).unwrap();
        assert_eq!(
            (got.vector, got.metadata["v"].clone()),
            (vec![50.0; 8], json!(2))
        );
    }
    assert_eq!(index.get("7").unwrap().vector, data[7]);
    assert_eq!(index.get("1007").unwrap().vector, data[1007]);
    let hits = index.search(&[50.0; 8], 2, 64, None);
    let mut found = ids(&hits);
    found.sort();
    assert_eq!(found, ["1005", "5"]);
    let all = index.search(&[0.0; 8], 2000, 4000, None);
    assert_eq!(all.len(), 1800);
    for h in &all {
        let i: usize = h.id.parse().unwrap();
        assert!(!i.is_multiple_of(10), "deleted id {i} returned");
    }
}

#[test]
fn searches_and_writes_go_on_during_seals_and_merges() {
    let p = params(Metric::L2, 8);
    let index = Arc::new(Index::new(p.clone(), small(500)));
    let data = random_vectors(30, 6000, 8);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (index, stop) = (index.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut jobs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for kind in [JobKind::Seal, JobKind::Merge] {
                    if let Some(job) = index.next_job(kind) {
                        let built = index.build(job).unwrap();
                        index.install(built);
                        jobs += 1;
                    }
                }
                std::thread::yield_now();
            }
            jobs
        })
    };
    let searcher = {
        let (index, stop) = (index.clone(), stop.clone());
        std::thread::spawn(move || {
            let q = random_vectors(31, 1, 8).remove(0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let hits = index.search(&q, 10, 64, None);
                let unique: std::collections::HashSet<&String> =
                    hits.iter().map(|h| &h.id).collect();
                assert_eq!(unique.len(), hits.len(), "an id returned twice");
            }
        })
    };
    // writes: all items, then every other one deleted, then a third replaced
    for (b, chunk) in data.chunks(100).enumerate() {
        index.add(items_from(b * 100, chunk, "", &p), 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    for i in (0..6000).step_by(2) {
        assert!(index.delete(&i.to_string()));
    }
    let replacements: Vec<NewItem> = (1..6000)
        .step_by(6)
        .map(|i| NewItem {
            id: i.to_string(),
            vector: vec![i as f32; 8],
            metadata: Map::new(),
        })
        .collect();
    for chunk in replacements.chunks(100) {
        index
            .add(p.check_items(chunk.to_vec()).unwrap(), 0)
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let jobs = worker.join().unwrap();
    searcher.join().unwrap();
    assert!(jobs >= 2, "only {jobs} jobs ran beside the writes");
    settle(&index);
    assert_eq!(index.stats().count, 3000);
    for (i, vector) in data.iter().enumerate() {
        let got = index.get(&i.to_string());
        if i % 2 == 0 {
            assert!(got.is_none(), "{i} came back");
        } else if i % 6 == 1 {
            assert_eq!(got.unwrap().vector, vec![i as f32; 8]);
        } else {
            assert_eq!(&got.unwrap().vector, vector);
        }
    }
    // every live id is found by its own vector, once
    let all = index.search(&[0.0; 8], 1000, 2000, None);
    let unique: std::collections::HashSet<&String> = all.iter().map(|h| &h.id).collect();
    assert_eq!(unique.len(), all.len());
}

/// Segments of 100 points, and `add` busy past 250 waiting to be sealed.
fn busy_at_250() -> EngineConfig {
    EngineConfig {
        seal_points: 100,
        max_unsealed_points: 250,
        ..EngineConfig::default()
    }
}

#[test]
fn add_answers_busy_while_too_much_waits_to_be_sealed() {
    let p = params(Metric::L2, 4);
    let index = Index::new(p.clone(), busy_at_250());
    let data = random_vectors(40, 400, 4);
    add_all(&index, &data[..200], "a", 100); // two frozen segments
    let err = index.add(items(&data[200..300], "b", &p), 0).unwrap_err();
    match err {
        IndexError::Busy { message, .. } => assert!(message.contains("waiting"), "{message}"),
        other => panic!("expected busy, got {other:?}"),
    }
    assert_eq!(index.stats().count, 200, "a refused batch changes nothing");
    settle(&index);
    assert!(index.add(items(&data[200..300], "b", &p), 0).is_ok());
    assert_eq!(index.stats().count, 300);
}

#[test]
fn items_replayed_after_a_crash_do_not_make_add_busy() {
    use crate::codec::log::{LogItem, LogRecord};
    let p = params(Metric::L2, 4);
    let index = Index::new(p.clone(), busy_at_250());
    let data = random_vectors(41, 900, 4);
    // A crash may leave more unsealed items in the log than max_unsealed_points: items
    // sealed in memory but not yet under a stored manifest come back unsealed.
    let records: Vec<LogRecord> = data[..600]
        .chunks(100)
        .enumerate()
        .map(|(b, chunk)| LogRecord::Add {
            lsn: b as u64 + 1,
            items: chunk
                .iter()
                .enumerate()
                .map(|(i, v)| LogItem {
                    id: format!("r{}", b * 100 + i),
                    vector: v.clone(),
                    metadata: Map::new(),
                })
                .collect(),
        })
        .collect();
    index.replay(records).unwrap();
    assert_eq!(index.replayed_backlog(), 600);
    // New writes are taken up to the limit beside the replayed items...
    index.add(items(&data[600..800], "n", &p), 7).unwrap();
    // ...and refused past it.
    match index.add(items(&data[800..900], "m", &p), 8) {
        Err(IndexError::Busy { message, .. }) => {
            assert!(
                message.contains("has 200 items waiting")
                    && message.contains("besides 600 replayed"),
                "{message}"
            )
        }
        other => panic!("expected busy, got {other:?}"),
    }
    // Seals drain the replayed items first; then the limit holds as always.
    settle(&index);
    assert_eq!(index.replayed_backlog(), 0);
    index.add(items(&data[800..900], "m", &p), 8).unwrap();
    assert_eq!(index.stats().count, 900);
}

#[test]
fn a_multi_segment_index_round_trips_exactly() {
    for distance in [Metric::Cosine, Metric::L2, Metric::Ip] {
        let p = params(distance, 12);
        let data = random_vectors(9, 3500, 12);
        let index = Index::new(p.clone(), small(1000));
        add_all(&index, &data, "id-", 500);
        settle(&index);
        add_all(&index, &data[..300], "g-", 100); // in the growing segment
        index.delete("id-7");
        index.delete("g-3");
        let bytes = index.snapshot().unwrap();
        let restored = Index::decode(&bytes, small(1000)).unwrap();
        assert_eq!(restored.segments(), index.segments(), "{distance:?}");
        assert_eq!(restored.neighbour_lists(), index.neighbour_lists());
        assert_eq!(restored.stats().count, 3500 + 300 - 2);
        assert_eq!(restored.get("id-3"), index.get("id-3"));
        assert!(restored.get("id-7").is_none() && restored.get("g-3").is_none());
        for q in random_vectors(10, 20, 12) {
            let q = query(&p, &q);
            assert_eq!(
                restored.search(&q, 10, 64, None),
                index.search(&q, 10, 64, None)
            );
        }
        // a restored index takes new items and saves again
        restored
            .add(
                p.check_items(vec![NewItem {
                    id: "new".into(),
                    vector: vec![0.5; 12],
                    metadata: Map::new(),
                }])
                .unwrap(),
                0,
            )
            .unwrap();
        let again = Index::decode(&restored.snapshot().unwrap(), small(1000)).unwrap();
        assert_eq!(again.stats().count, 3500 + 300 - 1);
    }
}

#[test]
fn an_empty_index_round_trips() {
    let index = Index::new(params(Metric::Cosine, 4), EngineConfig::default());
    let restored = Index::decode(&index.snapshot().unwrap(), EngineConfig::default()).unwrap();
    assert_eq!(restored.stats().count, 0);
    assert!(restored
        .search(&[1.0, 0.0, 0.0, 0.0], 3, 64, None)
        .is_empty());
}

#[test]
fn damaged_snapshots_are_refused_never_half_loaded() {
    let p = params(Metric::L2, 4);
    let index = Index::new(p.clone(), small(40));
    add_all(&index, &random_vectors(11, 100, 4), "", 25);
    settle(&index);
    index.delete("3");
    let good = index.snapshot().unwrap();
    assert!(Index::decode(&good, small(40)).is_ok());
    for cut in (0..good.len()).step_by(7) {
        assert!(Index::decode(&good[..cut], small(40)).is_err(), "cut {cut}");
    }
    // a flipped byte anywhere is caught (by the JSON, a length or a checksum)
    let mut state = 7u64;
    for _ in 0..400 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = (state >> 33) as usize % good.len();
        let mut bad = good.clone();
        bad[at] ^= 1 << ((state >> 20) % 8);
        if let Ok(restored) = Index::decode(&bad, small(40)) {
            // only a change inside the JSON that keeps it valid and consistent can pass
            assert_eq!(restored.stats().count, 99);
        }
    }
}

/// The files written by vectord 0.1.0 (tests/data/v0.1.0) load with every item as 0.1.0
/// read it back, and are then saved in the current layout.
#[test]
fn files_written_by_0_1_0_load_with_every_item() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/v0.1.0");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    for name in ["legacy-cosine", "legacy-l2", "legacy-ip", "legacy-empty"] {
        let bytes = std::fs::read(dir.join(format!("_vectors/{name}.lhv1"))).unwrap();
        let index = Index::decode(&bytes, EngineConfig::default()).unwrap();
        let want = &expected[name];
        assert_eq!(
            index.stats().count,
            want["count"].as_u64().unwrap() as usize
        );
        assert_eq!(
            index.stats().tombstones,
            want["tombstones"].as_u64().unwrap() as usize
        );
        let p = index.params().clone();
        for (id, item) in want["items"].as_object().unwrap() {
            let got = index
                .get(id)
                .unwrap_or_else(|| panic!("{name}: {id} missing"));
            let vector: Vec<f32> = serde_json::from_value(item["vector"].clone()).unwrap();
            assert_eq!(got.vector, vector, "{name} {id}");
            assert_eq!(Value::Object(got.metadata), item["metadata"], "{name} {id}");
            if p.distance != Metric::Ip {
                let top = &index.search(&vector, 1, 64, None)[0];
                assert_eq!(&top.id, id, "{name}");
            }
        }
        assert!(index.get("item-0").is_none() && index.get("item-45").is_none());
        // rewritten in the current layout, it comes back the same
        let again = Index::decode(&index.snapshot().unwrap(), EngineConfig::default()).unwrap();
        assert_eq!(again.stats().count, index.stats().count);
        assert_eq!(again.neighbour_lists(), index.neighbour_lists());
    }
}
