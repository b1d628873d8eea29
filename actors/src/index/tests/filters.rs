//! Filtered search: k matches, recall against brute force, remembered results.

use super::*;

#[test]
fn filters_return_k_matches_when_they_exist() {
    let p = params(Metric::Cosine, 8);
    let data = random_vectors(6, 6000, 8);
    let index = Index::new(p.clone(), small(2500));
    add_all(&index, &data, "", 1000);
    settle(&index);
    let q = query(&p, &data[0]);
    // broad filter (half the points): graph walk with a filter
    let f = filter_of(json!({"parity": 1}));
    let hits = index.search(&q, 20, 64, Some(&f));
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| h.metadata["parity"] == json!(1)));
    // narrow filter (one point): exact scan
    let f = filter_of(json!({"i": 1234}));
    let hits = index.search(&q, 20, 64, Some(&f));
    assert_eq!(ids(&hits), ["1234"]);
    // nothing matches
    let f = filter_of(json!({"i": "1234"}));
    assert!(index.search(&q, 20, 64, Some(&f)).is_empty());
    // k larger than the matches: all of them
    let f = filter_of(json!({"parity": 0}));
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
            let filter = filter_of(json!({ key: value }));
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
    let any = filter_of(json!({"parity": 1}));
    index.search(&query(&p, &data[1]), 10, 64, Some(&any));
    index.search(&query(&p, &data[1]), 10, 64, Some(&any));
    let grown = index.stats().memory_bytes - before;
    assert!(grown > 5000 / 8 && grown < 5000 + 1000, "grew by {grown}");
    // deleted before any search with its filter: never found
    index.delete("2");
    let f = filter_of(json!({"parity": 0}));
    let q = query(&p, &data[2]);
    for _ in 0..3 {
        assert!(index
            .search(&q, 10, 64, Some(&f))
            .iter()
            .all(|h| h.id != "2"));
    }
    let q = query(&p, &data[0]);
    for filter in [json!({"parity": 0}), json!({"i": 1}), json!({"i": 2003})] {
        let f = filter_of(filter.clone());
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
fn field_indexes_answer_every_filter_as_reading_metadata_does() {
    // Sealed segments past 2,048 points, one index with field indexes on both fields and
    // one without: filters of every width (half the points to three of them), ranges,
    // `$in`, `$and`, `$or`, answered with k matches at recall >= 0.95 by both, by an
    // index scan (narrow) or an index walk (broad; below half the points, two-hop) on
    // the first.
    let (n, dim, k, ef) = (8000, 16, 10, 64);
    let p = params(Metric::L2, dim);
    let data = random_vectors(21, n, dim);
    let indexed = Index::new(p.clone(), small(4000));
    let declared = crate::params::parse_fields(&json!({"i": "integer", "parity": "float"}));
    indexed.declare_fields(&declared.unwrap()).unwrap();
    let plain = Index::new(p.clone(), small(4000));
    for index in [&indexed, &plain] {
        add_all(index, &data, "", 1000);
        settle(index);
    }
    assert!(!indexed.fields_pending());
    // delete a few items every filter below matches: they must never come back
    for i in [0, 4, 7998] {
        assert!(indexed.delete(&i.to_string()) && plain.delete(&i.to_string()));
    }
    type Passes = fn(usize) -> bool;
    let pass: [(Value, Passes); 7] = [
        // 42 % of each segment: a walk among the passing points (two hops)
        (
            json!({"$or": [{"i": {"$lt": 1700}}, {"i": {"$gte": 4000, "$lt": 5700}}]}),
            |i| i < 1700 || (4000..5700).contains(&i),
        ),
        (json!({"parity": 0}), |i| i % 2 == 0),
        (json!({"i": {"$lt": 800}}), |i| i < 800),
        (json!({"i": {"$gte": 100, "$lt": 180}}), |i| {
            (100..180).contains(&i)
        }),
        (json!({"i": {"$in": [0, 5, 77, 7999]}}), |i| {
            [0, 5, 77, 7999].contains(&i)
        }),
        (
            json!({"$and": [{"parity": 0}, {"i": {"$lte": 400}}]}),
            |i| i % 2 == 0 && i <= 400,
        ),
        (json!({"$or": [{"i": 3}, {"i": {"$gt": 7000}}]}), |i| {
            i == 3 || i > 7000
        }),
    ];
    let deleted = [0usize, 4, 7998];
    let queries = random_vectors(22, 20, dim);
    for (filter, passes) in pass {
        let matching: Vec<usize> = (0..n)
            .filter(|&i| passes(i) && !deleted.contains(&i))
            .collect();
        let subset: Vec<Vec<f32>> = matching.iter().map(|&i| data[i].clone()).collect();
        let f = filter_of(filter.clone());
        for index in [&indexed, &plain] {
            let (mut hits, mut wanted) = (0, 0);
            for q in &queries {
                let qv = query(&p, q);
                let truth: Vec<usize> = brute_force(&p, &subset, &qv, k)
                    .into_iter()
                    .map(|i| matching[i])
                    .collect();
                let got = index.search(&qv, k, ef, Some(&f));
                assert_eq!(got.len(), truth.len(), "{filter}: k matches or all");
                let got: Vec<usize> = got.iter().map(|h| h.id.parse().unwrap()).collect();
                assert!(
                    got.iter().all(|&i| passes(i) && !deleted.contains(&i)),
                    "{filter}"
                );
                hits += got.iter().filter(|i| truth.contains(i)).count();
                wanted += truth.len();
            }
            let recall = hits as f64 / wanted as f64;
            assert!(recall >= 0.95, "{filter}: recall@10 {recall}");
        }
    }
}

#[test]
fn a_field_declared_later_is_indexed_in_the_background() {
    let p = params(Metric::Cosine, 8);
    let data = random_vectors(23, 3000, 8);
    let index = Index::new(p.clone(), small(1000));
    add_all(&index, &data, "", 500);
    settle(&index);
    let before: Vec<u64> = index
        .segments()
        .iter()
        .filter(|s| s.sealed)
        .map(|s| s.id)
        .collect();
    let declared = crate::params::parse_fields(&json!({"parity": "integer"})).unwrap();
    index.declare_fields(&declared).unwrap();
    assert!(index.fields_pending());
    // searches go on meanwhile, by reading metadata
    let q = query(&p, &data[1]);
    let f = filter_of(json!({"parity": 1}));
    assert_eq!(index.search(&q, 5, 32, Some(&f)).len(), 5);
    settle(&index);
    assert!(!index.fields_pending());
    // each sealed segment was renumbered, so that it is stored again with its indexes
    let after: Vec<u64> = index
        .segments()
        .iter()
        .filter(|s| s.sealed)
        .map(|s| s.id)
        .collect();
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "{before:?} {after:?}"
    );
    assert_eq!(ids(&index.search(&q, 1, 32, Some(&f))), ["1"]);
    // another kind for the same field is refused, and changes nothing
    let other = crate::params::parse_fields(&json!({"parity": "keyword"})).unwrap();
    assert!(index.declare_fields(&other).is_err());
    assert_eq!(index.fields(), declared);
}
