//! Helpers for tests that start the real binaries: free loopback ports, child processes
//! that are killed when the test ends (also on panic), and a small blocking HTTP client.

#![allow(dead_code)]

pub mod proxy;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A running binary; killed and reaped on drop.
pub struct Proc {
    pub child: Option<Child>,
    pub url: String,
    pub log: PathBuf,
    pub name: &'static str,
}

impl Proc {
    /// Starts `binary` with `args`, its stderr to `log`, and waits for `ready_path` to
    /// answer 200 (or any answer, when `any_status`).
    pub fn start(
        name: &'static str,
        binary: &str,
        args: &[String],
        port: u16,
        log: &Path,
        ready_path: &str,
    ) -> Proc {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "info,hnsw_rs=warn,anndists=warn")
            .env_remove("VECTORD_BIND")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let proc = Proc {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
            name,
        };
        proc.wait_for(ready_path, Duration::from_secs(60));
        proc
    }

    pub fn wait_for(&self, path: &str, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(r) = ureq::get(&format!("{}{path}", self.url))
                .timeout(Duration::from_secs(2))
                .call()
            {
                if r.status() == 200 {
                    return;
                }
            }
            if started.elapsed() > limit {
                panic!(
                    "{} did not answer {path} within {limit:?}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no chance to save anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("process already stopped");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = c.kill();
                panic!("{} did not exit within 60 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn api(&self) -> Api {
        Api {
            base: self.url.clone(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts vectord with `extra` flags on a free port; `ready` waits for /ready, else /health.
pub fn vectord(dir: &Path, extra: &[String], ready: bool) -> Proc {
    let port = free_port();
    let mut args = vec![
        "--config".to_string(),
        dir.join("none.toml").display().to_string(),
        "--bind".into(),
        format!("127.0.0.1:{port}"),
        "--set".into(),
        "vectord.workers=2".into(),
        "--set".into(),
        format!("vectord.cache_dir={}", dir.join("cache").display()),
    ];
    std::fs::write(dir.join("none.toml"), "").expect("write empty config");
    args.extend_from_slice(extra);
    let log = dir.join(format!("vectord-{port}.log"));
    Proc::start(
        "vectord",
        env!("CARGO_BIN_EXE_vectord"),
        &args,
        port,
        &log,
        if ready { "/ready" } else { "/health" },
    )
}

/// vectord in ephemeral mode.
pub fn ephemeral(dir: &Path) -> Proc {
    vectord(dir, &["--ephemeral".into()], true)
}

/// An ephemeral vectord of the test's own, in a temporary directory of its own; derefs to
/// its `Api`. On drop the process is killed, then the directory removed.
pub struct Ephemeral {
    pub api: Api,
    pub server: Proc,
    _dir: tempfile::TempDir,
}

impl Ephemeral {
    pub fn start() -> Ephemeral {
        let dir = tempfile::tempdir().expect("temporary directory");
        let server = ephemeral(dir.path());
        Ephemeral {
            api: server.api(),
            server,
            _dir: dir,
        }
    }
}

impl std::ops::Deref for Ephemeral {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A storaged on a free port, storing under `root`.
pub fn storaged(dir: &Path, root: &Path, port: Option<u16>) -> Proc {
    let flags = vec!["--root".to_string(), root.display().to_string()];
    storaged_with(dir, flags, port)
}

/// storaged on `port` (a free one when none) with `flags` (its store: `--root`, or the
/// `--set storaged.s3_*` flags of an S3 server).
pub fn storaged_with(dir: &Path, flags: Vec<String>, port: Option<u16>) -> Proc {
    let port = port.unwrap_or_else(free_port);
    let mut args = vec![
        "--config".to_string(),
        dir.join("none.toml").display().to_string(),
        "--bind".into(),
        format!("127.0.0.1:{port}"),
    ];
    args.extend(flags);
    std::fs::write(dir.join("none.toml"), "").expect("write empty config");
    let log = dir.join(format!("storaged-{port}.log"));
    Proc::start(
        "storaged",
        env!("CARGO_BIN_EXE_storaged"),
        &args,
        port,
        &log,
        "/health",
    )
}

/// vectord persisting to a separately run storaged at `storaged_url`.
pub fn persistent(dir: &Path, storaged_url: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--storaged-url".to_string(),
        storaged_url.to_string(),
        "--no-embedded-storaged".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    vectord(dir, &args, true)
}

/// A blocking JSON client that returns the status and the decoded body for every answer.
#[derive(Clone)]
pub struct Api {
    pub base: String,
}

impl Api {
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let req = ureq::request(method, &format!("{}{path}", self.base))
            .timeout(Duration::from_secs(120));
        let res = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Sends raw bytes as the body.
    pub fn raw(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let req = ureq::request(method, &format!("{}{path}", self.base))
            .timeout(Duration::from_secs(120))
            .set("Content-Type", "application/json");
        let resp = match req.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }
    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None)
    }
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// A small seeded generator (a linear congruential one: plenty for choosing test steps).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Seeded pseudo-random vectors in [-1, 1).
#[allow(unused_imports)]
pub use vectord_actors::sample::seeded_vectors as vectors;

/// An `add` body for `vectors`, ids `prefix0..`.
pub fn add_body(prefix: &str, vectors: &[Vec<f32>]) -> Value {
    let items: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| serde_json::json!({"id": format!("{prefix}{i}"), "vector": v, "metadata": {"i": i, "group": i % 3}}))
        .collect();
    serde_json::json!({ "items": items })
}

/// Waits until nothing of index `name` is left unsealed and no job runs on it; fails the
/// test past `limit`.
pub fn wait_sealed(api: &Api, name: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        let (_, info) = api.get(&format!("/vectors/index/{name}"));
        if info["unsealed_count"] == 0 && info["indexing"] == false {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "index {name} never sealed: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
