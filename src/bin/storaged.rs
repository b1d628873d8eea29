//! The storaged binary: loads the configuration (file, environment, flags) and serves the
//! `[storaged]` section's object store over HTTP until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "storaged",
    version,
    about = "Object storage for vectord: PUT/GET/DELETE/list objects by key over HTTP"
)]
struct Args {
    /// Configuration file (default: ./vectord.toml when present).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Override one setting; repeatable. Example: --set storaged.max_object_bytes=1048576
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,
    /// Shorthand for --set storaged.bind=ADDR
    #[arg(long, value_name = "HOST:PORT")]
    bind: Option<String>,
    /// Shorthand for --set storaged.root=DIR
    #[arg(long, value_name = "DIR")]
    root: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut sets = args.set.clone();
    if let Some(bind) = &args.bind {
        sets.push(format!("storaged.bind={bind}"));
    }
    if let Some(root) = &args.root {
        sets.push(format!("storaged.root={root}"));
    }
    let cfg = match vectord::config::Config::load(args.config.as_deref(), &sets) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("storaged: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let root = &cfg.storaged.root;
    if let Err(e) = std::fs::create_dir_all(root) {
        eprintln!(
            "storaged: cannot create storaged.root {}: {e}",
            root.display()
        );
        return ExitCode::from(1);
    }
    let result = actix_web::rt::System::new().block_on(async {
        let server = vectord::storaged::server(&cfg.storaged)?;
        server.await
    });
    match result {
        Ok(()) => {
            log::info!("storaged: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("storaged: {e}");
            eprintln!("storaged: {e}");
            ExitCode::from(1)
        }
    }
}
