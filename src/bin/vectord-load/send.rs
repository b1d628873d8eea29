//! Talking to vectord: requests with retries (503 and connection errors/timeouts, backing
//! off exponentially or as `Retry-After` says), the `add` bodies built from rows, the
//! worker threads that send batches in row order over connections of their own, and the
//! ledger of acknowledged rows from which the resume point (`--skip N`) follows.
//!
//! Retrying an `add` is safe even when the first try may have been applied (a timeout after
//! the server committed): `add` is an upsert, so sending a batch twice leaves the same items.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::progress::Progress;
use crate::read::{Item, Record};

/// First backoff delay; it doubles on each retry up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A `Retry-After` longer than this is not believed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a request did not succeed.
#[derive(Debug)]
pub enum CallError {
    /// vectord answered with an error that retrying will not cure (4xx, 500).
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// Still failing (503, connection error) after all tries, or busy for too long.
    GaveUp(String),
    /// Another thread failed and the load is stopping.
    Stopped,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status {
                status,
                code,
                message,
            } => write!(f, "vectord answered {status} {code}: {message}"),
            CallError::GaveUp(why) => write!(f, "gave up: {why}"),
            CallError::Stopped => write!(f, "stopped"),
        }
    }
}

/// What one try of a request came to.
enum Try {
    /// A 2xx answer: its status and body.
    Answer(u16, String),
    /// An answer that retrying will not cure.
    Refused(CallError),
    /// Worth another try: why, how long the server asks to wait, and whether it is
    /// vectord's flow control (503 `busy`/`not_ready`).
    Retry {
        why: String,
        retry_after: Option<Duration>,
        busy: bool,
    },
}

/// One connection to vectord (a `ureq` agent keeps it alive between requests).
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
    max_tries: u32,
    busy_wait: Duration,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
}

/// What every connection shares.
#[derive(Clone)]
pub struct ClientConfig {
    pub base: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub max_tries: u32,
    pub busy_wait: Duration,
    pub stop: Arc<AtomicBool>,
    pub progress: Arc<Progress>,
}

impl Client {
    pub fn new(c: &ClientConfig) -> Client {
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5).min(c.timeout))
                .timeout(c.timeout)
                .build(),
            base: c.base.clone(),
            auth: c.api_key.as_ref().map(|k| format!("Bearer {k}")),
            max_tries: c.max_tries,
            busy_wait: c.busy_wait,
            stop: c.stop.clone(),
            progress: c.progress.clone(),
        }
    }

    /// `method path` with an optional JSON body, retried while the answer is 502/503/504
    /// or the connection fails; `what` names the request in messages ("batch at row 1000").
    /// Returns the status and body of a 2xx answer.
    ///
    /// Two kinds of retry: failures (unreachable, timeouts, 502/504, 503 storage errors)
    /// count against `max_tries`; 503 `busy`/`not_ready` are vectord's flow control (it is
    /// indexing what it was sent, or still loading) and are waited out, as `Retry-After`
    /// says, for up to `busy_wait` in a row: a bulk load often outruns the index builder,
    /// and that must not end it.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Option<Duration>,
        what: &str,
    ) -> Result<(u16, String), CallError> {
        let url = format!("{}{path}", self.base);
        let mut tries = 0u32;
        let mut busy_since: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(CallError::Stopped);
            }
            let (why, retry_after, busy) = match self.try_once(method, &url, body, timeout) {
                Try::Answer(status, text) => return Ok((status, text)),
                Try::Refused(e) => return Err(e),
                Try::Retry {
                    why,
                    retry_after,
                    busy,
                } => (why, retry_after, busy),
            };
            let (wait, count) = if busy {
                let since = *busy_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.busy_wait {
                    return Err(CallError::GaveUp(format!(
                        "busy for {:.0} s in a row (--busy-wait); the last answer: {why}",
                        since.elapsed().as_secs_f64()
                    )));
                }
                let wait = retry_after.unwrap_or(Duration::from_secs(1));
                (
                    wait,
                    format!("busy for {:.0} s", since.elapsed().as_secs_f64()),
                )
            } else {
                busy_since = None;
                tries += 1;
                if tries >= self.max_tries {
                    return Err(CallError::GaveUp(format!(
                        "{tries} tries failed (--max-tries); the last one: {why}"
                    )));
                }
                let wait = retry_after.unwrap_or_else(|| backoff(tries));
                (wait, format!("try {}/{}", tries + 1, self.max_tries))
            };
            self.progress.retry(|| {
                format!(
                    "{what}: {why}; retrying in {:.1} s ({count})",
                    wait.as_secs_f64()
                )
            });
            if !self.sleep(wait) {
                return Err(CallError::Stopped);
            }
        }
    }

    /// One try of a request: a final answer, or why to retry, how long the server asks to
    /// wait and whether it is flow control.
    fn try_once(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Try {
        let mut req = self.agent.request(method, url);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(a) = &self.auth {
            req = req.set("Authorization", a);
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
            None => req.call(),
        };
        match result {
            Ok(resp) => {
                let status = resp.status();
                match resp.into_string() {
                    Ok(text) => Try::Answer(status, text),
                    Err(e) => Try::Retry {
                        why: format!("reading the answer: {e}"),
                        retry_after: None,
                        busy: false,
                    },
                }
            }
            Err(ureq::Error::Status(status, resp)) => {
                let retry_after = resp
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                let (code, message) = error_of(resp);
                if !matches!(status, 502..=504) {
                    return Try::Refused(CallError::Status {
                        status,
                        code,
                        message,
                    });
                }
                let busy = status == 503 && (code == "busy" || code == "not_ready");
                Try::Retry {
                    why: format!("{status} {code}: {message}"),
                    retry_after,
                    busy,
                }
            }
            Err(ureq::Error::Transport(t)) => Try::Retry {
                why: t.to_string(),
                retry_after: None,
                busy: false,
            },
        }
    }

    /// Sleeps `d`, waking early (false) when the load is stopping.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }
}

/// The delay before try `tries + 1`: 0.25 s doubling to 10 s, with ±20 % jitter so that
/// the connections do not all come back at the same moment.
fn backoff(tries: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1 << (tries - 1).min(16))
        .min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.8 + 0.4 * (nanos % 1000) as f64 / 1000.0;
    base.mul_f64(jitter)
}

/// The code and message of an error answer (`{"error":{"code","message"}}`), or its text.
fn error_of(resp: ureq::Response) -> (String, String) {
    let text = resp.into_string().unwrap_or_default();
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v["error"]["message"].is_string() => (
            v["error"]["code"].as_str().unwrap_or("error").to_string(),
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        _ => {
            let mut t: String = text.trim().chars().take(300).collect();
            if t.is_empty() {
                t = "(no body)".into();
            }
            ("error".into(), t)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Batches.

/// Consecutive rows, as one `add` body.
pub struct Batch {
    pub first_row: u64,
    pub rows: u64,
    /// The line of each row, for JSON Lines (to name a line the server refused).
    pub lines: Option<Vec<u64>>,
    pub body: Vec<u8>,
}

/// Builds `add` bodies row by row, writing the JSON text directly.
pub struct BatchBuilder {
    id_prefix: String,
    body: String,
    first_row: u64,
    rows: u64,
    lines: Vec<u64>,
}

impl BatchBuilder {
    pub fn new(id_prefix: &str) -> Self {
        BatchBuilder {
            id_prefix: id_prefix.to_string(),
            body: String::new(),
            first_row: 0,
            rows: 0,
            lines: Vec::new(),
        }
    }

    pub fn len(&self) -> u64 {
        self.rows
    }

    pub fn push(&mut self, r: Record) {
        if self.rows == 0 {
            self.first_row = r.row;
            self.body.clear();
            self.body.push_str("{\"items\":[");
        } else {
            self.body.push(',');
        }
        debug_assert_eq!(r.row, self.first_row + self.rows, "rows are consecutive");
        self.rows += 1;
        if let Some(l) = r.line {
            self.lines.push(l);
        }
        let b = &mut self.body;
        match r.item {
            Item::Dense(v) => {
                let id = format!("{}{}", self.id_prefix, r.row);
                b.push_str("{\"id\":");
                b.push_str(&serde_json::to_string(&id).expect("a string serializes"));
                b.push_str(",\"vector\":[");
                for (j, x) in v.iter().enumerate() {
                    if j > 0 {
                        b.push(',');
                    }
                    // Debug prints the shortest text that reads back as the same f32 (and
                    // uses an exponent for very small or large values); finite values only.
                    let _ = write!(b, "{x:?}");
                }
                b.push_str("]}");
            }
            Item::Json {
                id,
                vector,
                metadata,
            } => {
                b.push_str("{\"id\":");
                b.push_str(&serde_json::to_string(&id).expect("a string serializes"));
                b.push_str(",\"vector\":");
                b.push_str(vector.get());
                if let Some(m) = metadata {
                    b.push_str(",\"metadata\":");
                    b.push_str(m.get());
                }
                b.push('}');
            }
        }
    }

    /// The batch so far; the builder starts over.
    pub fn take(&mut self) -> Batch {
        self.body.push_str("]}");
        let lines = std::mem::take(&mut self.lines);
        let batch = Batch {
            first_row: self.first_row,
            rows: self.rows,
            lines: (!lines.is_empty()).then_some(lines),
            body: std::mem::take(&mut self.body).into_bytes(),
        };
        self.rows = 0;
        batch
    }
}

impl Batch {
    /// "rows 1000-1999 (lines 1003-2010)".
    pub fn describe(&self) -> String {
        let last = self.first_row + self.rows - 1;
        let mut s = format!("rows {}-{last}", self.first_row);
        if let Some(lines) = &self.lines {
            let _ = write!(s, " (lines {}-{})", lines[0], lines[lines.len() - 1]);
        }
        s
    }

    /// The row (and line) that vectord's "items[i]..." message is about, if it names one.
    fn item_named(&self, message: &str) -> Option<String> {
        let at = message.find("items[")? + "items[".len();
        let digits: String = message[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let i: u64 = digits.parse().ok()?;
        if i >= self.rows {
            return None;
        }
        let mut s = format!("items[{i}] is row {}", self.first_row + i);
        if let Some(lines) = &self.lines {
            let _ = write!(s, ", line {}", lines[i as usize]);
        }
        Some(s)
    }
}

// ---------------------------------------------------------------------------------------
// Workers and the ledger.

/// Which rows are acknowledged: everything below `watermark`, and the batches in `done`
/// above it (acknowledged out of order, since several connections send at once).
pub struct Ledger {
    inner: Mutex<LedgerInner>,
}

struct LedgerInner {
    watermark: u64,
    done: BTreeMap<u64, u64>,
    batches: u64,
    failure: Option<String>,
}

impl Ledger {
    /// A ledger where the rows below `first` count as done (skipped).
    pub fn new(first: u64) -> Self {
        Ledger {
            inner: Mutex::new(LedgerInner {
                watermark: first,
                done: BTreeMap::new(),
                batches: 0,
                failure: None,
            }),
        }
    }

    fn ack(&self, b: &Batch) {
        let mut l = self.inner.lock().unwrap();
        l.batches += 1;
        l.done.insert(b.first_row, b.first_row + b.rows);
        loop {
            let w = l.watermark;
            match l.done.remove(&w) {
                Some(end) => l.watermark = end,
                None => break,
            }
        }
    }

    /// Records why the load failed (the first reason wins).
    pub fn fail(&self, why: String) {
        let mut l = self.inner.lock().unwrap();
        if l.failure.is_none() {
            l.failure = Some(why);
        }
    }

    /// The first row not known to be loaded (every row before it is).
    pub fn resume_point(&self) -> u64 {
        self.inner.lock().unwrap().watermark
    }

    pub fn batches(&self) -> u64 {
        self.inner.lock().unwrap().batches
    }

    pub fn failure(&self) -> Option<String> {
        self.inner.lock().unwrap().failure.clone()
    }
}

/// A connection thread: takes the next batch (in row order), sends it until vectord
/// acknowledges it, and on a failure that retrying will not cure stops the whole load.
pub fn worker(
    config: ClientConfig,
    add_path: String,
    queue: Arc<Mutex<Receiver<Batch>>>,
    ledger: Arc<Ledger>,
) {
    let client = Client::new(&config);
    loop {
        if config.stop.load(Ordering::Relaxed) {
            return;
        }
        // The lock is held while waiting, so the batches are taken in order.
        let batch = match queue.lock().unwrap().recv() {
            Ok(b) => b,
            Err(_) => return,
        };
        let what = format!("batch of {}", batch.describe());
        match client.call("POST", &add_path, Some(&batch.body), None, &what) {
            Ok(_) => {
                ledger.ack(&batch);
                config.progress.add(batch.rows);
            }
            Err(CallError::Stopped) => return,
            Err(e) => {
                let mut why = format!("{what}: {e}");
                if let CallError::Status {
                    status, message, ..
                } = &e
                {
                    if let Some(item) = batch.item_named(message) {
                        let _ = write!(why, " ({item})");
                    }
                    if *status == 413 {
                        why += "; send smaller batches with a lower --batch";
                    }
                }
                ledger.fail(why);
                config.stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}
