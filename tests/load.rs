//! vectord-load against a real vectord: the three input formats (files written here), index
//! creation, resuming with --skip, errors that name their line or problem, exit codes, and
//! retries while vectord is unreachable or busy.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// What a run of vectord-load did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs vectord-load with `args` (stdout and stderr to files, so never a terminal) and
/// waits at most 60 s for it.
fn load(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = dir.join(format!("load-{n}.out"));
    let err = dir.join(format!("load-{n}.err"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vectord-load"));
    cmd.args(args)
        .env_remove("VECTORD_URL")
        .env_remove("VECTORD_API_KEY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start vectord-load");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "vectord-load {args:?} did not end within 60 s; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    let mut b = Vec::new();
    for r in rows {
        b.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for x in r {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

/// An .npy file as numpy writes it: the header dict padded with spaces to a multiple of 64.
fn npy_bytes(version: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let fortran = if fortran { "True" } else { "False" };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    let prefix = if version == 1 { 10 } else { 12 };
    while (prefix + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut b = b"\x93NUMPY".to_vec();
    b.extend_from_slice(&[version, 0]);
    if version == 1 {
        b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(dict.as_bytes());
    b.extend_from_slice(data);
    b
}

fn f32_bytes(rows: &[Vec<f32>]) -> Vec<u8> {
    rows.iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

fn write_npy(path: &Path, version: u8, rows: &[Vec<f32>]) {
    let shape = format!("({}, {})", rows.len(), rows[0].len());
    std::fs::write(
        path,
        npy_bytes(version, "<f4", false, &shape, &f32_bytes(rows)),
    )
    .unwrap();
}

fn jsonl_line(id: &str, v: &[f32], meta: Option<Value>) -> String {
    let mut item = json!({"id": id, "vector": v});
    if let Some(m) = meta {
        item["metadata"] = m;
    }
    item.to_string()
}

fn count(api: &Api, index: &str) -> u64 {
    let (s, info) = api.get(&format!("/vectors/index/{index}"));
    assert_eq!(s, 200, "{info}");
    info["count"].as_u64().unwrap()
}

/// The stored vector of `id` (percent-escaped by the caller where needed).
fn item(api: &Api, index: &str, id: &str) -> Value {
    let (s, item) = api.get(&format!("/vectors/index/{index}/items/{id}"));
    assert_eq!(s, 200, "{index}/{id}: {item}");
    item
}

fn vector_of(item: &Value) -> Vec<f32> {
    item["vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-6, "{what}: {a:?} vs {b:?}");
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn the_three_formats_load_with_create() {
    let dir = tempfile::tempdir().unwrap();
    let v = ephemeral(dir.path());
    let api = v.api();

    // .fvecs, l2, several connections, a last partial batch, flush in ephemeral mode
    let rows = vectors(1, 250, 8);
    let fvecs = dir.path().join("base.fvecs");
    write_fvecs(&fvecs, &rows);
    let r = load(
        dir.path(),
        &[
            p(&fvecs),
            "--url",
            &v.url,
            "--index",
            "fv",
            "--create",
            "--distance",
            "l2",
            "--m",
            "8",
            "--batch",
            "64",
            "--connections",
            "3",
            "--id-prefix",
            "f-",
            "--flush",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r}");
    for line in [
        "vectors sent: 250 (rows 0-249)",
        "batches: 4",
        "retries: 0",
        "index count: 250",
        "flush: not persisted",
    ] {
        assert!(r.stdout.contains(line), "{line:?} missing: {r}");
    }
    let (_, info) = api.get("/vectors/index/fv");
    assert_eq!(
        (&info["dim"], &info["distance"], &info["m"], &info["count"]),
        (&json!(8), &json!("l2"), &json!(8), &json!(250)),
        "{info}"
    );
    for i in [0usize, 137, 249] {
        assert_close(
            &vector_of(&item(&api, "fv", &format!("f-{i}"))),
            &rows[i],
            "fvecs row",
        );
    }

    // .npy version 1 (ip), then a version 3 file into the same index (created already:
    // --create with the same dimension is fine)
    let rows = vectors(2, 300, 5);
    let npy = dir.path().join("base.npy");
    write_npy(&npy, 1, &rows);
    let r = load(
        dir.path(),
        &[
            p(&npy),
            "--url",
            &v.url,
            "--index",
            "np",
            "--create",
            "--distance",
            "ip",
            "--batch",
            "100",
            "--id-prefix",
            "n-",
            "--quiet",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("index count: 300"), "{r}");
    assert_close(
        &vector_of(&item(&api, "np", "n-299")),
        &rows[299],
        "npy row",
    );
    let more = vectors(3, 10, 5);
    let npy3 = dir.path().join("more.npy");
    write_npy(&npy3, 3, &more);
    let r = load(
        dir.path(),
        &[
            p(&npy3),
            "--url",
            &v.url,
            "--index",
            "np",
            "--create",
            "--distance",
            "ip",
            "--id-prefix",
            "m-",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(count(&api, "np"), 310);
    assert_close(&vector_of(&item(&api, "np", "m-9")), &more[9], "npy v3 row");

    // JSON Lines (cosine) with metadata, ids that need escaping, a blank line
    let rows = vectors(4, 120, 6);
    let mut text = String::new();
    for (i, r) in rows.iter().enumerate() {
        let meta = (i % 2 == 0).then(|| json!({"i": i, "tag": format!("t{}", i % 3)}));
        text += &jsonl_line(&format!("doc/{i}"), r, meta);
        text += "\n";
        if i == 50 {
            text += "   \n";
        }
    }
    let jsonl = dir.path().join("items.jsonl");
    std::fs::write(&jsonl, text).unwrap();
    let r = load(
        dir.path(),
        &[
            p(&jsonl),
            "--url",
            &v.url,
            "--index",
            "js",
            "--create",
            "--distance",
            "cosine",
            "--batch",
            "25",
            "--connections",
            "2",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("vectors sent: 120"), "{r}");
    assert!(r.stdout.contains("batches: 5"), "{r}");
    assert_eq!(count(&api, "js"), 120);
    for i in [0usize, 51, 119] {
        let got = item(&api, "js", &format!("doc%2F{i}"));
        assert_eq!(got["id"], json!(format!("doc/{i}")));
        let want = if i % 2 == 0 {
            json!({"i": i, "tag": format!("t{}", i % 3)})
        } else {
            json!({})
        };
        assert_eq!(got["metadata"], want, "metadata of doc/{i}");
        // stored unit-normalized (cosine)
        let norm = rows[i].iter().map(|x| x * x).sum::<f32>().sqrt();
        let unit: Vec<f32> = rows[i].iter().map(|x| x / norm).collect();
        assert_close(&vector_of(&got), &unit, "jsonl row");
    }
}

#[test]
fn skip_resumes_a_load_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let v = ephemeral(dir.path());
    let api = v.api();
    let rows = vectors(5, 500, 4);
    let fvecs = dir.path().join("r.fvecs");
    write_fvecs(&fvecs, &rows);
    let base = [
        p(&fvecs),
        "--url",
        &v.url,
        "--index",
        "r",
        "--create",
        "--distance",
        "l2",
        "--id-prefix",
        "r-",
        "--batch",
        "50",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        load(dir.path(), &a, &[])
    };

    let r = with(&["--limit", "200"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("vectors sent: 200 (rows 0-199)"), "{r}");
    assert_eq!(count(&api, "r"), 200);
    assert_eq!(api.get("/vectors/index/r/items/r-200").0, 404);

    let r = with(&["--skip", "200"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("vectors sent: 300 (rows 200-499)"), "{r}");
    assert_eq!(count(&api, "r"), 500);

    // a resume from too early a row sends some rows again: replaced, not duplicated
    let r = with(&["--skip", "150", "--limit", "100"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(count(&api, "r"), 500);
    for i in [0usize, 199, 200, 499] {
        assert_close(
            &vector_of(&item(&api, "r", &format!("r-{i}"))),
            &rows[i],
            "resumed row",
        );
    }

    // skipping past the end is a usage error
    let r = with(&["--skip", "501"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("has only 500 rows"), "{r}");
}

#[test]
fn a_bad_line_stops_the_load_naming_it_and_the_resume_point() {
    let dir = tempfile::tempdir().unwrap();
    let v = ephemeral(dir.path());
    let api = v.api();
    let rows = vectors(6, 9, 4);
    // rows 0,1 on lines 1,2; line 3 blank; rows 2-5 on lines 4-7; row 6 (line 8) is bad
    let mut lines: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| jsonl_line(&format!("x{i}"), r, None))
        .collect();
    let good_row6 = lines[6].clone();
    lines[6] = r#"{"id":"x6","vector":[1,2,"three",4]}"#.to_string();
    lines.insert(2, String::new());
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let args = |extra: &[&'static str]| {
        let mut a: Vec<String> = [
            p(&file),
            "--url",
            &v.url,
            "--index",
            "bad",
            "--create",
            "--distance",
            "l2",
            "--batch",
            "2",
            "--connections",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let a = args(&[]);
    let r = load(
        dir.path(),
        &a.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("bad.jsonl: line 8:"), "{r}");
    assert!(r.stderr.contains("array of numbers"), "{r}");
    assert!(r.stderr.contains("resume with --skip 6"), "{r}");
    assert_eq!(
        count(&api, "bad"),
        6,
        "every row before the bad one is loaded"
    );

    // fixed, the load resumes where it stopped
    lines[7] = good_row6;
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let a = args(&["--skip", "6"]);
    let r = load(
        dir.path(),
        &a.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("vectors sent: 3 (rows 6-8)"), "{r}");
    assert_eq!(count(&api, "bad"), 9);

    // an item vectord refuses (a zero vector under cosine) is named by its row and line
    let mut text = String::new();
    for (i, row) in rows.iter().take(5).enumerate() {
        let vector = if i == 3 { vec![0.0; 4] } else { row.clone() };
        text += &jsonl_line(&format!("z{i}"), &vector, Some(json!({"n": i})));
        text += "\n";
        if i == 0 {
            text += "\n";
        }
    }
    let zero = dir.path().join("zero.jsonl");
    std::fs::write(&zero, text).unwrap();
    let r = load(
        dir.path(),
        &[
            p(&zero),
            "--url",
            &v.url,
            "--index",
            "cos",
            "--create",
            "--distance",
            "cosine",
            "--batch",
            "10",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("vectord answered 400"), "{r}");
    assert!(r.stderr.contains("items[3] is row 3, line 5"), "{r}");
    assert!(r.stderr.contains("resume with --skip 0"), "{r}");
    assert_eq!(count(&api, "cos"), 0, "add is all-or-nothing");
}

#[test]
fn a_file_of_another_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let v = ephemeral(dir.path());
    let api = v.api();
    let (s, body) = api.post(
        "/vectors/index",
        &json!({"name": "d8", "dim": 8, "distance": "l2"}),
    );
    assert_eq!(s, 201, "{body}");
    let fvecs = dir.path().join("d4.fvecs");
    write_fvecs(&fvecs, &vectors(7, 10, 4));
    for create in [false, true] {
        let mut a = vec![p(&fvecs), "--url", &v.url, "--index", "d8"];
        if create {
            a.extend(["--create", "--distance", "l2"]);
        }
        let r = load(dir.path(), &a, &[]);
        assert_eq!(r.code, 1, "{r}");
        assert!(
            r.stderr.contains("index \"d8\" has dimension 8")
                && r.stderr.contains("have dimension 4"),
            "{r}"
        );
    }
    assert_eq!(count(&api, "d8"), 0);

    // without --create, a missing index is an error that says how to create it
    let r = load(
        dir.path(),
        &[p(&fvecs), "--url", &v.url, "--index", "nope"],
        &[],
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr.contains("does not exist") && r.stderr.contains("--create"),
        "{r}"
    );
    assert_eq!(api.get("/vectors/index/nope").0, 404);
}

#[test]
fn unusable_input_and_bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // nothing listens here: every case must fail before contacting vectord
    let url = format!("http://127.0.0.1:{}", free_port());
    let rows = vectors(8, 6, 3);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "f64.npy",
            npy_bytes(1, "<f8", false, "(6, 3)", &[0u8; 6 * 3 * 8]),
            "dtype '<f8' is not little-endian float32",
        ),
        (
            "big.npy",
            npy_bytes(1, ">f4", false, "(6, 3)", &f32_bytes(&rows)),
            "big-endian",
        ),
        (
            "fortran.npy",
            npy_bytes(2, "<f4", true, "(6, 3)", &f32_bytes(&rows)),
            "fortran_order is True",
        ),
        (
            "flat.npy",
            npy_bytes(1, "<f4", false, "(18,)", &f32_bytes(&rows)),
            "1-d with shape [18]",
        ),
        (
            "short.npy",
            npy_bytes(1, "<f4", false, "(7, 3)", &f32_bytes(&rows)),
            "truncated",
        ),
        (
            "version9.npy",
            {
                let mut b = npy_bytes(1, "<f4", false, "(6, 3)", &f32_bytes(&rows));
                b[6] = 9;
                b
            },
            "format version 9.0",
        ),
        ("notnpy.npy", b"hello, this is text".to_vec(), "magic"),
        (
            "cut.fvecs",
            {
                let mut b = Vec::new();
                for r in &rows {
                    b.extend_from_slice(&3i32.to_le_bytes());
                    b.extend(r.iter().flat_map(|x| x.to_le_bytes()));
                }
                b.truncate(b.len() - 2);
                b
            },
            "not a whole number of records",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let r = load(
            dir.path(),
            &[
                p(&path),
                "--url",
                &url,
                "--index",
                "x",
                "--create",
                "--distance",
                "l2",
            ],
            &[],
        );
        assert_eq!(r.code, 2, "{name}: {r}");
        assert!(
            r.stderr.contains(name),
            "{name}: the message names the file: {r}"
        );
        assert!(
            r.stderr.contains(expected),
            "{name}: expected {expected:?}: {r}"
        );
    }

    let good = dir.path().join("good.fvecs");
    write_fvecs(&good, &rows);
    let missing = dir.path().join("missing.fvecs");
    let unknown = dir.path().join("data.bin");
    std::fs::write(&unknown, b"x").unwrap();
    for (args, expected) in [
        (vec![p(&missing), "--index", "x"], "cannot open"),
        (vec![p(&unknown), "--index", "x"], "--format"),
        (vec![p(&good), "--index", ".hidden"], "--index"),
        (vec![p(&good), "--index", "x", "--batch", "0"], "--batch"),
        (vec![p(&good), "--index", "x", "--create"], "--distance"),
        (vec![p(&good)], "--index"),
    ] {
        let mut a = args.clone();
        a.extend(["--url", &url]);
        let r = load(dir.path(), &a, &[]);
        assert_eq!(r.code, 2, "{args:?}: {r}");
        assert!(
            r.stderr.contains(expected),
            "{args:?}: expected {expected:?}: {r}"
        );
    }
}

#[test]
fn retries_until_vectord_is_up_and_while_it_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let rows = vectors(9, 400, 16);
    let fvecs = dir.path().join("late.fvecs");
    write_fvecs(&fvecs, &rows);

    // vectord starts a second after the loader: connection errors are retried
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let loader = {
        let dir = dir.path().to_path_buf();
        let (f, url) = (fvecs.clone(), url.clone());
        std::thread::spawn(move || {
            load(
                &dir,
                &[
                    p(&f),
                    "--url",
                    &url,
                    "--index",
                    "late",
                    "--create",
                    "--distance",
                    "l2",
                    "--batch",
                    "100",
                ],
                &[],
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1200));
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let args: Vec<String> = [
        "--config",
        p(&dir.path().join("none.toml")),
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--ephemeral",
        "--set",
        "vectord.workers=2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let v = Proc::start(
        "vectord",
        env!("CARGO_BIN_EXE_vectord"),
        &args,
        port,
        &dir.path().join("late-vectord.log"),
        "/ready",
    );
    let r = loader.join().unwrap();
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("retrying in"), "a retry note: {r}");
    let retries: u64 = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("retries: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no retries line: {r}"));
    assert!(retries >= 1, "{r}");
    assert_eq!(count(&v.api(), "late"), 400);
    drop(v);

    // a tiny unsealed budget: vectord answers 503 busy (Retry-After) until the last batch
    // is indexed; the load still completes. An API key is needed too (from the environment).
    let key = "load-test-key-0123456789";
    let v = vectord(
        dir.path(),
        &[
            "--ephemeral".into(),
            "--set".into(),
            "vectord.seal_points=100".into(),
            "--set".into(),
            "vectord.max_unsealed_points=100".into(),
            "--set".into(),
            format!("vectord.api_key={key}"),
        ],
        true,
    );
    let base = [
        p(&fvecs),
        "--url",
        &v.url,
        "--index",
        "busy",
        "--create",
        "--distance",
        "l2",
        "--batch",
        "100",
        "--connections",
        "3",
    ];
    let r = load(dir.path(), &base, &[]);
    assert_eq!(r.code, 1, "no key: {r}");
    assert!(
        r.stderr.contains("401") && r.stderr.contains("API key"),
        "{r}"
    );
    let r = load(dir.path(), &base, &[("VECTORD_API_KEY", key)]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("index count: 400"), "{r}");
    eprintln!("busy load:\n{r}");
}
