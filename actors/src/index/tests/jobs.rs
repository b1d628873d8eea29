//! Background seals, merges and compactions: what they keep, and the writes meanwhile.

use std::sync::Arc;

use super::*;

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
    assert!(
        index
            .segments()
            .iter()
            .any(|s| s.sealed && s.points == 2400),
        "the four sealed segments were merged: {:?}",
        index.segments()
    );
    for (&i, want) in probes.iter().zip(&before) {
        let got = &index.search(&query(&p, &data[i]), 1, 64, None)[0];
        assert_eq!(got, want);
        assert_eq!(got.id, i.to_string());
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
fn near_the_ceiling_a_merge_takes_as_many_of_a_tier_as_fit() {
    // four sealed segments of 1000 in one tier (factor 4): all four would pass the
    // ceiling, so the smallest that fit are merged, and nothing grows past it; then the
    // tier holds fewer than four and waits for more (before, none of the four merged)
    for (ceiling, want) in [(3000, vec![1000, 3000]), (2500, vec![1000, 1000, 2000])] {
        let p = params(Metric::L2, 8);
        let data = random_vectors(8, 4000, 8);
        let config = EngineConfig {
            max_segment_points: ceiling,
            ..small(1000)
        };
        let index = Index::new(p.clone(), config);
        seal_each(&index, &data, 1000);
        assert_eq!(index.segments().iter().filter(|s| s.sealed).count(), 4);
        settle(&index);
        let mut sizes: Vec<usize> = index
            .segments()
            .iter()
            .filter(|s| s.sealed)
            .map(|s| s.points)
            .collect();
        sizes.sort_unstable();
        assert_eq!(sizes, want, "ceiling {ceiling}");
        assert_eq!(index.stats().count, 4000);
        for i in (0..4000).step_by(173) {
            let hit = &index.search(&data[i], 1, 64, None)[0];
            assert_eq!((hit.id.clone(), hit.distance), (i.to_string(), 0.0));
        }
    }
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
        document: None,
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
    seal_each(&index, &data, 1000);
    let job = index
        .next_job(JobKind::Merge)
        .expect("two sealed segments of one tier");
    assert_eq!(job.segments().len(), 2);
    // meanwhile: deletes in both segments, a replacement in each
    for i in (0..2000).step_by(10) {
        assert!(index.delete(&i.to_string()));
    }
    let replacements = ["5", "1005"].map(|id| NewItem {
        document: None,
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
            document: None,
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

/// Adds `data` in chunks of `size`, sealing each chunk into a segment of its own (the
/// actor would coalesce chunks that wait together).
fn seal_each(index: &Index, data: &[Vec<f32>], size: usize) {
    let p = index.params().clone();
    for (b, chunk) in data.chunks(size).enumerate() {
        index.add(items_from(b * size, chunk, "", &p), 0).unwrap();
        let job = index.next_job(JobKind::Seal).unwrap();
        let built = index.build(job).unwrap();
        index.install(built);
    }
}
