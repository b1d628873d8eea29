//! The S3-compatible backend of storaged: its settings (`[storaged]` `s3_*` keys) and the
//! `object_store` client built from them.
//!
//! Settings left unset come from the standard AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, ...), read by `object_store`'s
//! `AmazonS3Builder::from_env`; with no credentials at all, `object_store` asks the
//! instance's metadata service (IAM roles). The secret key is never logged nor shown by
//! `Debug`.

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

/// Settings of the S3 backend. `None`/empty means "from the environment" (or the default).
#[derive(Clone)]
pub struct S3Config {
    /// Bucket name (required for the S3 backend).
    pub bucket: String,
    /// Endpoint URL of an S3-compatible server (`http(s)://host:port`); unset: AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Every key is stored under this prefix (`a/b`, no leading or trailing `/`), so that
    /// several stores can share one bucket.
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`), which S3-compatible servers expect;
    /// `false`: virtual-hosted style (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Allow a plain `http://` endpoint (local test servers).
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            prefix: String::new(),
            path_style: true,
            allow_http: false,
        }
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Checks a `storaged.s3_prefix` value; returns it without surrounding `/`.
pub fn parse_prefix(value: &str) -> Result<String, String> {
    let value = value.trim().trim_matches('/');
    if value.is_empty() {
        return Ok(String::new());
    }
    for segment in value.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err("segments must not be empty, `.` or `..`".into());
        }
        if super::keys::encode_segment(segment) != segment {
            return Err(format!(
                "segment {segment:?} needs escaping; use letters, digits and -_.:"
            ));
        }
    }
    Ok(value.to_string())
}

/// The client for these settings, and a description of it for logs (no secrets).
pub fn build(cfg: &S3Config) -> Result<(Arc<dyn ObjectStore>, String), String> {
    if cfg.bucket.is_empty() {
        return Err("storaged.s3_bucket is not set".into());
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&cfg.bucket)
        .with_virtual_hosted_style_request(!cfg.path_style);
    if let Some(endpoint) = &cfg.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &cfg.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &cfg.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &cfg.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if cfg.allow_http {
        builder = builder.with_allow_http(true);
    }
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let allow_http = builder
        .get_config_value(&AmazonS3ConfigKey::Client(
            object_store::ClientConfigKey::AllowHttp,
        ))
        .is_some_and(|v| v == "true");
    if let Some(e) = &endpoint {
        if e.starts_with("http://") && !allow_http {
            return Err(format!(
                "endpoint {e} is plain HTTP: set storaged.s3_allow_http = true to allow it"
            ));
        }
    }
    let region = builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| "us-east-1".into());
    let s3 = builder.build().map_err(|e| e.to_string())?;
    let mut description = format!(
        "S3 bucket {} at {} (region {region}, {} requests",
        cfg.bucket,
        endpoint.as_deref().unwrap_or("AWS"),
        if cfg.path_style {
            "path-style"
        } else {
            "virtual-hosted-style"
        }
    );
    let store: Arc<dyn ObjectStore> = if cfg.prefix.is_empty() {
        Arc::new(s3)
    } else {
        description.push_str(&format!(", keys under {}/", cfg.prefix));
        Arc::new(PrefixStore::new(s3, StorePath::from(cfg.prefix.as_str())))
    };
    description.push(')');
    Ok((store, description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let cfg = S3Config {
            secret_access_key: Some("very-secret-value".into()),
            ..Default::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn prefixes() {
        assert_eq!(parse_prefix("/a/b/").unwrap(), "a/b");
        assert_eq!(parse_prefix("").unwrap(), "");
        for bad in ["a//b", "a/../b", "a b%", "x#1"] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_needs_allow_http() {
        let mut cfg = S3Config {
            bucket: "b".into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            ..Default::default()
        };
        let err = build(&cfg).unwrap_err();
        assert!(err.contains("storaged.s3_allow_http"), "{err}");
        cfg.allow_http = true;
        let (_, description) = build(&cfg).unwrap();
        assert!(description.contains("http://127.0.0.1:1"), "{description}");
        assert!(!description.contains("secret"), "{description}");
    }
}
