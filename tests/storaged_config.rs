//! storaged's `[storaged]` backend settings on the real binary: a bad or missing S3 setting
//! stops start-up with the key named (and the secret key never shown).

use std::process::Command;

fn storaged(sets: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_storaged"));
    cmd.arg("--config").arg(dir.path().join("none.toml"));
    cmd.args(["--bind", "127.0.0.1:0"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    for var in ["AWS_ALLOW_HTTP", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"] {
        if !env.iter().any(|(k, _)| k == &var) {
            cmd.env_remove(var);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_backend_settings_name_their_key() {
    const SECRET: &str = "do-not-print-this-secret-4711";
    let secret = format!("storaged.s3_secret_access_key={SECRET}");
    for (sets, env, key) in [
        (vec!["storaged.backend=disk"], vec![], "storaged.backend"),
        (
            vec!["storaged.backend=s3", secret.as_str()],
            vec![],
            "storaged.s3_bucket",
        ),
        (
            vec![],
            vec![
                ("VECTORD_STORAGED_BACKEND", "s3"),
                ("VECTORD_STORAGED_S3_SECRET_ACCESS_KEY", SECRET),
            ],
            "storaged.s3_bucket",
        ),
        (
            vec![
                "storaged.backend=s3",
                "storaged.s3_bucket=b",
                "storaged.s3_endpoint=http://127.0.0.1:9",
                secret.as_str(),
            ],
            vec![],
            "storaged.s3_allow_http",
        ),
        (
            vec!["storaged.s3_endpoint=ftp://x"],
            vec![],
            "storaged.s3_endpoint",
        ),
        (vec!["storaged.s3_bucket=a/b"], vec![], "storaged.s3_bucket"),
        (
            vec!["storaged.s3_prefix=a/../b"],
            vec![],
            "storaged.s3_prefix",
        ),
        (
            vec!["storaged.s3_path_style=sometimes"],
            vec![],
            "storaged.s3_path_style",
        ),
        (
            vec!["storaged.s3_allow_http=yes"],
            vec![],
            "storaged.s3_allow_http",
        ),
    ] {
        let (code, err) = storaged(&sets, &env);
        assert_eq!(code, Some(2), "{sets:?} {env:?}: {err}");
        assert!(err.contains(key), "{sets:?}: {err} should name {key}");
        assert!(
            !err.contains(SECRET),
            "{sets:?}: the secret is shown: {err}"
        );
    }
}

#[test]
fn check_config_prints_the_storaged_keys_without_secrets() {
    const SECRET: &str = "do-not-print-this-secret-4712";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_storaged"))
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .args(["--root", "/srv/objects", "--check-config"])
        .args(["--set", &format!("storaged.api_key={SECRET}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("storaged.root = \"/srv/objects\""), "{text}");
    assert!(text.contains("storaged.api_key = \"<redacted>\""), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains("vectord."), "{text}");
}
