//! Property test of the backend (`super::backend`): random sequences of
//! put/get/delete/list over keys drawn from a small alphabet — segments with `:`, `%`, `#`,
//! an escaped `/`, the aside suffix, and keys that are `/`-prefixes of each other — checked
//! after every operation against a `BTreeMap` model, on every backend (local disk, memory,
//! S3 when a server is available). On local disk the directory is also checked after each
//! sequence (no temp file, no empty directory) and reopened (the same objects come back).
//!
//! The generator is seeded; a failure names the seed and the operations so far, and
//! `STORAGED_MODEL_SEED=<seed>` replays that one sequence.

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use futures::stream::{self, TryStreamExt};

use super::backend::Backend;
use super::keys::Key;
use super::object::{BackendError, Listed};
use super::testing::test_backends;

/// Segments, as on the wire.
const SEGMENTS: &[&str] = &[
    "a", "b", "a:", ":", "100%25", "a%2Fb", "%23obj", "a%231", "x.lhv1", "%C3%A9",
];

/// splitmix64: small, seedable, good enough to draw test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug)]
enum Op {
    Put(String, usize),
    Get(String),
    Delete(String),
    List(String),
}

/// A wire key of 1–3 segments; short keys come up often, so that prefixes collide.
fn random_key(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(3);
    (0..depth)
        .map(|_| SEGMENTS[rng.below(SEGMENTS.len())])
        .collect::<Vec<_>>()
        .join("/")
}

fn random_op(rng: &mut Rng, model: &BTreeMap<Key, Vec<u8>>) -> Op {
    // Half the reads and deletes go to keys that exist.
    let existing = |rng: &mut Rng| -> String {
        if !model.is_empty() && rng.below(2) == 0 {
            let k = model.keys().nth(rng.below(model.len())).unwrap();
            wire(k)
        } else {
            random_key(rng)
        }
    };
    match rng.below(10) {
        0..=3 => Op::Put(random_key(rng), rng.below(40)),
        4..=5 => Op::Get(existing(rng)),
        6..=7 => Op::Delete(existing(rng)),
        _ => {
            // a prefix of a shown key, cut anywhere
            let shown = Key::from_wire(&random_key(rng)).unwrap().display();
            let cut = rng.below(shown.len() + 1);
            let cut = (0..=cut)
                .rev()
                .find(|&i| shown.is_char_boundary(i))
                .unwrap();
            Op::List(shown[..cut].to_string())
        }
    }
}

/// The wire form of a key.
fn wire(k: &Key) -> String {
    k.segments()
        .iter()
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn value(seed: u64, step: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize).wrapping_add(step * 31 + i) as u8)
        .collect()
}

async fn read(store: &Backend, k: &Key) -> Result<Vec<u8>, BackendError> {
    let obj = store.get(k).await?;
    let parts: Vec<Bytes> = obj
        .body
        .try_collect()
        .await
        .map_err(|e| BackendError::Storage(e.to_string()))?;
    let data = parts.concat();
    assert_eq!(data.len() as u64, obj.size);
    Ok(data)
}

fn expected_list(model: &BTreeMap<Key, Vec<u8>>, prefix: &str) -> Vec<Listed> {
    let mut out: Vec<Listed> = model
        .iter()
        .map(|(k, v)| Listed {
            key: k.display(),
            size: v.len() as u64,
        })
        .filter(|l| l.key.starts_with(prefix))
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Runs one random sequence on `store`; returns the model at the end.
async fn run(store: &Backend, name: &str, seed: u64, ops: usize) -> BTreeMap<Key, Vec<u8>> {
    let mut rng = Rng(seed);
    let mut model: BTreeMap<Key, Vec<u8>> = BTreeMap::new();
    let mut done: Vec<Op> = Vec::new();
    for step in 0..ops {
        let op = random_op(&mut rng, &model);
        let ctx = || format!("{name}, seed {seed}, step {step}: {op:?}\nafter {done:?}");
        match &op {
            Op::Put(k, len) => {
                let key = Key::from_wire(k).unwrap();
                let data = value(seed, step, *len);
                let body = stream::iter([Ok::<_, io::Error>(Bytes::from(data.clone()))]);
                let size = store
                    .put(&key, body, 1 << 20)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
                assert_eq!(size, *len as u64, "{}", ctx());
                model.insert(key, data);
            }
            Op::Get(k) => {
                let key = Key::from_wire(k).unwrap();
                match (read(store, &key).await, model.get(&key)) {
                    (Ok(got), Some(want)) => assert_eq!(&got, want, "{}", ctx()),
                    (Err(BackendError::NotFound), None) => {}
                    (got, want) => panic!(
                        "{}: got {:?}, model has {want:?}",
                        ctx(),
                        got.map_err(|e| e.to_string())
                    ),
                }
            }
            Op::Delete(k) => {
                let key = Key::from_wire(k).unwrap();
                store
                    .delete(&key)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
                model.remove(&key);
            }
            Op::List(prefix) => {
                let got = store
                    .list(prefix)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
                assert_eq!(got, expected_list(&model, prefix), "{}", ctx());
            }
        }
        done.push(op);
    }
    // everything is there, with its bytes
    assert_eq!(
        store.list("").await.unwrap(),
        expected_list(&model, ""),
        "{name}, seed {seed}, end"
    );
    for (k, v) in &model {
        assert_eq!(
            &read(store, k).await.unwrap(),
            v,
            "{name}, seed {seed}, end: {k}"
        );
    }
    model
}

/// Temp files and empty directories under `dir` (there should be none).
fn leftovers(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries = 0;
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            entries += 1;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if name
                .rsplit_once('#')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                out.push(e.path().display().to_string());
            }
        }
        if entries == 0 && d != root {
            out.push(format!("{}/ (empty)", d.display()));
        }
    }
    out
}

fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("STORAGED_MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("STORAGED_MODEL_SEED is a number")],
        Err(_) => (1..=count)
            .map(|i| i.wrapping_mul(0x2545_F491_4F6C_DD1D))
            .collect(),
    }
}

#[tokio::test]
async fn random_operations_match_a_model_on_every_backend() {
    for (i, seed) in seeds(40).into_iter().enumerate() {
        for t in test_backends("model") {
            // Memory is cheap; local disk fsyncs every change; S3 round trips are slower.
            let (runs, ops) = match t.name {
                "memory" => (40, 250),
                "local" => (20, 200),
                _ => (5, 120),
            };
            if i >= runs {
                continue;
            }
            let model = run(&t.store, t.name, seed, ops).await;
            let Some(dir) = &t.dir else { continue };
            assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "seed {seed}");
            // reopened, the same objects
            let again = Backend::local(dir.path()).unwrap();
            assert_eq!(
                again.list("").await.unwrap(),
                expected_list(&model, ""),
                "seed {seed}, reopened"
            );
            for (k, v) in &model {
                assert_eq!(
                    &read(&again, k).await.unwrap(),
                    v,
                    "seed {seed}, reopened: {k}"
                );
            }
            // deleting everything leaves an empty root
            for k in model.keys() {
                again.delete(k).await.unwrap();
            }
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                0,
                "seed {seed}"
            );
        }
    }
}
