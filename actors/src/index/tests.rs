//! Tests of the index without actors: recall against brute force, tombstones and upserts,
//! filters, compaction, and the exact graph round trip through LHV1.

use super::*;
use crate::codec;
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

fn items(vectors: &[Vec<f32>], prefix: &str, p: &IndexParams) -> Vec<NewItem> {
    let raw = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| NewItem {
            id: format!("{prefix}{i}"),
            vector: v.clone(),
            metadata: serde_json::from_value(json!({"i": i, "parity": i % 2})).unwrap(),
        })
        .collect();
    p.check_items(raw).unwrap()
}

/// Exact top-k ids by the API's distance.
fn brute_force(p: &IndexParams, data: &[Vec<f32>], query: &[f32], k: usize) -> Vec<usize> {
    let stored: Vec<Vec<f32>> = data
        .iter()
        .map(|v| p.check_vector(v.clone(), "v").unwrap())
        .collect();
    let q = p.check_vector(query.to_vec(), "q").unwrap();
    let mut all: Vec<(f32, usize)> = stored
        .iter()
        .enumerate()
        .map(|(i, v)| (p.distance.reported(&q, v), i))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter().take(k).map(|(_, i)| i).collect()
}

#[test]
fn recall_at_10_is_at_least_095_for_every_distance() {
    let (n, dim, k, ef) = (5000, 32, 10, 128);
    let data = random_vectors(1, n, dim);
    let queries = random_vectors(2, 100, dim);
    for distance in [Metric::Cosine, Metric::L2, Metric::Ip] {
        let p = params(distance, dim);
        let index = Index::new(p.clone());
        index.add(items(&data, "", &p));
        let mut hits = 0;
        for q in &queries {
            let truth = brute_force(&p, &data, q, k);
            let qv = p.check_vector(q.clone(), "q").unwrap();
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
fn an_added_vector_is_found_first_at_distance_zero() {
    for distance in [Metric::Cosine, Metric::L2, Metric::Ip] {
        let p = params(distance, 16);
        let data = random_vectors(3, 2000, 16);
        let index = Index::new(p.clone());
        index.add(items(&data, "x", &p));
        for (i, v) in data.iter().enumerate().step_by(97) {
            let q = p.check_vector(v.clone(), "q").unwrap();
            let hits = index.search(&q, 5, 64, None);
            if distance == Metric::Ip {
                // Under inner product the nearest item need not be the item itself (a
                // longer vector pointing the same way is nearer), but nothing found may be
                // farther than the item itself is.
                let own = Metric::Ip.reported(&q, &q);
                assert!(
                    hits[0].distance <= own + 1e-5,
                    "{} > {own}",
                    hits[0].distance
                );
            } else {
                assert_eq!(hits[0].id, format!("x{i}"), "{distance:?}");
                assert!(
                    hits[0].distance.abs() <= 1e-6,
                    "{distance:?} {}",
                    hits[0].distance
                );
            }
        }
    }
}

#[test]
fn replaced_and_deleted_ids_never_come_back_and_k_live_results_do() {
    let p = params(Metric::L2, 8);
    let data = random_vectors(4, 3000, 8);
    let index = Index::new(p.clone());
    index.add(items(&data, "", &p));
    // delete every third item, replace every fifth with a far-away vector
    for i in (0..3000).step_by(3) {
        assert!(index.delete(&i.to_string()));
    }
    assert!(!index.delete("0"), "a second delete finds nothing");
    let far: Vec<NewItem> = (0..3000)
        .step_by(5)
        .filter(|i| i % 3 != 0)
        .map(|i| NewItem {
            id: i.to_string(),
            vector: vec![100.0; 8],
            metadata: Map::new(),
        })
        .collect();
    let replaced = far.len();
    index.add(p.check_items(far).unwrap());
    let live = 3000 - 1000;
    assert_eq!(index.stats().count, live);
    assert_eq!(index.stats().tombstones, 1000 + replaced);
    for q in random_vectors(5, 50, 8) {
        let hits = index.search(&q, 50, 64, None);
        assert_eq!(hits.len(), 50);
        for h in &hits {
            let i: usize = h.id.parse().unwrap();
            assert!(!i.is_multiple_of(3), "deleted id {i} returned");
            if i.is_multiple_of(5) {
                assert!(
                    h.distance > 100.0,
                    "replaced id {i} returned with its old vector"
                );
            }
        }
        let mut sorted = hits.clone();
        sorted.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        assert_eq!(hits, sorted);
    }
    assert!(index.get("3").is_none());
    assert_eq!(index.get("5").unwrap().vector, vec![100.0; 8]);
}

#[test]
fn filters_return_k_matches_when_they_exist() {
    let p = params(Metric::Cosine, 8);
    let data = random_vectors(6, 4000, 8);
    let index = Index::new(p.clone());
    index.add(items(&data, "", &p));
    let q = p.check_vector(data[0].clone(), "q").unwrap();
    // broad filter (half the points): graph path
    let f: Map<String, Value> = serde_json::from_value(json!({"parity": 1})).unwrap();
    let hits = index.search(&q, 20, 64, Some(&f));
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| h.metadata["parity"] == json!(1)));
    // narrow filter (one point): exact path
    let f: Map<String, Value> = serde_json::from_value(json!({"i": 1234})).unwrap();
    let hits = index.search(&q, 20, 64, Some(&f));
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, "1234");
    // nothing matches
    let f: Map<String, Value> = serde_json::from_value(json!({"i": "1234"})).unwrap();
    assert!(index.search(&q, 20, 64, Some(&f)).is_empty());
}

#[test]
fn compaction_drops_tombstones_and_changes_no_answer() {
    let p = params(Metric::L2, 8);
    let data = random_vectors(7, 3000, 8);
    let index = Index::new(p.clone());
    index.add(items(&data, "", &p));
    for i in 0..1000 {
        index.delete(&i.to_string());
    }
    assert!(index.needs_compaction(0.25));
    let queries = random_vectors(8, 20, 8);
    let before: Vec<Vec<String>> = queries
        .iter()
        .map(|q| {
            index
                .search(q, 10, 256, None)
                .into_iter()
                .map(|h| h.id)
                .collect()
        })
        .collect();
    assert_eq!(index.compact(), 1000);
    let s = index.stats();
    assert_eq!((s.count, s.points, s.tombstones), (2000, 2000, 0));
    assert!(!index.needs_compaction(0.25));
    let mut same = 0;
    for (q, want) in queries.iter().zip(&before) {
        let got: Vec<String> = index
            .search(q, 10, 256, None)
            .into_iter()
            .map(|h| h.id)
            .collect();
        same += got.iter().filter(|id| want.contains(id)).count();
    }
    assert!(same as f64 >= 0.95 * 200.0, "{same}/200 results kept");
    assert_eq!(index.get("2999").unwrap().vector, data[2999]);
}

#[test]
fn lhv1_round_trip_restores_the_exact_graph() {
    for distance in [Metric::Cosine, Metric::L2, Metric::Ip] {
        let p = params(distance, 12);
        let data = random_vectors(9, 1500, 12);
        let index = Index::new(p.clone());
        index.add(items(&data, "id-", &p));
        index.delete("id-7");
        let bytes = index.snapshot().unwrap();
        let (envelope, dump) = codec::decode(&bytes).unwrap();
        let restored = Index::restore(envelope, dump).unwrap();
        assert_eq!(
            restored.neighbour_lists(),
            index.neighbour_lists(),
            "{distance:?}"
        );
        assert_eq!(restored.stats().count, 1499);
        assert_eq!(restored.get("id-3"), index.get("id-3"));
        assert!(restored.get("id-7").is_none());
        for q in random_vectors(10, 20, 12) {
            let q = p.check_vector(q, "q").unwrap();
            assert_eq!(
                restored.search(&q, 10, 64, None),
                index.search(&q, 10, 64, None)
            );
        }
        // a restored index takes new items and saves again
        restored.add(
            p.check_items(vec![NewItem {
                id: "new".into(),
                vector: vec![0.5; 12],
                metadata: Map::new(),
            }])
            .unwrap(),
        );
        let again = restored.snapshot().unwrap();
        let (envelope, dump) = codec::decode(&again).unwrap();
        assert_eq!(Index::restore(envelope, dump).unwrap().stats().count, 1500);
    }
}

#[test]
fn an_empty_index_round_trips_without_a_graph() {
    let index = Index::new(params(Metric::Cosine, 4));
    let bytes = index.snapshot().unwrap();
    let (envelope, dump) = codec::decode(&bytes).unwrap();
    assert!(dump.is_none());
    let restored = Index::restore(envelope, None).unwrap();
    assert_eq!(restored.stats().count, 0);
    assert!(restored
        .search(&[1.0, 0.0, 0.0, 0.0], 3, 64, None)
        .is_empty());
}

#[test]
fn writes_during_a_compaction_are_kept() {
    let p = params(Metric::L2, 8);
    let data = random_vectors(21, 3000, 8);
    let index = Index::new(p.clone());
    index.add(items(&data, "", &p));
    for i in 0..1000 {
        index.delete(&i.to_string());
    }
    let plan = index.plan_compaction();
    // meanwhile: deletes of kept items, new items, and a replacement
    for i in 1000..1100 {
        assert!(index.delete(&i.to_string()));
    }
    let fresh = random_vectors(22, 50, 8);
    index.add(items(&fresh, "new-", &p));
    let replacement = NewItem {
        id: "2999".into(),
        vector: vec![50.0; 8],
        metadata: serde_json::from_value(json!({"v": 2})).unwrap(),
    };
    index.add(p.check_items(vec![replacement]).unwrap());
    index.finish_compaction(plan);

    let s = index.stats();
    assert_eq!(s.count, 1900 + 50);
    // only what was deleted or replaced during the build is left as tombstones
    assert_eq!(s.tombstones, 100 + 1);
    assert_eq!(s.points, 2000 + 50 + 1);
    assert!(index.get("1050").is_none());
    assert_eq!(index.get("new-7").unwrap().vector, fresh[7]);
    let replaced = index.get("2999").unwrap();
    assert_eq!(replaced.vector, vec![50.0; 8]);
    assert_eq!(replaced.metadata["v"], json!(2));
    assert_eq!(index.get("1500").unwrap().vector, data[1500]);
    for q in random_vectors(23, 20, 8) {
        let hits = index.search(&q, 30, 64, None);
        assert_eq!(hits.len(), 30);
        for h in hits {
            if let Ok(i) = h.id.parse::<usize>() {
                assert!(i >= 1100, "deleted id {i} returned");
            }
        }
    }
    let hit = &index.search(&fresh[3], 1, 64, None)[0];
    assert_eq!((hit.id.as_str(), hit.distance), ("new-3", 0.0));
    // and it still round-trips
    let (envelope, dump) = codec::decode(&index.snapshot().unwrap()).unwrap();
    assert_eq!(Index::restore(envelope, dump).unwrap().stats().count, 1950);
}
