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
