//! Configuration precedence (file < environment < flags) and refusal of bad values, on the
//! real binaries.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.toml");
    std::fs::write(
        &file,
        "[vectord]\nstoraged_url = \"\"\ndefault_m = 8\ndefault_ef_construction = 150\ndefault_ef_search = 40\n",
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vectord"))
        .args([
            "--config",
            file.to_str().unwrap(),
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--set", "vectord.default_m=12"])
        .env("VECTORD_DEFAULT_M", "10")
        .env("VECTORD_DEFAULT_EF_SEARCH", "99")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while ureq::get(&format!("{}/ready", api.base)).call().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "vectord did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, info) = api.post(
        "/vectors/index",
        &json!({"name": "c", "dim": 2, "distance": "l2"}),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(s, 201);
    assert_eq!(info["m"], 12, "flag wins over environment and file");
    assert_eq!(info["ef_search"], 99, "environment wins over file");
    assert_eq!(info["ef_construction"], 150, "file wins over default");
}

#[test]
fn a_bad_value_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.toml");
    for (content, env, key) in [
        ("[vectord]\ndefault_m = 1000\n", None, "vectord.default_m"),
        (
            "[vectord]\nbind = \"not an address\"\n",
            None,
            "vectord.bind",
        ),
        (
            "[vectord]\nsave_quiet_ms = \"soon\"\n",
            None,
            "vectord.save_quiet_ms",
        ),
        ("[vectord]\nno_such_key = 1\n", None, "vectord.no_such_key"),
        (
            "",
            Some(("VECTORD_COMPACT_RATIO", "2")),
            "vectord.compact_ratio",
        ),
    ] {
        std::fs::write(&file, content).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vectord"));
        cmd.args(["--config", file.to_str().unwrap()]);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{content}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{err} should name {key}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_storaged"))
        .args([
            "--config",
            file.to_str().unwrap(),
            "--set",
            "storaged.max_object_bytes=-1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("storaged.max_object_bytes"));
}
