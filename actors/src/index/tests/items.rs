//! Items replaced and deleted across segments, as counts, `get` and search see them.

use super::*;

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
            document: None,
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
