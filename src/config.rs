//! Configuration of both binaries: built-in defaults, then `vectord.toml`, then `VECTORD_*`
//! environment variables, then command-line `--set section.key=value` flags (later wins).
//!
//! Every setting goes through one parser (`Config::set`), whatever its source, so a bad value
//! is reported the same way everywhere: with the key that holds it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::storaged::{BackendKind, StoragedConfig};

/// The flags both binaries take to find their configuration.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (default: ./vectord.toml when present).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Override one setting; repeatable. Example: --set vectord.default_ef_search=128
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigArgs {
    /// Loads the configuration; `shorthands` are `(key, value)` pairs of a binary's own
    /// flags, applied after `--set` so that they win.
    pub fn load(&self, shorthands: &[(&str, Option<&str>)]) -> Result<Config, ConfigError> {
        let mut sets = self.set.clone();
        for (key, value) in shorthands {
            if let Some(v) = value {
                sets.push(format!("{key}={v}"));
            }
        }
        Config::load(self.config.as_deref(), &sets)
    }
}

/// A setting that could not be applied; the message names the key and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("setting {key} = {value:?}: {message}")]
    BadValue {
        key: String,
        value: String,
        message: String,
    },
    #[error("unknown setting {key}")]
    UnknownKey { key: String },
}

/// `[vectord]`: the vector-search service.
#[derive(Debug, Clone)]
pub struct VectordConfig {
    /// Address the HTTP API listens on.
    pub bind: String,
    /// Base URL of storaged; empty means ephemeral mode (nothing is persisted).
    pub storaged_url: String,
    /// Start storaged inside this process (on `[storaged].bind`), so that one command
    /// gives a persistent service. Turn off when storaged runs on its own.
    pub embedded_storaged: bool,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Defaults for `POST /vectors/index` when the request leaves them out.
    pub default_m: usize,
    pub default_ef_construction: usize,
    pub default_ef_search: usize,
    /// Debounce of saves: a save starts after this much quiet on an index...
    pub save_quiet_ms: u64,
    /// ...or at the latest this long after the first unsaved change.
    pub save_max_delay_ms: u64,
    /// Longest wait for one index to load at start-up.
    pub rehydrate_timeout_s: u64,
    /// Timeout of one storaged request.
    pub storage_timeout_s: u64,
    /// Share of tombstoned points that triggers a background rebuild of a segment.
    pub compact_ratio: f64,
    /// The growing segment of an index is sealed (its graph built in the background) once
    /// it holds this many items.
    pub seal_points: usize,
    /// ...or once the index has had no write for this long (if it holds 1,024 items or more).
    pub seal_idle_ms: u64,
    /// `add` answers 503 busy while this many items of an index wait to be sealed.
    pub max_unsealed_points: usize,
    /// Size-tiered merging: this many sealed segments of similar size are merged into one.
    pub merge_factor: usize,
    /// Segments this large (live items) are not merged any more.
    pub max_segment_points: usize,
    /// Searches that may run at once (0 = number of cores); others queue.
    pub search_threads: usize,
    /// Saves (and deletes of stored indexes) running at once, at most.
    pub max_concurrent_saves: usize,
    /// The log of an index may grow to this many bytes (or a quarter of its stored
    /// segments) before seals and merges are written as segments under a new manifest;
    /// 0 writes them at every save.
    pub manifest_log_bytes: u64,
    /// Limits on what clients send (items per batch, metadata and id bytes, filter keys,
    /// indexes).
    pub limits: vectord_actors::index::Limits,
    /// When set, every request but `/health`, `/ready` and the console's files needs
    /// `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// `/metrics` without the key (for a scraper on a trusted network).
    pub metrics_public: bool,
    /// Bytes of write bodies held at once; more get 503 busy.
    pub max_write_backlog_bytes: usize,
    /// Writes waiting per index; more get 503 busy.
    pub max_queued_writes: usize,
    /// HTTP worker threads (0 = number of cores).
    pub workers: usize,
    /// `primary` (serves reads and writes, saves to storaged) or `replica` (serves every
    /// index a primary stores, read-only, following its saves: `vectord_actors::replica`).
    pub role: Role,
    /// How often a replica polls the store for the primary's changes.
    pub replica_poll_ms: u64,
    /// An index quiet this long gets a manifest naming its sealed segments (0: never), so
    /// that restarts and replicas load them rather than indexing its log again.
    pub checkpoint_idle_ms: u64,
    /// Where `on_disk` indexes keep their vectors (cache files, mapped; storaged stays the
    /// truth). Empty: `<storaged.root>-cache` with the embedded storaged (so `--data-dir`
    /// moves both), else `./vectord-cache`.
    pub cache_dir: String,
}

/// What a vectord process does (`vectord.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// The whole configuration: `[vectord]` here, `[storaged]` owned by `crate::storaged`.
#[derive(Debug, Clone)]
pub struct Config {
    pub vectord: VectordConfig,
    pub storaged: StoragedConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            vectord: VectordConfig {
                bind: "127.0.0.1:3215".into(),
                storaged_url: "http://127.0.0.1:3211".into(),
                embedded_storaged: true,
                max_body_bytes: 64 << 20,
                default_m: 16,
                default_ef_construction: 200,
                default_ef_search: 64,
                save_quiet_ms: 200,
                save_max_delay_ms: 2000,
                rehydrate_timeout_s: 120,
                storage_timeout_s: 30,
                compact_ratio: 0.25,
                seal_points: 20_000,
                seal_idle_ms: 1_000,
                max_unsealed_points: 200_000,
                merge_factor: 4,
                max_segment_points: 2_000_000,
                search_threads: 0,
                max_concurrent_saves: 2,
                manifest_log_bytes: 64 << 20,
                limits: vectord_actors::index::Limits::default(),
                api_key: None,
                metrics_public: false,
                max_write_backlog_bytes: 256 << 20,
                max_queued_writes: 64,
                workers: 0,
                cache_dir: String::new(),
                role: Role::Primary,
                replica_poll_ms: 1_000,
                checkpoint_idle_ms: 5_000,
            },
            storaged: StoragedConfig::default(),
        }
    }
}

/// Every key, as `section.key`, with its environment variable. Used for `--help`-style
/// listings and to walk the environment.
pub const KEYS: &[(&str, &str)] = &[
    ("vectord.bind", "VECTORD_BIND"),
    ("vectord.storaged_url", "VECTORD_STORAGED_URL"),
    ("vectord.embedded_storaged", "VECTORD_EMBEDDED_STORAGED"),
    ("vectord.max_body_bytes", "VECTORD_MAX_BODY_BYTES"),
    ("vectord.default_m", "VECTORD_DEFAULT_M"),
    (
        "vectord.default_ef_construction",
        "VECTORD_DEFAULT_EF_CONSTRUCTION",
    ),
    ("vectord.default_ef_search", "VECTORD_DEFAULT_EF_SEARCH"),
    ("vectord.save_quiet_ms", "VECTORD_SAVE_QUIET_MS"),
    ("vectord.save_max_delay_ms", "VECTORD_SAVE_MAX_DELAY_MS"),
    ("vectord.rehydrate_timeout_s", "VECTORD_REHYDRATE_TIMEOUT_S"),
    ("vectord.storage_timeout_s", "VECTORD_STORAGE_TIMEOUT_S"),
    ("vectord.compact_ratio", "VECTORD_COMPACT_RATIO"),
    ("vectord.seal_points", "VECTORD_SEAL_POINTS"),
    ("vectord.seal_idle_ms", "VECTORD_SEAL_IDLE_MS"),
    ("vectord.max_unsealed_points", "VECTORD_MAX_UNSEALED_POINTS"),
    ("vectord.merge_factor", "VECTORD_MERGE_FACTOR"),
    ("vectord.max_segment_points", "VECTORD_MAX_SEGMENT_POINTS"),
    ("vectord.search_threads", "VECTORD_SEARCH_THREADS"),
    (
        "vectord.max_concurrent_saves",
        "VECTORD_MAX_CONCURRENT_SAVES",
    ),
    ("vectord.manifest_log_bytes", "VECTORD_MANIFEST_LOG_BYTES"),
    (
        "vectord.max_write_backlog_bytes",
        "VECTORD_MAX_WRITE_BACKLOG_BYTES",
    ),
    ("vectord.max_queued_writes", "VECTORD_MAX_QUEUED_WRITES"),
    ("vectord.max_batch_items", "VECTORD_MAX_BATCH_ITEMS"),
    ("vectord.max_metadata_bytes", "VECTORD_MAX_METADATA_BYTES"),
    ("vectord.max_document_bytes", "VECTORD_MAX_DOCUMENT_BYTES"),
    ("vectord.max_id_bytes", "VECTORD_MAX_ID_BYTES"),
    ("vectord.max_filter_keys", "VECTORD_MAX_FILTER_KEYS"),
    ("vectord.max_filter_depth", "VECTORD_MAX_FILTER_DEPTH"),
    ("vectord.max_k", "VECTORD_MAX_K"),
    ("vectord.max_batch_searches", "VECTORD_MAX_BATCH_SEARCHES"),
    ("vectord.max_indexes", "VECTORD_MAX_INDEXES"),
    ("vectord.api_key", "VECTORD_API_KEY"),
    ("vectord.api_key_file", "VECTORD_API_KEY_FILE"),
    ("vectord.metrics_public", "VECTORD_METRICS_PUBLIC"),
    ("vectord.workers", "VECTORD_WORKERS"),
    ("vectord.cache_dir", "VECTORD_CACHE_DIR"),
    ("vectord.role", "VECTORD_ROLE"),
    ("vectord.replica_poll_ms", "VECTORD_REPLICA_POLL_MS"),
    ("vectord.checkpoint_idle_ms", "VECTORD_CHECKPOINT_IDLE_MS"),
    ("storaged.bind", "VECTORD_STORAGED_BIND"),
    ("storaged.api_key", "VECTORD_STORAGED_API_KEY"),
    ("storaged.api_key_file", "VECTORD_STORAGED_API_KEY_FILE"),
    ("storaged.root", "VECTORD_STORAGED_ROOT"),
    (
        "storaged.max_object_bytes",
        "VECTORD_STORAGED_MAX_OBJECT_BYTES",
    ),
    ("storaged.backend", "VECTORD_STORAGED_BACKEND"),
    ("storaged.s3_bucket", "VECTORD_STORAGED_S3_BUCKET"),
    ("storaged.s3_endpoint", "VECTORD_STORAGED_S3_ENDPOINT"),
    ("storaged.s3_region", "VECTORD_STORAGED_S3_REGION"),
    (
        "storaged.s3_access_key_id",
        "VECTORD_STORAGED_S3_ACCESS_KEY_ID",
    ),
    (
        "storaged.s3_secret_access_key",
        "VECTORD_STORAGED_S3_SECRET_ACCESS_KEY",
    ),
    ("storaged.s3_prefix", "VECTORD_STORAGED_S3_PREFIX"),
    ("storaged.s3_path_style", "VECTORD_STORAGED_S3_PATH_STYLE"),
    ("storaged.s3_allow_http", "VECTORD_STORAGED_S3_ALLOW_HTTP"),
];

impl Config {
    /// Defaults, then the file (if given and present, or `vectord.toml` in the working
    /// directory), then the environment, then `overrides` (`section.key=value`).
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        match file {
            Some(path) => cfg.apply_file(path)?,
            None => {
                let default = Path::new("vectord.toml");
                if default.exists() {
                    cfg.apply_file(default)?;
                }
            }
        }
        for (key, env) in KEYS {
            if let Ok(value) = std::env::var(env) {
                cfg.set(key, &value)?;
            }
        }
        for item in overrides {
            let (key, value) = item.split_once('=').ok_or_else(|| ConfigError::BadValue {
                key: item.clone(),
                value: String::new(),
                message: "expected section.key=value".into(),
            })?;
            cfg.set(key.trim(), value.trim())?;
        }
        if cfg.vectord.cache_dir.is_empty() {
            cfg.vectord.cache_dir = if cfg.vectord.role == Role::Replica {
                // Never the primary's directory, should both run in one place.
                let port = cfg.vectord.bind.rsplit(':').next().unwrap_or("0");
                format!("./vectord-cache-replica-{port}")
            } else if cfg.vectord.embedded_storaged {
                format!("{}-cache", cfg.storaged.root.display())
            } else {
                "./vectord-cache".into()
            };
        }
        cfg.check()?;
        Ok(cfg)
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let file_err = |message: String| ConfigError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
        for (section, body) in &table {
            let Some(body) = body.as_table() else {
                return Err(ConfigError::UnknownKey {
                    key: section.clone(),
                });
            };
            for (key, value) in body {
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.set(&format!("{section}.{key}"), &text)?;
            }
        }
        Ok(())
    }

    /// Sets one `section.key` from its text form; the error names the key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key.split_once('.') {
            Some(("vectord", _)) => set_vectord(&mut self.vectord, key, value),
            Some(("storaged", _)) => set_storaged(&mut self.storaged, key, value),
            _ => Err(unknown_key(key)),
        }
    }

    /// The effective value of every setting, as `section.key = value` lines in the order of
    /// `KEYS` (secrets shown as `<redacted>`), for `--check-config`.
    pub fn describe(&self) -> String {
        let v = &self.vectord;
        let s = &self.storaged;
        let secret = |k: &Option<String>| {
            if k.is_some() {
                "\"<redacted>\"".to_string()
            } else {
                "\"\"".to_string()
            }
        };
        let quoted = |x: &str| format!("{x:?}");
        let mut out = String::new();
        for (key, _) in KEYS {
            let value = match *key {
                "vectord.bind" => quoted(&v.bind),
                "vectord.storaged_url" => quoted(&v.storaged_url),
                "vectord.embedded_storaged" => v.embedded_storaged.to_string(),
                "vectord.max_body_bytes" => v.max_body_bytes.to_string(),
                "vectord.default_m" => v.default_m.to_string(),
                "vectord.default_ef_construction" => v.default_ef_construction.to_string(),
                "vectord.default_ef_search" => v.default_ef_search.to_string(),
                "vectord.save_quiet_ms" => v.save_quiet_ms.to_string(),
                "vectord.save_max_delay_ms" => v.save_max_delay_ms.to_string(),
                "vectord.rehydrate_timeout_s" => v.rehydrate_timeout_s.to_string(),
                "vectord.storage_timeout_s" => v.storage_timeout_s.to_string(),
                "vectord.compact_ratio" => v.compact_ratio.to_string(),
                "vectord.seal_points" => v.seal_points.to_string(),
                "vectord.seal_idle_ms" => v.seal_idle_ms.to_string(),
                "vectord.max_unsealed_points" => v.max_unsealed_points.to_string(),
                "vectord.merge_factor" => v.merge_factor.to_string(),
                "vectord.max_segment_points" => v.max_segment_points.to_string(),
                "vectord.search_threads" => v.search_threads.to_string(),
                "vectord.max_concurrent_saves" => v.max_concurrent_saves.to_string(),
                "vectord.manifest_log_bytes" => v.manifest_log_bytes.to_string(),
                "vectord.max_batch_items" => v.limits.max_batch_items.to_string(),
                "vectord.max_metadata_bytes" => v.limits.max_metadata_bytes.to_string(),
                "vectord.max_document_bytes" => v.limits.max_document_bytes.to_string(),
                "vectord.max_id_bytes" => v.limits.max_id_bytes.to_string(),
                "vectord.max_filter_keys" => v.limits.max_filter_keys.to_string(),
                "vectord.max_filter_depth" => v.limits.max_filter_depth.to_string(),
                "vectord.max_k" => v.limits.max_k.to_string(),
                "vectord.max_batch_searches" => v.limits.max_batch_searches.to_string(),
                "vectord.max_indexes" => v.limits.max_indexes.to_string(),
                "vectord.api_key" => secret(&v.api_key),
                "vectord.metrics_public" => v.metrics_public.to_string(),
                "vectord.max_write_backlog_bytes" => v.max_write_backlog_bytes.to_string(),
                "vectord.max_queued_writes" => v.max_queued_writes.to_string(),
                "vectord.workers" => v.workers.to_string(),
                "vectord.cache_dir" => quoted(&v.cache_dir),
                "vectord.role" => quoted(v.role.as_str()),
                "vectord.replica_poll_ms" => v.replica_poll_ms.to_string(),
                "vectord.checkpoint_idle_ms" => v.checkpoint_idle_ms.to_string(),
                "storaged.bind" => quoted(&s.bind),
                "storaged.api_key" => secret(&s.api_key),
                "storaged.root" => quoted(&s.root.display().to_string()),
                "storaged.max_object_bytes" => s.max_object_bytes.to_string(),
                "storaged.backend" => quoted(&s.backend.to_string()),
                "storaged.s3_bucket" => quoted(&s.s3.bucket),
                "storaged.s3_endpoint" => quoted(s.s3.endpoint.as_deref().unwrap_or("")),
                "storaged.s3_region" => quoted(s.s3.region.as_deref().unwrap_or("")),
                "storaged.s3_access_key_id" => secret(&s.s3.access_key_id),
                "storaged.s3_secret_access_key" => secret(&s.s3.secret_access_key),
                "storaged.s3_prefix" => quoted(&s.s3.prefix),
                "storaged.s3_path_style" => s.s3.path_style.to_string(),
                "storaged.s3_allow_http" => s.s3.allow_http.to_string(),
                // `*_file` keys only fill the key above them.
                _ => continue,
            };
            out.push_str(&format!("{key} = {value}\n"));
        }
        out
    }

    /// Checks that need several settings at once.
    fn check(&self) -> Result<(), ConfigError> {
        if self.vectord.role == Role::Replica && self.vectord.storaged_url.is_empty() {
            return Err(bad(
                "vectord.role",
                "replica",
                "a replica follows a store: set vectord.storaged_url",
            ));
        }
        let s = &self.storaged;
        if s.backend == BackendKind::S3 && s.s3.bucket.is_empty() {
            return Err(bad(
                "storaged.s3_bucket",
                "",
                "must be set when storaged.backend = \"s3\"",
            ));
        }
        if let Some(endpoint) = &s.s3.endpoint {
            if s.backend == BackendKind::S3
                && endpoint.starts_with("http://")
                && !s.s3.allow_http
                && std::env::var("AWS_ALLOW_HTTP").map_or(true, |v| v != "true")
            {
                return Err(bad(
                    "storaged.s3_allow_http",
                    "false",
                    "must be true for the plain-HTTP storaged.s3_endpoint",
                ));
            }
        }
        let v = &self.vectord;
        if v.max_write_backlog_bytes < v.max_body_bytes {
            return Err(bad(
                "vectord.max_write_backlog_bytes",
                &v.max_write_backlog_bytes.to_string(),
                "must be at least vectord.max_body_bytes (else the largest add could never pass)",
            ));
        }
        if v.save_max_delay_ms < v.save_quiet_ms {
            return Err(bad(
                "vectord.save_max_delay_ms",
                &v.save_max_delay_ms.to_string(),
                "must be at least vectord.save_quiet_ms",
            ));
        }
        Ok(())
    }
}

impl VectordConfig {
    /// How indexes shape their segments.
    pub fn engine(&self) -> vectord_actors::index::EngineConfig {
        vectord_actors::index::EngineConfig {
            seal_points: self.seal_points,
            max_unsealed_points: self.max_unsealed_points,
            compact_ratio: self.compact_ratio,
            merge_factor: self.merge_factor,
            max_segment_points: self.max_segment_points,
            limits: self.limits,
            // Ephemeral indexes keep their vectors in RAM: nothing would outlive them.
            cache_root: (!self.storaged_url.is_empty() && !self.cache_dir.is_empty()).then(|| {
                // Leaked once per call (the configuration lives as long as the process).
                &*Box::leak(PathBuf::from(&self.cache_dir).into_boxed_path())
            }),
            replica: self.role == Role::Replica,
        }
    }

    pub fn idle_seal(&self) -> vectord_actors::index_actor::IdleSeal {
        vectord_actors::index_actor::IdleSeal {
            after: Duration::from_millis(self.seal_idle_ms),
            ..Default::default()
        }
    }

    pub fn save_quiet(&self) -> Duration {
        Duration::from_millis(self.save_quiet_ms)
    }
    pub fn save_max_delay(&self) -> Duration {
        Duration::from_millis(self.save_max_delay_ms)
    }
}

/// Number of cores, used where a setting says 0.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Sets one `vectord.*` key (the limits on what clients send: `set_limit`).
fn set_vectord(v: &mut VectordConfig, key: &str, value: &str) -> Result<(), ConfigError> {
    match key {
        "vectord.bind" => v.bind = parse_addr(key, value)?,
        "vectord.storaged_url" => v.storaged_url = parse_url(key, value)?,
        "vectord.embedded_storaged" => v.embedded_storaged = parse(key, value)?,
        "vectord.max_body_bytes" => v.max_body_bytes = parse_range(key, value, 1024, 1 << 40)?,
        "vectord.default_m" => v.default_m = parse_range(key, value, 2, 128)?,
        "vectord.default_ef_construction" => {
            v.default_ef_construction = parse_range(key, value, 1, 10_000)?
        }
        "vectord.default_ef_search" => v.default_ef_search = parse_range(key, value, 1, 10_000)?,
        "vectord.save_quiet_ms" => v.save_quiet_ms = parse_range(key, value, 0, 3_600_000)?,
        "vectord.save_max_delay_ms" => v.save_max_delay_ms = parse_range(key, value, 0, 3_600_000)?,
        "vectord.rehydrate_timeout_s" => {
            v.rehydrate_timeout_s = parse_range(key, value, 1, 86_400)?
        }
        "vectord.storage_timeout_s" => v.storage_timeout_s = parse_range(key, value, 1, 3_600)?,
        "vectord.compact_ratio" => {
            let r: f64 = parse(key, value)?;
            if !(r > 0.0 && r <= 1.0) {
                return Err(bad(key, value, "must be in (0, 1]"));
            }
            v.compact_ratio = r;
        }
        "vectord.seal_points" => v.seal_points = parse_range(key, value, 1, 100_000_000)?,
        "vectord.seal_idle_ms" => v.seal_idle_ms = parse_range(key, value, 1, 86_400_000)?,
        "vectord.max_unsealed_points" => {
            v.max_unsealed_points = parse_range(key, value, 1, 1_000_000_000)?
        }
        "vectord.merge_factor" => v.merge_factor = parse_range(key, value, 2, 64)?,
        "vectord.max_segment_points" => {
            v.max_segment_points = parse_range(key, value, 1, 1_000_000_000)?
        }
        "vectord.search_threads" => v.search_threads = parse_range(key, value, 0, 1024)?,
        "vectord.manifest_log_bytes" => v.manifest_log_bytes = parse_range(key, value, 0, 1 << 40)?,
        "vectord.max_concurrent_saves" => {
            v.max_concurrent_saves = parse_range(key, value, 1, 1024)?
        }
        "vectord.api_key" => v.api_key = parse_key(key, value)?,
        "vectord.api_key_file" => v.api_key = read_key_file(key, value)?,
        "vectord.metrics_public" => v.metrics_public = parse(key, value)?,
        "vectord.max_write_backlog_bytes" => {
            v.max_write_backlog_bytes = parse_range(key, value, 1 << 20, 1 << 40)?
        }
        "vectord.max_queued_writes" => v.max_queued_writes = parse_range(key, value, 1, 100_000)?,
        "vectord.workers" => v.workers = parse_range(key, value, 0, 1024)?,
        "vectord.cache_dir" => v.cache_dir = value.to_string(),
        "vectord.role" => {
            v.role = match value {
                "primary" => Role::Primary,
                "replica" => Role::Replica,
                _ => {
                    return Err(ConfigError::BadValue {
                        key: key.into(),
                        value: value.into(),
                        message: "expected \"primary\" or \"replica\"".into(),
                    })
                }
            }
        }
        "vectord.replica_poll_ms" => v.replica_poll_ms = parse_range(key, value, 10, 3_600_000)?,
        "vectord.checkpoint_idle_ms" => {
            v.checkpoint_idle_ms = parse_range(key, value, 0, 86_400_000)?
        }
        _ => return set_limit(&mut v.limits, key, value),
    }
    Ok(())
}

/// Sets one of the `vectord.*` keys that limit what clients send.
fn set_limit(
    l: &mut vectord_actors::index::Limits,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    match key {
        "vectord.max_batch_items" => l.max_batch_items = parse_range(key, value, 1, 10_000_000)?,
        "vectord.max_metadata_bytes" => l.max_metadata_bytes = parse_range(key, value, 2, 1 << 30)?,
        // Stored lengths are u32: 1 GiB keeps every document far below.
        "vectord.max_document_bytes" => l.max_document_bytes = parse_range(key, value, 0, 1 << 30)?,
        "vectord.max_id_bytes" => l.max_id_bytes = parse_range(key, value, 1, 256)?,
        "vectord.max_filter_keys" => l.max_filter_keys = parse_range(key, value, 1, 100_000)?,
        "vectord.max_filter_depth" => l.max_filter_depth = parse_range(key, value, 1, 64)?,
        "vectord.max_k" => l.max_k = parse_range(key, value, 1, 10_000)?,
        "vectord.max_batch_searches" => l.max_batch_searches = parse_range(key, value, 1, 100_000)?,
        "vectord.max_indexes" => l.max_indexes = parse_range(key, value, 1, 10_000_000)?,
        _ => return Err(unknown_key(key)),
    }
    Ok(())
}

/// Sets one `storaged.*` key.
fn set_storaged(s: &mut StoragedConfig, key: &str, value: &str) -> Result<(), ConfigError> {
    match key {
        "storaged.bind" => s.bind = parse_addr(key, value)?,
        "storaged.api_key" => s.api_key = parse_key(key, value)?,
        "storaged.api_key_file" => s.api_key = read_key_file(key, value)?,
        "storaged.root" => {
            if value.is_empty() {
                return Err(bad(key, value, "must not be empty"));
            }
            s.root = PathBuf::from(value)
        }
        "storaged.max_object_bytes" => s.max_object_bytes = parse_range(key, value, 1024, 1 << 40)?,
        "storaged.backend" => s.backend = parse(key, value)?,
        "storaged.s3_bucket" => {
            let v = value.trim();
            if v.len() > 255 || v.contains(|c: char| c == '/' || c.is_whitespace()) {
                return Err(bad(key, value, "expected a bucket name"));
            }
            s.s3.bucket = v.to_string()
        }
        "storaged.s3_endpoint" => {
            s.s3.endpoint = Some(parse_url(key, value.trim())?).filter(|v| !v.is_empty())
        }
        "storaged.s3_region" => {
            s.s3.region = Some(value.trim().to_string()).filter(|v| !v.is_empty())
        }
        "storaged.s3_access_key_id" => {
            s.s3.access_key_id = Some(value.trim().to_string()).filter(|v| !v.is_empty())
        }
        // A secret: never echoed, also not in errors.
        "storaged.s3_secret_access_key" => {
            s.s3.secret_access_key = Some(value.trim().to_string()).filter(|v| !v.is_empty())
        }
        "storaged.s3_prefix" => {
            s.s3.prefix = crate::storaged::s3::parse_prefix(value)
                .map_err(|message| bad(key, value, &message))?
        }
        "storaged.s3_path_style" => s.s3.path_style = parse(key, value)?,
        "storaged.s3_allow_http" => s.s3.allow_http = parse(key, value)?,
        _ => return Err(unknown_key(key)),
    }
    Ok(())
}

fn unknown_key(key: &str) -> ConfigError {
    ConfigError::UnknownKey {
        key: key.to_string(),
    }
}

fn bad(key: &str, value: &str, message: &str) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        message: message.to_string(),
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse::<T>()
        .map_err(|e| bad(key, value, &e.to_string()))
}

fn parse_range<T>(key: &str, value: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    let n: T = parse(key, value)?;
    if n < min || n > max {
        return Err(bad(key, value, &format!("must be between {min} and {max}")));
    }
    Ok(n)
}

fn parse_addr(key: &str, value: &str) -> Result<String, ConfigError> {
    value
        .parse::<std::net::SocketAddr>()
        .map_err(|e| bad(key, value, &format!("expected host:port ({e})")))?;
    Ok(value.to_string())
}

/// An API key: empty means none; otherwise at least 16 characters, printable ASCII.
fn parse_key(key: &str, value: &str) -> Result<Option<String>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() < 16 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        // The value itself is a secret: never echo it.
        return Err(bad(
            key,
            "<redacted>",
            "an API key must be at least 16 printable ASCII characters without spaces",
        ));
    }
    Ok(Some(value.to_string()))
}

/// An API key read from a file (so that it need not sit in a unit file or on a command
/// line); empty path means none.
fn read_key_file(key: &str, path: &str) -> Result<Option<String>, ConfigError> {
    if path.trim().is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path.trim())
        .map_err(|e| bad(key, path, &format!("cannot read the key file: {e}")))?;
    parse_key(key, &text)
}

fn parse_url(key: &str, value: &str) -> Result<String, ConfigError> {
    if value.is_empty() {
        return Ok(String::new());
    }
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(bad(key, value, "expected http://host:port or empty"));
    }
    Ok(value.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        let mut cfg = Config::default();
        let err = cfg
            .set("vectord.default_m", "1000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("vectord.default_m"), "{err}");
        let err = cfg.set("vectord.bind", "nowhere").unwrap_err().to_string();
        assert!(err.contains("vectord.bind"), "{err}");
        let err = cfg.set("vectord.nope", "1").unwrap_err().to_string();
        assert!(err.contains("vectord.nope"), "{err}");
    }

    #[test]
    fn each_section_sets_its_own_keys() {
        let mut cfg = Config::default();
        cfg.set("vectord.max_id_bytes", "32").unwrap();
        cfg.set("vectord.seal_points", "500").unwrap();
        cfg.set("storaged.s3_bucket", " my-bucket ").unwrap();
        cfg.set("storaged.backend", "s3").unwrap();
        assert_eq!(cfg.vectord.limits.max_id_bytes, 32);
        assert_eq!(cfg.vectord.seal_points, 500);
        assert_eq!(cfg.storaged.s3.bucket, "my-bucket");
        assert_eq!(cfg.storaged.backend, BackendKind::S3);
    }

    #[test]
    fn keys_outside_a_section_or_of_the_wrong_section_are_unknown() {
        let mut cfg = Config::default();
        for key in [
            "bind",
            "other.bind",
            "vectord.root",
            "storaged.workers",
            "vectord.",
        ] {
            assert!(
                matches!(cfg.set(key, "1"), Err(ConfigError::UnknownKey { key: k }) if k == key),
                "{key}"
            );
        }
    }

    #[test]
    fn refused_values_name_the_reason_and_keep_the_old_value() {
        let mut cfg = Config::default();
        let before = cfg.vectord.limits.max_id_bytes;
        let err = cfg
            .set("vectord.max_id_bytes", "257")
            .unwrap_err()
            .to_string();
        assert!(err.contains("between 1 and 256"), "{err}");
        assert_eq!(cfg.vectord.limits.max_id_bytes, before);
        let err = cfg
            .set("storaged.s3_bucket", "a/b")
            .unwrap_err()
            .to_string();
        assert!(err.contains("storaged.s3_bucket"), "{err}");
        assert!(cfg.storaged.s3.bucket.is_empty());
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(
            &path,
            "[vectord]\nbind = \"127.0.0.1:9999\"\ndefault_m = 8\n[storaged]\nroot = \"/tmp/x\"\n",
        )
        .unwrap();
        let cfg = Config::load(Some(&path), &["vectord.default_m=12".into()]).unwrap();
        assert_eq!(cfg.vectord.bind, "127.0.0.1:9999");
        assert_eq!(cfg.vectord.default_m, 12);
        assert_eq!(cfg.storaged.root, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_file_value_names_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(&path, "[vectord]\nsave_quiet_ms = \"soon\"\n").unwrap();
        let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.contains("vectord.save_quiet_ms"), "{err}");
    }
}
