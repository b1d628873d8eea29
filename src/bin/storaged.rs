//! The storaged binary: loads the configuration (file, environment, flags) and serves the
//! `[storaged]` section's object store (a local directory, or an S3-compatible bucket with
//! `storaged.backend = "s3"`) over HTTP until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use vectord::config::ConfigArgs;

#[derive(Debug, Parser)]
#[command(
    name = "storaged",
    version,
    about = "Object storage for vectord: PUT/GET/DELETE/list objects by key over HTTP"
)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Shorthand for --set storaged.bind=ADDR
    #[arg(long, value_name = "HOST:PORT")]
    bind: Option<String>,
    /// Shorthand for --set storaged.root=DIR
    #[arg(long, value_name = "DIR")]
    root: Option<String>,
    /// Print the effective `[storaged]` configuration (secrets redacted) and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let shorthands = [
        ("storaged.bind", args.bind.as_deref()),
        ("storaged.root", args.root.as_deref()),
    ];
    let cfg = match args.config.load(&shorthands) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("storaged: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        for line in cfg
            .describe()
            .lines()
            .filter(|l| l.starts_with("storaged."))
        {
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let root = &cfg.storaged.root;
    if cfg.storaged.backend == vectord::storaged::BackendKind::Local {
        if let Err(e) = std::fs::create_dir_all(root) {
            eprintln!(
                "storaged: cannot create storaged.root {}: {e}",
                root.display()
            );
            return ExitCode::from(1);
        }
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
