//! storaged's own settings, the `[storaged]` section of the configuration: where it listens,
//! which backend holds the objects (`BackendKind`: local disk or an S3-compatible bucket,
//! `super::s3::S3Config`), and its API key.
//!
//! The values are parsed and checked, like every setting, by `crate::config::Config::set`;
//! this module only says what they are and what they default to.

use std::path::PathBuf;

use super::s3::S3Config;

/// `[storaged]`: the object-storage service.
#[derive(Debug, Clone)]
pub struct StoragedConfig {
    /// Address the storage API listens on.
    pub bind: String,
    /// Directory that holds the objects.
    pub root: PathBuf,
    /// Largest object a PUT accepts.
    pub max_object_bytes: usize,
    /// When set, storaged needs `Authorization: Bearer <key>` on every request but
    /// `/health`, and vectord's storaged client sends it.
    pub api_key: Option<String>,
    /// Where the objects are: `local` (files under `root`) or `s3` (a bucket, `s3`).
    pub backend: BackendKind,
    /// The S3-compatible bucket of the `s3` backend (`s3_*` keys; unset ones come from the
    /// standard AWS environment variables). Its `Debug` hides the secret key.
    pub s3: S3Config,
}

impl Default for StoragedConfig {
    fn default() -> Self {
        StoragedConfig {
            bind: "127.0.0.1:3211".into(),
            root: PathBuf::from("./data"),
            max_object_bytes: 1 << 40,
            api_key: None,
            backend: BackendKind::Local,
            s3: S3Config::default(),
        }
    }
}

/// Which backend storaged serves (`storaged.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// Files under `storaged.root`.
    #[default]
    Local,
    /// An S3-compatible bucket (`storaged.s3_*`).
    S3,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<BackendKind, String> {
        match s.trim() {
            "local" => Ok(BackendKind::Local),
            "s3" => Ok(BackendKind::S3),
            _ => Err("expected \"local\" or \"s3\"".into()),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Local => "local",
            BackendKind::S3 => "s3",
        })
    }
}
