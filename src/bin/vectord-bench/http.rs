//! Measurements through a running vectord: ingest with `POST .../add` (acknowledged, then
//! indexed), searches with one and two concurrent clients, resident memory, and searches
//! while another ingest runs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::data::Dataset;
use crate::SearchFigures;

/// The part of a search answer the benchmark reads.
#[derive(serde::Deserialize)]
struct SearchAnswer {
    results: Vec<SearchAnswerItem>,
}

#[derive(serde::Deserialize)]
struct SearchAnswerItem {
    id: String,
}

/// A vectord started for the benchmark; killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    agent: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The vectord binary next to this one.
fn vectord_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = me.with_file_name("vectord");
    path.exists().then_some(path.clone()).ok_or_else(|| {
        format!(
            "{} not found: build it with cargo build --release",
            path.display()
        )
    })
}

impl Server {
    /// Starts an ephemeral vectord on a free loopback port. Its idle seal is short, so
    /// that the last partial segment of an ingest is sealed soon after it ends.
    pub fn start(scratch: &Path) -> Result<Server, String> {
        Server::start_with(
            scratch,
            &[
                "--ephemeral".into(),
                "--set".into(),
                "vectord.seal_idle_ms=300".into(),
            ],
        )
    }

    /// Starts vectord with `extra` flags on a free loopback port and waits until it is
    /// ready (its persisted indexes loaded).
    pub fn start_with(scratch: &Path, extra: &[String]) -> Result<Server, String> {
        let mut server = Server::spawn_with(scratch, extra)?;
        server.wait_ready(Duration::from_secs(600))?;
        Ok(server)
    }

    /// Starts vectord with `extra` flags on a free loopback port, without waiting.
    pub fn spawn_with(scratch: &Path, extra: &[String]) -> Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let empty = scratch.join("bench-empty.toml");
        std::fs::write(&empty, "").map_err(|e| e.to_string())?;
        let child = Command::new(vectord_binary()?)
            .args([
                "--config",
                &empty.display().to_string(),
                "--bind",
                &format!("127.0.0.1:{port}"),
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting vectord: {e}"))?;
        Ok(Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(600))
                .max_idle_connections_per_host(8)
                .build(),
        })
    }

    /// Waits until `/ready` answers 200; an error if the process exits first or `limit`
    /// passes.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        while self
            .agent
            .get(&format!("{}/ready", self.url))
            .call()
            .is_err()
        {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("vectord exited before it was ready ({status})"));
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "vectord was not ready within {} s",
                    limit.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Stops vectord as its supervisor would (SIGTERM: it saves, then exits).
    pub fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|e| format!("kill -TERM {pid}: {e}"))?;
        self.child
            .wait()
            .map_err(|e| format!("waiting for vectord: {e}"))?;
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn post(&self, path: &str, body: &[u8]) -> Result<Value, String> {
        self.post_as(path, body)
    }

    /// POSTs and decodes the answer as `T` (a narrow type decodes faster than a `Value`,
    /// which matters because the client shares the machine's cores with the server).
    fn post_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
    ) -> Result<T, String> {
        let resp = self
            .agent
            .post(&format!("{}{path}", self.url))
            .set("Content-Type", "application/json")
            .send_bytes(body)
            .map_err(|e| format!("POST {path}: {e}"))?;
        resp.into_json().map_err(|e| format!("POST {path}: {e}"))
    }

    /// POSTs a JSON body and decodes the answer.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.post(path, body.to_string().as_bytes())
    }

    /// GETs a JSON answer.
    pub fn get_json(&self, path: &str) -> Result<Value, String> {
        self.agent
            .get(&format!("{}{path}", self.url))
            .call()
            .map_err(|e| format!("GET {path}: {e}"))?
            .into_json()
            .map_err(|e| format!("GET {path}: {e}"))
    }

    /// The Prometheus exposition of `/metrics`.
    pub fn metrics(&self) -> Result<String, String> {
        self.agent
            .get(&format!("{}/metrics", self.url))
            .call()
            .map_err(|e| format!("GET /metrics: {e}"))?
            .into_string()
            .map_err(|e| format!("GET /metrics: {e}"))
    }

    pub fn create(&self, name: &str, data: &Dataset) -> Result<(), String> {
        let body = json!({"name": name, "dim": data.dim, "distance": data.metric.as_str(), "m": 16, "ef_construction": 200});
        self.post("/vectors/index", body.to_string().as_bytes())
            .map(|_| ())
    }

    /// Seconds to add every vector in batches of `batch` (bodies encoded beforehand, so
    /// only the server's work is timed), retrying a batch answered 503 busy.
    pub fn ingest(&self, name: &str, base: &[Vec<f32>], batch: usize) -> Result<f64, String> {
        let bodies = add_bodies(base, batch);
        let started = Instant::now();
        for body in &bodies {
            self.add(name, body)?;
        }
        Ok(started.elapsed().as_secs_f64())
    }

    /// One `add`, retried while the server answers 503 (back-pressure).
    pub fn add(&self, name: &str, body: &[u8]) -> Result<(), String> {
        let path = format!("/vectors/index/{name}/add");
        loop {
            let resp = self
                .agent
                .post(&format!("{}{path}", self.url))
                .set("Content-Type", "application/json")
                .send_bytes(body);
            match resp {
                Ok(_) => return Ok(()),
                Err(ureq::Error::Status(503, r)) => {
                    let wait: u64 = r
                        .header("Retry-After")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                    std::thread::sleep(Duration::from_millis(wait * 250));
                }
                Err(e) => return Err(format!("POST {path}: {e}")),
            }
        }
    }

    /// The index info.
    pub fn info(&self, name: &str) -> Result<Value, String> {
        self.get_json(&format!("/vectors/index/{name}"))
    }

    /// Waits until no background job runs and what is left unsealed is below the idle
    /// seal's minimum (1,024 items: a smaller rest stays in the growing segment, scanned).
    pub fn wait_sealed(&self, name: &str, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let info = self.info(name)?;
            let unsealed = info["unsealed_count"].as_u64().unwrap_or(u64::MAX);
            if unsealed < 1024 && info["indexing"] == false {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(format!("index {name} not sealed within {limit:?}: {info}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Milliseconds `GET /health` takes.
    pub fn health_ms(&self) -> Result<f64, String> {
        let t = Instant::now();
        self.agent
            .get(&format!("{}/health", self.url))
            .call()
            .map_err(|e| format!("GET /health: {e}"))?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }

    /// The ids one search finds.
    pub fn search_one(
        &self,
        name: &str,
        query: &[f32],
        k: usize,
        ef: usize,
    ) -> Result<Vec<usize>, String> {
        let body = json!({"vector": crate::wire::vector(query), "k": k, "ef": ef}).to_string();
        let answer: SearchAnswer =
            self.post_as(&format!("/vectors/index/{name}/search"), body.as_bytes())?;
        Ok(answer
            .results
            .iter()
            .filter_map(|r| r.id.parse().ok())
            .collect())
    }

    /// `127.0.0.1:PORT`, as the wire client takes it.
    fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// One ready-to-send `search` request per query of the data set.
    fn search_requests(&self, name: &str, data: &Dataset, k: usize, ef: usize) -> Vec<Vec<u8>> {
        let (addr, path) = (self.addr(), format!("/vectors/index/{name}/search"));
        data.queries
            .iter()
            .map(|q| {
                let body = json!({"vector": crate::wire::vector(q), "k": k, "ef": ef}).to_string();
                crate::wire::post_request(&addr, &path, body.as_bytes())
            })
            .collect()
    }

    /// Recall, throughput with 1 and 2 clients, latency percentiles at one `ef`.
    pub fn search(
        &self,
        name: &str,
        data: &Dataset,
        ef: usize,
        k: usize,
    ) -> Result<SearchFigures, String> {
        let addr = self.addr();
        let requests = self.search_requests(name, data, k, ef);
        let one = |i: usize| -> Result<Vec<usize>, String> {
            let (status, body) = crate::wire::send(&addr, &requests[i])?;
            if status != 200 {
                return Err(format!("search answered {status}"));
            }
            let answer: SearchAnswer = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            Ok(answer
                .results
                .iter()
                .filter_map(|r| r.id.parse().ok())
                .collect())
        };
        let cpu_before = cpu_seconds(self.pid());
        let mut figures = crate::measure(ef, requests.len(), &data.truth, one)?;
        // measure() runs every query three times: answers, 1 client, 2 clients.
        if let (Some(a), Some(b)) = (cpu_before, cpu_seconds(self.pid())) {
            figures.server_cpu_ms = Some((b - a) * 1000.0 / (3 * requests.len()) as f64);
        }
        Ok(figures)
    }
}

impl Server {
    /// Searches per second with `clients` clients sending one query per request each
    /// (over the queries twice): with more clients than cores, a core no longer waits
    /// while a client reads its answer and sends the next query.
    pub fn search_clients(
        &self,
        name: &str,
        data: &Dataset,
        ef: usize,
        k: usize,
        clients: usize,
    ) -> Result<f64, String> {
        let addr = self.addr();
        let requests = self.search_requests(name, data, k, ef);
        let run = |range: std::ops::Range<usize>| -> Result<(), String> {
            for i in range {
                let (status, _) = crate::wire::send(&addr, &requests[i % requests.len()])?;
                if status != 200 {
                    return Err(format!("search answered {status}"));
                }
            }
            Ok(())
        };
        crate::clients(clients, 2 * requests.len(), run)
    }
}

/// The part of a batch search answer the benchmark reads.
#[derive(serde::Deserialize)]
struct BatchAnswer {
    results: Vec<Vec<SearchAnswerItem>>,
}

impl Server {
    /// `search`, with the queries sent `batch` at a time to `search/batch`: recall and
    /// throughput per query, latency per batch, vectord's CPU time per query.
    pub fn search_batches(
        &self,
        name: &str,
        data: &Dataset,
        ef: usize,
        k: usize,
        batch: usize,
    ) -> Result<SearchFigures, String> {
        let addr = self.addr();
        let path = format!("/vectors/index/{name}/search/batch");
        let requests: Vec<Vec<u8>> = data
            .queries
            .chunks(batch.max(1))
            .map(|qs| {
                let searches: Vec<Value> = qs
                    .iter()
                    .map(|q| json!({"vector": crate::wire::vector(q), "k": k, "ef": ef}))
                    .collect();
                let body = json!({ "searches": searches }).to_string();
                crate::wire::post_request(&addr, &path, body.as_bytes())
            })
            .collect();
        type Found = Vec<Vec<usize>>;
        let run = |range: std::ops::Range<usize>| -> Result<(Found, Vec<Duration>), String> {
            let (mut found, mut lat) = (Vec::new(), Vec::with_capacity(range.len()));
            for i in range {
                let t = Instant::now();
                let (status, body) = crate::wire::send(&addr, &requests[i % requests.len()])?;
                if status != 200 {
                    return Err(format!("search/batch answered {status}"));
                }
                let answer: BatchAnswer =
                    serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                lat.push(t.elapsed());
                found.extend(answer.results.into_iter().map(|list| {
                    list.iter()
                        .filter_map(|r| r.id.parse().ok())
                        .collect::<Vec<usize>>()
                }));
            }
            Ok((found, lat))
        };
        // A few dozen requests take a few milliseconds: the timed passes go over the
        // queries `ROUNDS` times, so that start and end are a small part of them.
        const ROUNDS: usize = 4;
        let n = requests.len();
        let per_request = data.queries.len() as f64 / n.max(1) as f64;
        let cpu_before = cpu_seconds(self.pid());
        let (found, lat) = run(0..n)?;
        let started = Instant::now();
        run(0..n * ROUNDS)?;
        let qps1 = (ROUNDS * data.queries.len()) as f64 / started.elapsed().as_secs_f64();
        let qps2 = crate::two_clients(n * ROUNDS, |range| run(range).map(|_| ()))? * per_request;
        let recall = crate::data::mean_recall(&found, &data.truth, k);
        let mut figures = SearchFigures::new(ef, recall, qps1, qps2, &lat);
        if let (Some(a), Some(b)) = (cpu_before, cpu_seconds(self.pid())) {
            let searched = (1 + 2 * ROUNDS) * data.queries.len();
            figures.server_cpu_ms = Some((b - a) * 1000.0 / searched as f64);
        }
        Ok(figures)
    }
}

impl Server {
    /// Requests per second of `GET /health` with 2 clients (best of `passes` runs of `n`
    /// requests): what the HTTP exchange alone costs the two cores, client and server,
    /// with no body to decode and no search. A search over HTTP can be at most
    /// `1 / (1 + in-process QPS / this)` of the in-process figure on the same cores.
    pub fn health_rate(&self, n: usize, passes: usize) -> Result<f64, String> {
        let addr = self.addr();
        let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
        let run = |range: std::ops::Range<usize>| -> Result<(), String> {
            for _ in range {
                let (status, _) = crate::wire::send(&addr, &request)?;
                if status != 200 {
                    return Err(format!("/health answered {status}"));
                }
            }
            Ok(())
        };
        let mut best: f64 = 0.0;
        for _ in 0..passes {
            best = best.max(crate::two_clients(n, run)?);
        }
        Ok(best)
    }
}

/// A search request with everything but the search: how fast vectord takes requests of
/// the size of a search, reads and decodes them, and answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestPath {
    /// Requests per second with 2 clients (best pass).
    pub requests_per_s: f64,
    /// vectord's CPU time per request, all its threads.
    pub server_cpu_ms: f64,
    /// The benchmark's own CPU time per request (its two client threads).
    pub client_cpu_ms: f64,
}

impl Server {
    /// Sends every query as a search with `k` 0 (2 clients, `passes` times): vectord
    /// reads the body, decodes its numbers and refuses it for its `k` (400 `invalid_k`)
    /// before it looks at the vector or searches; its answer is shorter than ten hits.
    /// What that costs the cores, server and client, bounds how close HTTP can come to
    /// in-process: at best `search / (search + this)` in CPU (a bound a little on the high
    /// side, as a real search request also checks its vector and answers more).
    pub fn request_path(
        &self,
        name: &str,
        data: &Dataset,
        passes: usize,
    ) -> Result<RequestPath, String> {
        let addr = self.addr();
        let requests = self.search_requests(name, data, 0, 64);
        const ROUNDS: usize = 10;
        let n = requests.len() * ROUNDS;
        let run = |range: std::ops::Range<usize>| -> Result<(), String> {
            for i in range {
                let (status, body) = crate::wire::send(&addr, &requests[i % requests.len()])?;
                if status != 400 || !body.windows(11).any(|w| w == b"\"invalid_k\"") {
                    return Err(format!(
                        "a search with k 0 answered {status} {}, not 400 invalid_k",
                        String::from_utf8_lossy(&body)
                    ));
                }
            }
            Ok(())
        };
        let server_before = cpu_seconds(self.pid());
        let client_before = cpu_seconds(std::process::id());
        let mut best: f64 = 0.0;
        for _ in 0..passes {
            best = best.max(crate::two_clients(n, run)?);
        }
        let sent = (passes * n) as f64;
        let per_request = |before: Option<f64>, pid: u32| match (before, cpu_seconds(pid)) {
            (Some(a), Some(b)) => (b - a) * 1000.0 / sent,
            _ => f64::NAN,
        };
        Ok(RequestPath {
            requests_per_s: best,
            server_cpu_ms: per_request(server_before, self.pid()),
            client_cpu_ms: per_request(client_before, std::process::id()),
        })
    }
}

/// CPU time used so far by a process, all threads, user and system (Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are the
    // 12th and 13th, in clock ticks of 1/100 s (USER_HZ on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// `add` bodies of `batch` vectors each, ids `0..`.
pub fn add_bodies(base: &[Vec<f32>], batch: usize) -> Vec<Vec<u8>> {
    base.chunks(batch)
        .enumerate()
        .map(|(b, chunk)| {
            let items: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| json!({"id": (b * batch + i).to_string(), "vector": crate::wire::vector(v)}))
                .collect();
            json!({ "items": items }).to_string().into_bytes()
        })
        .collect()
}

/// Resident memory of a process, in bytes (Linux).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// A size line of `/proc/<pid>/status` (`VmRSS:`, `RssAnon:`, `RssFile:`), in bytes.
pub fn status_bytes(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
