//! vectord-load: loads vectors from `.fvecs`, `.npy` (float32, 2-d) or JSON Lines
//! (`{"id","vector","metadata"}` per line) into a vectord index, in batches over several
//! connections, retrying while vectord is busy or unreachable, with progress and a summary.
//!
//!   vectord-load base.fvecs --index docs --create --distance cosine --id-prefix doc-
//!   vectord-load items.jsonl --index docs --skip 120000      # resume after a failure
//!
//! Exit status: 0 loaded, 1 the load failed (the message says how to resume), 2 bad
//! arguments or an input file that cannot be read.

mod progress;
mod read;
mod send;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

use progress::Progress;
use read::{Format, ReadError};
use send::{BatchBuilder, CallError, Client, ClientConfig, Ledger};

#[derive(Debug, Parser)]
#[command(
    name = "vectord-load",
    version,
    about = "Loads vectors from .fvecs, .npy or JSON Lines into a vectord index",
    after_help = "Row numbers count vectors from the start of the file (for JSON Lines: \
                  non-blank lines). When a load fails, the message says which --skip resumes it; \
                  rows sent twice are simply replaced (add is an upsert).\n\n\
                  Exit status: 0 loaded, 1 the load failed, 2 bad arguments or unreadable input."
)]
struct Args {
    /// The input: .fvecs, .npy (little-endian float32, 2-d) or .jsonl/.ndjson (one
    /// {"id": "...", "vector": [...], "metadata": {...}} per line; metadata optional).
    file: PathBuf,
    /// The input's format, when its extension does not say.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// vectord's address.
    #[arg(long, env = "VECTORD_URL", default_value = "http://127.0.0.1:3215")]
    url: String,
    /// The index to load into.
    #[arg(long)]
    index: String,
    /// Create the index if it does not exist (its dimension is the file's); an existing
    /// index of the same dimension is used as it is.
    #[arg(long, requires = "distance")]
    create: bool,
    /// Distance of the index --create makes.
    #[arg(long, value_enum, requires = "create")]
    distance: Option<Distance>,
    /// HNSW links per node of the index --create makes (vectord's default when left out).
    #[arg(long, requires = "create")]
    m: Option<u32>,
    /// Candidate list size while building, for --create.
    #[arg(long, requires = "create")]
    ef_construction: Option<u32>,
    /// Default search candidate list size, for --create.
    #[arg(long, requires = "create")]
    ef_search: Option<u32>,
    /// Vectors per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
    /// Requests in flight at once, each on a connection of its own. Batches are taken in
    /// row order but may be applied out of order: if an id occurs twice in the input, use
    /// --connections 1 to be sure the later row wins.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    connections: u64,
    /// Skip the first N rows (to resume a load: the failure message says which N).
    #[arg(long, default_value_t = 0, value_name = "N")]
    skip: u64,
    /// Load at most N rows (after the skipped ones).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// .fvecs/.npy rows get the id <prefix><row number> (row numbers count from the start
    /// of the file, so a resumed load makes the same ids).
    #[arg(long, default_value = "", value_name = "PREFIX")]
    id_prefix: String,
    /// API key, sent as Authorization: Bearer <key>.
    #[arg(long, env = "VECTORD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Ask vectord to store the index at the end (POST .../flush) and report the answer.
    #[arg(long)]
    flush: bool,
    /// Tries per request before giving up while vectord cannot be reached, times out or
    /// answers 502/504 or a 503 other than busy (waits double from 0.25 s to 10 s between
    /// tries, or follow Retry-After).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    max_tries: u32,
    /// Seconds one batch may keep getting 503 busy (vectord indexing what it was sent, or
    /// still loading) before the load gives up; these waits do not count as tries.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    busy_wait: u64,
    /// Seconds to wait for one answer before retrying.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// No progress and no notes (errors and the summary are still printed).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Distance {
    Cosine,
    L2,
    Ip,
}

impl Distance {
    fn name(self) -> &'static str {
        match self {
            Distance::Cosine => "cosine",
            Distance::L2 => "l2",
            Distance::Ip => "ip",
        }
    }
}

/// How a run ends badly.
enum Failure {
    /// Bad arguments or unreadable input: exit 2.
    Usage(String),
    /// The load failed: exit 1.
    Load(String),
}

impl From<ReadError> for Failure {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::File(m) => Failure::Usage(m),
            ReadError::Record(m) => Failure::Load(m),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("vectord-load: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Load(m)) => {
            eprintln!("vectord-load: {m}");
            ExitCode::from(1)
        }
    }
}

/// The contract's index names: 1-128 of [A-Za-z0-9._-], not starting with '.'.
fn valid_index_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn run(args: &Args) -> Result<(), Failure> {
    if !valid_index_name(&args.index) {
        return Err(Failure::Usage(format!(
            "--index {:?}: a name is 1-128 characters of A-Z a-z 0-9 . _ -, not starting with '.'",
            args.index
        )));
    }
    let base = args.url.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(Failure::Usage(format!(
            "--url {:?}: expected http://host:port",
            args.url
        )));
    }
    let format = match args.format.or_else(|| Format::from_path(&args.file)) {
        Some(f) => f,
        None => {
            return Err(Failure::Usage(format!(
                "{}: cannot tell the format from the extension (.fvecs, .npy, .jsonl, .ndjson): \
                 pass --format",
                args.file.display()
            )))
        }
    };
    if format == Format::Jsonl && !args.id_prefix.is_empty() {
        return Err(Failure::Usage(
            "--id-prefix applies to .fvecs/.npy rows; JSON Lines items carry their own ids".into(),
        ));
    }

    // The input first: a file that cannot be read is found before vectord is asked anything.
    let mut reader = read::open(&args.file, format, !args.quiet)?;
    let skipped = reader.skip(args.skip)?;
    if skipped < args.skip {
        return Err(Failure::Usage(format!(
            "--skip {}: {} has only {skipped} rows",
            args.skip,
            args.file.display()
        )));
    }
    let dim = reader.dim()?;
    let to_send = reader
        .total_rows()
        .map(|t| (t - skipped).min(args.limit.unwrap_or(u64::MAX)));

    let stop = Arc::new(AtomicBool::new(false));
    // Before the load starts there is nothing to show but notes (such as retries while
    // vectord cannot be reached yet).
    let early = Progress::notes_only(args.quiet);
    let mut config = ClientConfig {
        base,
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        timeout: Duration::from_secs(args.timeout),
        max_tries: args.max_tries,
        busy_wait: Duration::from_secs(args.busy_wait),
        stop: stop.clone(),
        progress: early.clone(),
    };
    let index_path = format!("/vectors/index/{}", args.index);
    let start = Instant::now();
    let Some(_info) = ensure_index(args, &Client::new(&config), &index_path, dim)? else {
        println!(
            "nothing to load: {} has no rows after --skip",
            args.file.display()
        );
        return Ok(());
    };

    let progress = Progress::start(to_send, args.quiet);
    config.progress = progress.clone();
    let ledger = Arc::new(Ledger::new(skipped));
    let (tx, rx) = mpsc::sync_channel(args.connections as usize * 2);
    let rx = Arc::new(Mutex::new(rx));
    let add_path = format!("{index_path}/add");
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let (c, p, q, l) = (config.clone(), add_path.clone(), rx.clone(), ledger.clone());
            std::thread::spawn(move || send::worker(c, p, q, l))
        })
        .collect();
    // Only the workers hold the queue: when they all stop, sending into it fails.
    drop(rx);

    let mut builder = BatchBuilder::new(&args.id_prefix);
    let mut remaining = args.limit.unwrap_or(u64::MAX);
    let mut read_failure = None;
    let mut sent_rows = 0u64;
    while remaining > 0 && !stop.load(Ordering::Relaxed) {
        match reader.next_record() {
            Ok(Some(record)) => {
                builder.push(record);
                remaining -= 1;
                if builder.len() >= args.batch {
                    sent_rows += builder.len();
                    if tx.send(builder.take()).is_err() {
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                read_failure = Some(e);
                break;
            }
        }
    }
    // The rows read before the end (or before a bad row) still go out.
    if builder.len() > 0 && !stop.load(Ordering::Relaxed) {
        sent_rows += builder.len();
        let _ = tx.send(builder.take());
    }
    drop(tx);
    for w in workers {
        let _ = w.join();
    }
    progress.finish();
    let elapsed = start.elapsed();

    let resume = ledger.resume_point();
    let loaded = progress.loaded();
    let failure = match (ledger.failure(), read_failure) {
        (Some(f), _) => Some(f),
        (None, Some(ReadError::File(m))) => Some(m),
        (None, Some(ReadError::Record(m))) => Some(m),
        (None, None) => None,
    };
    if let Some(why) = failure {
        return Err(Failure::Load(format!(
            "{why}\nvectord-load: {loaded} vectors were loaded in {:.1} s; every row before row \
             {resume} is in the index: resume with --skip {resume}",
            elapsed.as_secs_f64()
        )));
    }
    debug_assert_eq!(loaded, sent_rows);

    // The summary.
    let client = Client::new(&config);
    let count = match client.call("GET", &index_path, None, None, "reading the index's count") {
        Ok((_, body)) => serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["count"].as_u64())
            .map(|c| c.to_string())
            .unwrap_or_else(|| "?".into()),
        Err(e) => format!("? ({e})"),
    };
    let secs = elapsed.as_secs_f64();
    let mut out = String::new();
    out += &format!("index: {}\n", args.index);
    out += &match loaded {
        0 => "vectors sent: 0\n".to_string(),
        n => format!("vectors sent: {n} (rows {skipped}-{})\n", skipped + n - 1),
    };
    out += &format!("batches: {}\n", ledger.batches());
    out += &format!("retries: {}\n", progress.retries() + early.retries());
    out += &format!("elapsed: {secs:.2} s\n");
    out += &format!("rate: {:.0} vectors/s\n", loaded as f64 / secs.max(1e-9));
    out += &format!("index count: {count}\n");
    let mut flush_failure = None;
    if args.flush {
        // A save of a large index may take a while: wait longer than for an add.
        match client.call(
            "POST",
            &format!("{index_path}/flush"),
            None,
            Some(Duration::from_secs(args.timeout.max(600))),
            "flush",
        ) {
            Ok((_, body)) => {
                let persisted = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["persisted"].as_bool());
                out += &match persisted {
                    Some(true) => "flush: persisted\n".to_string(),
                    Some(false) => "flush: not persisted (vectord runs ephemeral)\n".to_string(),
                    None => format!("flush: {}\n", body.trim()),
                };
            }
            Err(e) => flush_failure = Some(e.to_string()),
        }
    }
    print!("{out}");
    if let Some(e) = flush_failure {
        return Err(Failure::Load(format!(
            "the vectors were loaded, but the flush failed: {e}"
        )));
    }
    Ok(())
}

/// Makes sure the index exists with the file's dimension (creating it with --create) and
/// returns its info; `None` when there is nothing to load into an index that need not exist.
fn ensure_index(
    args: &Args,
    client: &Client,
    index_path: &str,
    dim: Option<usize>,
) -> Result<Option<Value>, Failure> {
    let file = args.file.display();
    let mut created = false;
    loop {
        match client.call("GET", index_path, None, None, "looking up the index") {
            Ok((_, body)) => return check_index(args, &body, dim, created).map(Some),
            Err(CallError::Status { status: 404, .. }) if args.create && !created => {
                let Some(d) = dim else {
                    return Err(Failure::Usage(format!(
                        "{file} has no rows (after --skip) to take the dimension of a new index from"
                    )));
                };
                create_index(args, client, d)?;
                created = true;
            }
            Err(CallError::Status { status: 404, .. }) => {
                if dim.is_none() {
                    return Ok(None);
                }
                return Err(Failure::Load(format!(
                    "index {:?} does not exist at {}: create it with --create --distance \
                     cosine|l2|ip",
                    args.index, args.url
                )));
            }
            Err(e) => {
                return Err(Failure::Load(format!(
                    "looking up index {:?} at {}: {e}",
                    args.index, args.url
                )))
            }
        }
    }
}

/// The index's info (`body`), checked against the file: the same dimension, or a failure;
/// a different distance than --distance asks for is only a note (unless this run
/// `created` the index).
fn check_index(
    args: &Args,
    body: &str,
    dim: Option<usize>,
    created: bool,
) -> Result<Value, Failure> {
    let file = args.file.display();
    let info: Value = serde_json::from_str(body)
        .map_err(|e| Failure::Load(format!("vectord's index info is not JSON ({e}): {body}")))?;
    let have = info["dim"].as_u64();
    if let (Some(d), Some(h)) = (dim, have) {
        if d as u64 != h {
            return Err(Failure::Load(format!(
                "index {:?} has dimension {h}, but the vectors of {file} have \
                 dimension {d}",
                args.index
            )));
        }
    }
    if let Some(want) = args.distance {
        let is = info["distance"].as_str().unwrap_or("?");
        if !created && is != want.name() {
            note(
                args,
                &format!(
                    "index {:?} exists with distance {is} (not {}): loading into it as it is",
                    args.index,
                    want.name()
                ),
            );
        }
    }
    Ok(info)
}

/// Creates the index (--create) with dimension `dim` and the flags' distance and
/// parameters; one that someone else made meanwhile is fine (the caller checks it).
fn create_index(args: &Args, client: &Client, dim: usize) -> Result<(), Failure> {
    let distance = args.distance.unwrap_or(Distance::Cosine);
    let mut body = json!({"name": args.index, "dim": dim, "distance": distance.name()});
    for (key, v) in [
        ("m", args.m),
        ("ef_construction", args.ef_construction),
        ("ef_search", args.ef_search),
    ] {
        if let Some(v) = v {
            body[key] = json!(v);
        }
    }
    let body = serde_json::to_vec(&body).expect("JSON serializes");
    match client.call(
        "POST",
        "/vectors/index",
        Some(&body),
        None,
        "creating the index",
    ) {
        Ok(_) => note(
            args,
            &format!(
                "created index {:?} (dimension {dim}, distance {})",
                args.index,
                distance.name()
            ),
        ),
        // Made by someone else meanwhile: check it like any existing index.
        Err(CallError::Status {
            status: 409, code, ..
        }) if code == "index_exists" => {}
        Err(e) => {
            return Err(Failure::Load(format!(
                "creating index {:?}: {e}",
                args.index
            )))
        }
    }
    Ok(())
}

/// A note before the progress starts.
fn note(args: &Args, text: &str) {
    if !args.quiet {
        eprintln!("vectord-load: {text}");
    }
}
