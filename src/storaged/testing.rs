//! Test support (not part of the service): the S3-compatible server that storaged's tests
//! run their S3 backend against.
//!
//! - With `STORAGED_TEST_S3_ENDPOINT` set, the tests use that server (for instance Garage,
//!   started by `scripts/garage-test.sh`): `STORAGED_TEST_S3_BUCKET` (default
//!   `storaged-test`, must exist), `STORAGED_TEST_S3_REGION` (default `us-east-1`),
//!   `STORAGED_TEST_S3_ACCESS_KEY_ID`, `STORAGED_TEST_S3_SECRET_ACCESS_KEY`, and
//!   `STORAGED_TEST_S3_NAME` to name it in messages.
//! - Otherwise, when `moto_server` is on the PATH (`pip install 'moto[server]'`), one is
//!   started on a free loopback port, once per test process, and creates the bucket. A small
//!   shell loop stops it when the test process exits.
//! - Otherwise S3 runs are skipped with a message on stderr — or fail, when
//!   `STORAGED_TEST_REQUIRE_S3` is set (CI sets it once it installs the server).
//!
//! Every test gets its own key prefix (`storaged.s3_prefix`), so tests can share a bucket.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::s3::S3Config;

/// A reachable S3-compatible server and a bucket on it.
#[derive(Debug, Clone)]
pub struct S3Server {
    /// What it is, for messages (`moto_server`, `garage 2.5.0`, ...).
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Server {
    /// Settings for a store under a fresh prefix on this server, named after `test`.
    pub fn config(&self, test: &str) -> S3Config {
        self.config_at(unique_prefix(test))
    }

    /// Settings for a store under `prefix` on this server.
    pub fn config_at(&self, prefix: String) -> S3Config {
        S3Config {
            bucket: self.bucket.clone(),
            endpoint: Some(self.endpoint.clone()),
            region: Some(self.region.clone()),
            access_key_id: Some(self.access_key_id.clone()),
            secret_access_key: Some(self.secret_access_key.clone()),
            prefix,
            path_style: true,
            allow_http: self.endpoint.starts_with("http://"),
        }
    }

    /// `--set` flags that point a storaged binary at this server under a fresh prefix.
    pub fn storaged_flags(&self, test: &str) -> Vec<String> {
        self.storaged_flags_at(unique_prefix(test))
    }

    /// `--set` flags that point a storaged binary at this server under `prefix` (two
    /// storaged processes on one store: a primary's and a replica's).
    pub fn storaged_flags_at(&self, prefix: String) -> Vec<String> {
        let c = self.config_at(prefix);
        let mut flags = Vec::new();
        for (k, v) in [
            ("backend", "s3".to_string()),
            ("s3_bucket", c.bucket),
            ("s3_endpoint", c.endpoint.unwrap_or_default()),
            ("s3_region", c.region.unwrap_or_default()),
            ("s3_access_key_id", c.access_key_id.unwrap_or_default()),
            (
                "s3_secret_access_key",
                c.secret_access_key.unwrap_or_default(),
            ),
            ("s3_prefix", c.prefix),
            ("s3_allow_http", c.allow_http.to_string()),
        ] {
            flags.push("--set".into());
            flags.push(format!("storaged.{k}={v}"));
        }
        flags
    }
}

impl S3Server {
    /// Unfinished multipart uploads under `prefix`, when the server tells without a
    /// signature (moto does); `None` when it cannot be asked.
    pub fn unfinished_uploads(&self, prefix: &str) -> Option<usize> {
        if !self.name.starts_with("moto") {
            return None;
        }
        let url = format!("{}/{}?uploads&prefix={prefix}/", self.endpoint, self.bucket);
        let text = ureq::get(&url).call().ok()?.into_string().ok()?;
        Some(text.matches("<Upload>").count())
    }
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let test: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "t-{test}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The server for S3 runs, or `None` (after saying why on stderr) when there is none.
/// `test` names the caller in the message.
pub fn s3_server(test: &str) -> Option<&'static S3Server> {
    static SERVER: OnceLock<Result<S3Server, String>> = OnceLock::new();
    match SERVER.get_or_init(find_or_start) {
        Ok(server) => Some(server),
        Err(why) => {
            if std::env::var_os("STORAGED_TEST_REQUIRE_S3").is_some() {
                panic!("{test}: S3 run required (STORAGED_TEST_REQUIRE_S3) but {why}");
            }
            // Once per process, straight to stderr: libtest's capture would hide `eprintln!`.
            static TOLD: std::sync::Once = std::sync::Once::new();
            TOLD.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\nstoraged tests: S3 runs SKIPPED (local and memory runs go on): {why}\n"
                );
            });
            None
        }
    }
}

fn find_or_start() -> Result<S3Server, String> {
    if let Ok(endpoint) = std::env::var("STORAGED_TEST_S3_ENDPOINT") {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        return Ok(S3Server {
            name: var(
                "STORAGED_TEST_S3_NAME",
                "S3 server at STORAGED_TEST_S3_ENDPOINT",
            ),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bucket: var("STORAGED_TEST_S3_BUCKET", "storaged-test"),
            region: var("STORAGED_TEST_S3_REGION", "us-east-1"),
            access_key_id: var("STORAGED_TEST_S3_ACCESS_KEY_ID", "test"),
            secret_access_key: var("STORAGED_TEST_S3_SECRET_ACCESS_KEY", "test"),
        });
    }
    let moto = std::env::var_os("STORAGED_TEST_MOTO_SERVER")
        .map(PathBuf::from)
        .or_else(|| on_path("moto_server"))
        .ok_or_else(|| {
            "no S3 server: moto_server is not on the PATH (pip install 'moto[server]') and \
             STORAGED_TEST_S3_ENDPOINT is not set"
                .to_string()
        })?;
    start_moto(&moto)
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn start_moto(moto: &std::path::Path) -> Result<S3Server, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))?;
    let log = std::env::temp_dir().join(format!("storaged-test-moto-{port}.log"));
    // moto_server in the background, stopped when this process is gone.
    let script = r#"
        "$1" -H 127.0.0.1 -p "$2" >>"$3" 2>&1 &
        m=$!
        trap 'kill $m 2>/dev/null' EXIT INT TERM
        while kill -0 "$4" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done
    "#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("storaged-test-moto")
        .arg(moto)
        .arg(port.to_string())
        .arg(&log)
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", moto.display()))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        match ureq::get(&format!("{endpoint}/"))
            .timeout(Duration::from_secs(2))
            .call()
        {
            Ok(_) => break,
            Err(_) if started.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "{} did not answer on port {port}: {e}; its log:\n{text}",
                    moto.display()
                ));
            }
        }
    }
    let bucket = "storaged-test".to_string();
    ureq::put(&format!("{endpoint}/{bucket}"))
        .timeout(Duration::from_secs(10))
        .call()
        .map_err(|e| format!("cannot create the bucket on moto: {e}"))?;
    Ok(S3Server {
        name: format!("moto_server ({})", moto.display()),
        endpoint,
        bucket,
        region: "us-east-1".into(),
        access_key_id: "storaged-test".into(),
        // moto takes any secret; a distinctive one lets tests check that logs never show it
        secret_access_key: format!("moto-secret-{}-{port}", std::process::id()),
    })
}

/// A store under test and what it is.
#[cfg(test)]
pub(crate) struct TestBackend {
    pub name: &'static str,
    pub store: super::Backend,
    /// The directory of a local store.
    pub dir: Option<tempfile::TempDir>,
    /// Multipart part size of an object store (else 1000: a size tests can exceed).
    pub part_size: usize,
    /// The S3 server and the key prefix of an S3 store.
    pub s3: Option<(&'static S3Server, String)>,
}

/// One store of each backend: local disk, memory (with tiny multipart parts, so that small
/// bodies go through the multipart path too), and S3 (5 MiB parts, S3's smallest) when a
/// server is available.
#[cfg(test)]
pub(crate) fn test_backends(test: &str) -> Vec<TestBackend> {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![
        TestBackend {
            name: "local",
            store: super::Backend::local(dir.path()).unwrap(),
            dir: Some(dir),
            part_size: 1000,
            s3: None,
        },
        TestBackend {
            name: "memory",
            store: super::Backend::with_object_store(Arc::new(
                object_store::memory::InMemory::new(),
            ))
            .with_part_size(1000),
            dir: None,
            part_size: 1000,
            s3: None,
        },
    ];
    if let Some(server) = s3_server(test) {
        let config = server.config(test);
        out.push(TestBackend {
            name: "s3",
            store: super::Backend::s3(&config).unwrap().with_part_size(5 << 20),
            dir: None,
            part_size: 5 << 20,
            s3: Some((server, config.prefix)),
        });
    }
    out
}
