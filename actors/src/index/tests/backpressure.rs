//! Back-pressure: `add` busy while too much waits to be sealed, replayed items aside.

use super::*;

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
                    document: None,
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
