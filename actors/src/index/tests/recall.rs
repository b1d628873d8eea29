//! Search quality: recall@10 against brute force, and each added vector found first.

use super::*;

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

/// `data` as an index stores it (checked, unit length under cosine), point i with id i.
fn stored_points(p: &IndexParams, data: &[Vec<f32>]) -> points::Points {
    let mut points = points::Points::new(p.dim);
    for (i, v) in data.iter().enumerate() {
        let v = p.check_vector(v.clone(), "v").unwrap();
        points.push(&i.to_string(), &v, serde_json::Map::new(), None);
    }
    points
}

/// Recall@10 of `graph` over `points` at `ef`, against brute force.
fn graph_recall(
    graph: &FlatGraph,
    points: &points::Points,
    p: &IndexParams,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    ef: usize,
) -> f64 {
    let kern = crate::distance::kernels();
    let (dot, l2) = (kern.dot, kern.l2_squared);
    let distance = |a: &[f32], b: &[f32]| match p.distance {
        Metric::L2 => l2(a, b),
        Metric::Cosine | Metric::Ip => 1.0 - dot(a, b),
    };
    let mut hits = 0;
    for q in queries {
        let qv = query(p, q);
        let truth = brute_force(p, data, &qv, 10);
        let found =
            scratch::with_scratch(|s| graph.search(points, &qv, ef, &distance, &|_| true, s));
        hits += found
            .iter()
            .take(10)
            .filter(|c| truth.contains(&(c.point as usize)))
            .count();
    }
    hits as f64 / (queries.len() * 10) as f64
}

#[test]
fn our_seal_build_finds_what_hnsw_rs_builds_find() {
    // hnsw_rs left the write path for our own insert; it stays the reference here.
    let (n, dim) = (4000, 48);
    let data = random_vectors(7, n, dim);
    let queries = random_vectors(8, 100, dim);
    for distance in [Metric::Cosine, Metric::L2] {
        let p = params(distance, dim);
        let points = stored_points(&p, &data);
        let ours = build::build_graph(&points, distance, p.m, p.ef_construction, 3)
            .unwrap()
            .unwrap();
        let reference = hnsw::Graph::new(distance, p.m, p.ef_construction, n);
        let batch: Vec<(&[f32], usize)> = (0..n).map(|i| (points.vector(i), i)).collect();
        reference.insert(&batch);
        let reference = reference.export(n, p.m).unwrap();
        for ef in [16, 64] {
            let (a, b) = (
                graph_recall(&ours, &points, &p, &data, &queries, ef),
                graph_recall(&reference, &points, &p, &data, &queries, ef),
            );
            // hnsw_rs keeps the nearest back links where ours (as hnswlib) prunes them by the
            // selection heuristic: on uniform random vectors, hard at an ef as low as k,
            // that costs ours 0.03-0.05 at ef 16 and 0.005-0.012 at ef 64 (parallel builds
            // vary by as much again); nothing on real embeddings (docs/benchmarks.md). The
            // test guards against a build that is broken, not against those.
            let slack = if ef < 32 { 0.08 } else { 0.03 };
            assert!(
                a >= b - slack,
                "{distance:?} ef {ef}: ours {a}, hnsw_rs {b}"
            );
        }
    }
}

#[test]
fn int8_codes_with_rescoring_keep_recall_and_survive_a_reload() {
    let (n, dim, k) = (6000, 64, 10);
    let data = random_vectors(11, n, dim);
    let queries = random_vectors(12, 100, dim);
    for distance in [Metric::Cosine, Metric::L2] {
        let p = IndexParams {
            quantization: Some(crate::params::Quantization {
                kind: crate::params::QuantizationKind::Int8,
                quantile: 0.99,
            }),
            ..params(distance, dim)
        };
        let index = Index::new(p.clone(), small(2000));
        add_all(&index, &data, "", 1000);
        index.freeze_if_at_least(1);
        settle(&index);
        let recall = |index: &Index, rescore: Rescore, ef: usize| {
            let mut hits = 0;
            for q in &queries {
                let qv = query(&p, q);
                let truth = brute_force(&p, &data, &qv, k);
                let found = index.search_with(&qv, k, ef, None, Extras::default(), rescore);
                hits += found
                    .iter()
                    .filter(|h| truth.contains(&h.id.parse().unwrap()))
                    .count();
            }
            hits as f64 / (queries.len() * k) as f64
        };
        let rescored = recall(&index, Rescore::default(), 128);
        let alone = recall(
            &index,
            Rescore {
                rescore: false,
                ..Rescore::default()
            },
            128,
        );
        assert!(
            rescored >= 0.95,
            "{distance:?}: int8 + rescore recall {rescored}"
        );
        assert!(alone >= 0.8, "{distance:?}: int8 alone recall {alone}");
        assert!(index.stats().memory_bytes > 0);
        // rescored results report the exact distance of the stored vectors
        let qv = query(&p, &queries[0]);
        let hit = &index.search(&qv, 1, 128, None)[0];
        let stored = index.get(&hit.id).unwrap().vector;
        let exact = match distance {
            Metric::L2 => stored
                .iter()
                .zip(&qv)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt(),
            _ => 1.0 - stored.iter().zip(&qv).map(|(a, b)| a * b).sum::<f32>(),
        };
        assert!(
            (hit.distance - exact).abs() < 1e-4,
            "{} vs {exact}",
            hit.distance
        );
        // a reload computes the codes again: the same answers
        let bytes = index.to_one_object().unwrap();
        let back = Index::from_one_object(&bytes, small(2000)).unwrap();
        assert_eq!(back.params().quantization, p.quantization);
        assert_eq!(recall(&back, Rescore::default(), 128), rescored);
    }
}

#[test]
fn every_point_of_a_built_graph_is_linked_to_and_finds_itself() {
    // The selection heuristic may prune away every link to a point; the build links such
    // a point back (`insert::link_unreached`), or no search could ever return it.
    // ef = n: a walk that can reach every point finds each (at ef 128, one search in about
    // 36,000 missed its own point: the approximate search, not the graph).
    let (n, dim) = (1500, 24);
    for seed in 0..4u64 {
        let data = random_vectors(100 + seed, n, dim);
        for distance in [Metric::Cosine, Metric::L2] {
            let p = params(distance, dim);
            let points = stored_points(&p, &data);
            let g = build::build_graph(&points, distance, p.m, p.ef_construction, seed)
                .unwrap()
                .unwrap();
            let kern = crate::distance::kernels();
            let (dot, l2) = (kern.dot, kern.l2_squared);
            let d = |a: &[f32], b: &[f32]| match distance {
                Metric::L2 => l2(a, b),
                _ => 1.0 - dot(a, b),
            };
            let mut linked = vec![0u32; n];
            for layers in g.neighbour_lists() {
                for &q in &layers[0] {
                    linked[q as usize] += 1;
                }
            }
            // the entry point needs no link to it
            let orphans = (0..n)
                .filter(|&q| linked[q] == 0 && q as u32 != g.entry())
                .count();
            let misses = (0..n)
                .filter(|&i| {
                    let f = scratch::with_scratch(|s| {
                        g.search(&points, points.vector(i), n, &d, &|_| true, s)
                    });
                    f.first().map(|c| c.point as usize) != Some(i)
                        && f.first().is_none_or(|c| c.distance > 1e-6)
                })
                .count();
            assert_eq!((orphans, misses), (0, 0), "seed {seed} {distance:?}");
        }
    }
}
