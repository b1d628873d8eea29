//! The storeclient against the real storaged binary: escaping round trips, the typed
//! `KeyNotFound`, idempotent delete, list by prefix, big objects, refused keys.

mod common;

use bytes::Bytes;
use common::*;
use std::time::Duration;
use vectord_actors::storeclient::{StoreClient, StoreError};

#[actix_rt::test]
async fn storeclient_against_real_storaged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let server = storaged(dir.path(), &root, None);
    let client = StoreClient::new(&server.url, Duration::from_secs(10));

    // keys with characters that need escaping round-trip, in get and in list
    let keys = [
        "plain/key.bin",
        "with space/a b",
        "unicode/é ü 漢",
        "pct/100%",
        "q/what?",
        "hash/#1",
        "plus/a+b",
    ];
    for (i, key) in keys.iter().enumerate() {
        client
            .put(key, Bytes::from(format!("value {i}")))
            .await
            .unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            client.get(key).await.unwrap(),
            Bytes::from(format!("value {i}")),
            "{key}"
        );
    }
    let mut listed: Vec<String> = client
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    listed.sort();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);

    // overwrite, list by prefix with sizes
    client
        .put("plain/key.bin", Bytes::from_static(b"new"))
        .await
        .unwrap();
    client
        .put("plain/other", Bytes::from_static(b"12345"))
        .await
        .unwrap();
    let plain = client.list("plain/").await.unwrap();
    let sizes: Vec<(String, u64)> = plain.into_iter().map(|o| (o.key, o.size)).collect();
    assert_eq!(
        sizes,
        [
            ("plain/key.bin".to_string(), 3),
            ("plain/other".to_string(), 5)
        ]
    );
    assert!(client.list("nothing-here/").await.unwrap().is_empty());

    // missing key is the typed variant, never a message match
    match client.get("plain/missing").await {
        Err(StoreError::KeyNotFound(k)) => assert_eq!(k, "plain/missing"),
        other => panic!("expected KeyNotFound, got {other:?}"),
    }

    // delete is idempotent
    client.delete("plain/other").await.unwrap();
    client.delete("plain/other").await.unwrap();
    assert!(matches!(
        client.get("plain/other").await,
        Err(StoreError::KeyNotFound(_))
    ));

    // an object beyond awc's default 2 MiB response limit
    let big: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    client
        .put("big/object", Bytes::from(big.clone()))
        .await
        .unwrap();
    assert_eq!(client.get("big/object").await.unwrap().len(), big.len());
    assert_eq!(client.get("big/object").await.unwrap(), Bytes::from(big));

    // keys that would leave the root are refused with a 400 and a preview of the reason
    for bad in ["a/../b", "../x", "a//b", "./a"] {
        match client.put(bad, Bytes::from_static(b"x")).await {
            Err(StoreError::Status {
                status: 400,
                preview,
                ..
            }) => assert!(preview.contains("key"), "{preview}"),
            other => panic!("{bad}: expected a 400, got {other:?}"),
        }
    }
    assert!(!dir.path().join("b").exists() && !dir.path().join("x").exists());

    // storaged gone: a transport error, not KeyNotFound
    drop(server);
    assert!(matches!(
        client.get("plain/key.bin").await,
        Err(StoreError::Transport { .. })
    ));
}
