//! Running under systemd: READY only once the start-up load is done (`/ready` 200),
//! STOPPING on SIGTERM, watchdog pings; and `--check-config`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::proxy::{Action, FaultProxy};
use common::*;
use serde_json::json;

#[test]
fn systemd_hears_ready_only_after_the_load_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    {
        let v = persistent(dir.path(), &store.url, &[]);
        v.api().post(
            "/vectors/index",
            &json!({"name": "n", "dim": 2, "distance": "l2"}),
        );
        assert_eq!(
            v.api().post("/vectors/index/n/flush", &json!({})).1["persisted"],
            true
        );
    }
    // a slow store: loading takes over a second
    let proxy = FaultProxy::start(&store.url);
    proxy.set_rule(|method, path| {
        if method == "GET" && path.contains("n.lhv1") {
            Action::Delay(Duration::from_millis(1500))
        } else {
            Action::Forward
        }
    });
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let port = free_port();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vectord"))
        .args([
            "--config",
            &dir.path().join("none.toml").display().to_string(),
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--storaged-url",
            &proxy.url,
            "--no-embedded-storaged",
        ])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "600000")
        .env("WATCHDOG_PID", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ready_status = || {
        ureq::get(&format!("http://127.0.0.1:{port}/ready"))
            .timeout(Duration::from_secs(2))
            .call()
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(s, _) => s,
                _ => 0,
            })
    };
    let mut messages = Vec::new();
    let mut saw_503 = false;
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        while let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.contains("READY=1") {
                assert_eq!(ready_status(), 200, "READY sent before /ready turned 200");
            }
            messages.push(text);
        }
        if messages.iter().any(|m| m.contains("READY=1")) {
            break;
        }
        if ready_status() == 503 {
            saw_503 = true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no READY: {messages:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        saw_503,
        "the load was not slow enough to see /ready 503 first"
    );
    // watchdog pings come every third of WATCHDOG_USEC
    std::thread::sleep(Duration::from_millis(700));
    while let Ok(n) = socket.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(
        messages.iter().any(|m| m.contains("WATCHDOG=1")),
        "{messages:?}"
    );
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    while let Ok(n) = socket.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(
        messages.iter().any(|m| m.contains("STOPPING=1")),
        "{messages:?}"
    );
}

#[test]
fn check_config_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.toml");
    std::fs::write(&file, "[vectord]\ndefault_m = 24\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vectord"))
        .args(["--config", &file.display().to_string(), "--check-config"])
        .args(["--set", "vectord.api_key=secret-secret-secret-1"])
        .env("VECTORD_SEAL_POINTS", "5000")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("vectord.default_m = 24"), "{text}");
    assert!(text.contains("vectord.seal_points = 5000"), "{text}");
    assert!(text.contains("vectord.api_key = \"<redacted>\""), "{text}");
    assert!(!text.contains("secret-secret"), "{text}");
    assert!(text.contains("storaged.root = "), "{text}");
}
