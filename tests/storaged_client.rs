//! The storaged client against the real storaged binary, on both backends (a local directory,
//! and an S3-compatible server: moto or Garage, see `vectord::storaged::testing`): escaping
//! round trips, the typed `KeyNotFound`, idempotent delete, list by prefix, keys that are
//! prefixes of each other, big objects (multipart on S3), refused keys.

mod common;

use bytes::Bytes;
use common::*;
use std::path::Path;
use std::time::Duration;
use vectord::storaged::testing::{s3_server, S3Server};
use vectord_actors::storaged_client::{StoragedClient, StoreError};

#[actix_rt::test]
async fn storaged_client_against_real_storaged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let server = storaged(dir.path(), &root, None);
    exercise(server, Some(&root)).await;
}

#[actix_rt::test]
async fn storaged_client_against_real_storaged_on_s3() {
    let Some(s3) = s3_server("storaged_client_against_real_storaged_on_s3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = storaged_on_s3(dir.path(), s3, "storaged_client");
    let log = server.log.clone();
    exercise(server, None).await;
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("S3 bucket"), "{log}");
    assert!(
        !log.contains(&s3.secret_access_key),
        "the secret key is in the log:\n{log}"
    );
}

/// A storaged binary serving `s3` under a fresh prefix.
fn storaged_on_s3(dir: &Path, s3: &S3Server, test: &str) -> Proc {
    storaged_with(dir, s3.storaged_flags(test), None)
}

/// The storaged client's whole surface against `server` (storing under `root` when local).
async fn exercise(server: Proc, root: Option<&Path>) {
    let client = StoragedClient::new(&server.url, Duration::from_secs(60));

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

    // keys that are prefixes of each other, and a last segment ending in `:`
    for (k, v) in [("n/a", "1"), ("n/a/b", "2"), ("n/a:", "3"), ("n", "4")] {
        client.put(k, Bytes::from(v)).await.unwrap();
    }
    client.delete("n/a/b").await.unwrap();
    client.put("n/a/b/c", Bytes::from("5")).await.unwrap();
    for (k, v) in [("n/a", "1"), ("n/a/b/c", "5"), ("n/a:", "3"), ("n", "4")] {
        assert_eq!(client.get(k).await.unwrap(), Bytes::from(v), "{k}");
    }
    let listed: Vec<String> = client
        .list("n")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, ["n", "n/a", "n/a/b/c", "n/a:"]);
    for k in ["n", "n/a", "n/a/b/c", "n/a:"] {
        client.delete(k).await.unwrap();
    }
    assert!(client.list("n").await.unwrap().is_empty());
    if let Some(root) = root {
        assert!(
            !root.join("n").exists(),
            "deletes leave no directory behind"
        );
    }

    // an object beyond awc's default 2 MiB response limit, and past two 16 MiB parts of an
    // S3 multipart upload
    let big: Vec<u8> = (0..37 * 1024 * 1024 + 5).map(|i| (i % 251) as u8).collect();
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
    if let Some(root) = root {
        let parent = root.parent().unwrap();
        assert!(!parent.join("b").exists() && !parent.join("x").exists());
    }

    // storaged gone: a transport error, not KeyNotFound
    drop(server);
    assert!(matches!(
        client.get("plain/key.bin").await,
        Err(StoreError::Transport { .. })
    ));
}
