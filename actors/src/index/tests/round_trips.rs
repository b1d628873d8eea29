//! Persisted forms: exact LHV1 round trips, damaged snapshots, files of vectord 0.1.0.

use super::*;

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
        let bytes = index.to_one_object().unwrap();
        let restored = Index::from_one_object(&bytes, small(1000)).unwrap();
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
                    document: None,
                    id: "new".into(),
                    vector: vec![0.5; 12],
                    metadata: Map::new(),
                }])
                .unwrap(),
                0,
            )
            .unwrap();
        let again =
            Index::from_one_object(&restored.to_one_object().unwrap(), small(1000)).unwrap();
        assert_eq!(again.stats().count, 3500 + 300 - 1);
    }
}

#[test]
fn an_empty_index_round_trips() {
    let index = Index::new(params(Metric::Cosine, 4), EngineConfig::default());
    let restored =
        Index::from_one_object(&index.to_one_object().unwrap(), EngineConfig::default()).unwrap();
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
    let good = index.to_one_object().unwrap();
    assert!(Index::from_one_object(&good, small(40)).is_ok());
    for cut in (0..good.len()).step_by(7) {
        assert!(
            Index::from_one_object(&good[..cut], small(40)).is_err(),
            "cut {cut}"
        );
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
        if let Ok(restored) = Index::from_one_object(&bad, small(40)) {
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
        let index = Index::from_one_object(&bytes, EngineConfig::default()).unwrap();
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
        let again =
            Index::from_one_object(&index.to_one_object().unwrap(), EngineConfig::default())
                .unwrap();
        assert_eq!(again.stats().count, index.stats().count);
        assert_eq!(again.neighbour_lists(), index.neighbour_lists());
    }
}
