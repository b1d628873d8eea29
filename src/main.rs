//! The vectord binary: loads the configuration, starts storaged in-process when asked to,
//! loads persisted indexes, serves the HTTP API, and on SIGINT/SIGTERM stops taking
//! requests, saves everything pending and exits 0.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use clap::Parser;
use vectord::config::{cores, Config, ConfigArgs, Role, VectordConfig};
use vectord::http::{self, AppState, IndexDefaults};
use vectord_actors::persist::persister::{FlushAll, Persister};
use vectord_actors::persist::status::PersistStatus;
use vectord_actors::registry::Registry;
use vectord_actors::replica::{self, FollowStatus};
use vectord_actors::storaged_client::StoragedClient;

// hnsw_rs makes one small allocation per graph link, and requests churn through large
// buffers; with jemalloc vectord's resident size stays within ~11 % of its live heap, where
// glibc's allocator needed twice the heap and mimalloc 1.7 times.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation: a background thread hands freed
/// memory back to the system within about a second (jemalloc's default waits 10 s, and
/// only while the process allocates), so that the resident size drops soon after a graph
/// build or a save has freed its working memory.
///
/// jemalloc reads this symbol as a `const char *` to a NUL-terminated string; a
/// `&'static [u8; N]` is a non-null pointer to N bytes, the last of them NUL.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 63] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

#[derive(Debug, Parser)]
#[command(
    name = "vectord",
    version,
    about = "Vector search over HTTP: named HNSW indexes, persisted to storaged"
)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Shorthand for --set vectord.bind=ADDR
    #[arg(long, value_name = "HOST:PORT")]
    bind: Option<String>,
    /// Shorthand for --set vectord.storaged_url=URL ("" for ephemeral mode)
    #[arg(long, value_name = "URL")]
    storaged_url: Option<String>,
    /// Shorthand for --set vectord.storaged_url= : keep nothing on disk.
    #[arg(long)]
    ephemeral: bool,
    /// Shorthand for --set storaged.root=DIR (the embedded storaged's directory)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Shorthand for --set storaged.bind=ADDR (the embedded storaged's address)
    #[arg(long, value_name = "HOST:PORT")]
    storaged_bind: Option<String>,
    /// Shorthand for --set vectord.embedded_storaged=false: use a storaged run separately.
    #[arg(long)]
    no_embedded_storaged: bool,
    /// Shorthand for --set vectord.role=replica --set vectord.embedded_storaged=false:
    /// serve, read-only, what a primary stores in the storaged at --storaged-url.
    #[arg(long)]
    replica: bool,
    /// Print the effective configuration (API keys redacted) and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let shorthands = [
        ("vectord.bind", args.bind.as_deref()),
        ("vectord.storaged_url", args.storaged_url.as_deref()),
        ("storaged.root", args.data_dir.as_deref()),
        ("storaged.bind", args.storaged_bind.as_deref()),
        ("vectord.storaged_url", args.ephemeral.then_some("")),
        (
            "vectord.embedded_storaged",
            (args.no_embedded_storaged || args.replica).then_some("false"),
        ),
        ("vectord.role", args.replica.then_some("replica")),
    ];
    let cfg = match args.config.load(&shorthands) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("vectord: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        print!("{}", cfg.describe());
        return ExitCode::SUCCESS;
    }
    env_logger::Builder::from_env(
        env_logger::Env::default()
            .default_filter_or("info,hnsw_rs=warn,anndists=warn,actix_server=warn"),
    )
    .init();
    match actix_web::rt::System::new().block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("vectord: {e}");
            eprintln!("vectord: {e}");
            ExitCode::from(1)
        }
    }
}

/// The service's life: configuration checked, the embedded storaged, the persister and
/// the registry, the HTTP server, the start-up load in the background; then, after a
/// signal, the final save.
async fn run(cfg: Config) -> std::io::Result<()> {
    let v = cfg.vectord.clone();
    let stale = vectord_actors::index::hnsw::remove_stale_temp_dirs();
    if stale > 0 {
        log::info!("vectord: removed {stale} temporary directories left by a killed process");
    }
    let persistent = !v.storaged_url.is_empty();
    let embedded = if persistent && v.embedded_storaged {
        Some(start_embedded_storaged(&cfg)?)
    } else {
        None
    };
    let store = StoragedClient::new(&v.storaged_url, Duration::from_secs(v.storage_timeout_s))
        .with_api_key(cfg.storaged.api_key.clone());
    let replica = v.role == Role::Replica;
    // A replica never writes to the store: no persister.
    let persister = (persistent && !replica).then(|| persister(&v, store.clone()));
    let saves = persister.as_ref().map(|p| p.status());
    let persister = persister.map(Actor::start);
    if !persistent {
        log::warn!("vectord: ephemeral mode (vectord.storaged_url is empty): indexes are kept in memory only");
    }
    // Index actors get a thread of their own; they only sequence work (the heavy parts run
    // on the blocking pool), so one thread serves all of them.
    let actor_arbiter = Arbiter::new();
    let registry = Arc::new(Registry::new(
        persister.clone(),
        actor_arbiter.handle(),
        v.engine(),
        v.idle_seal(),
    ));
    let ready = Arc::new(AtomicBool::new(!persistent));
    let following = replica.then(|| Arc::new(FollowStatus::default()));
    let state = app_state(
        &v,
        registry.clone(),
        persister.clone(),
        ready.clone(),
        (saves, following.clone()),
    );
    let server = serve(&v, state)?;

    supervisor::start_watchdog();
    if let Some(status) = following {
        start_following(&v, store, registry, status, ready);
    } else if persistent {
        let timeout = Duration::from_secs(v.rehydrate_timeout_s);
        actix_rt::spawn(rehydrate(store, registry, timeout, ready));
    } else {
        supervisor::ready();
    }
    let server_handle = server.handle();
    actix_rt::spawn(async move {
        let signal = shutdown_signal().await;
        log::info!("vectord: {signal} received, no longer taking requests");
        supervisor::stopping();
        server_handle.stop(true).await;
    });
    // Returns once a signal stopped the server and in-flight requests finished.
    server.await?;
    if let Some(p) = &persister {
        save_at_shutdown(p).await;
    }
    if let Some(handle) = embedded {
        handle.stop(true).await;
    }
    actor_arbiter.stop();
    log::info!("vectord: stopped");
    Ok(())
}

/// The persister of a primary.
fn persister(v: &VectordConfig, store: StoragedClient) -> Persister {
    Persister::new(
        store,
        v.save_quiet(),
        v.save_max_delay(),
        v.max_concurrent_saves,
        v.manifest_log_bytes,
    )
    .checkpoint_when_idle(
        (v.checkpoint_idle_ms > 0).then(|| Duration::from_millis(v.checkpoint_idle_ms)),
    )
}

/// A replica's follower, and its readiness once the first poll is done.
fn start_following(
    v: &VectordConfig,
    store: StoragedClient,
    registry: Arc<Registry>,
    status: Arc<FollowStatus>,
    ready: Arc<AtomicBool>,
) {
    log::info!(
        "vectord: a read replica of the indexes stored at {} (writes answer 409 read_only)",
        v.storaged_url
    );
    let every = Duration::from_millis(v.replica_poll_ms);
    let timeout = Duration::from_secs(v.rehydrate_timeout_s);
    actix_rt::spawn(replica::follow(
        store,
        registry,
        every,
        timeout,
        status.clone(),
    ));
    actix_rt::spawn(async move {
        while !status.is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ready.store(true, Ordering::Release);
        supervisor::ready();
    });
}

/// storaged in this process, so one command gives a persistent service. It handles no
/// signals itself: it must outlive the final save.
fn start_embedded_storaged(cfg: &Config) -> std::io::Result<actix_web::dev::ServerHandle> {
    std::fs::create_dir_all(&cfg.storaged.root).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("storaged.root {}: {e}", cfg.storaged.root.display()),
        )
    })?;
    let expected = format!("http://{}", cfg.storaged.bind);
    if cfg.vectord.storaged_url != expected {
        log::warn!(
            "vectord.storaged_url is {} but the embedded storaged listens on {expected}",
            cfg.vectord.storaged_url
        );
    }
    let server = vectord::storaged::server_without_signals(&cfg.storaged)?;
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(handle)
}

/// What every request handler shares.
fn app_state(
    v: &VectordConfig,
    registry: Arc<Registry>,
    persister: Option<Addr<Persister>>,
    ready: Arc<AtomicBool>,
    (saves, following): (Option<Arc<PersistStatus>>, Option<Arc<FollowStatus>>),
) -> web::Data<AppState> {
    let search_threads = if v.search_threads == 0 {
        cores()
    } else {
        v.search_threads
    };
    web::Data::new(AppState {
        registry,
        persister,
        ready,
        search_permits: Arc::new(tokio::sync::Semaphore::new(search_threads)),
        max_body_bytes: v.max_body_bytes,
        defaults: IndexDefaults {
            m: v.default_m,
            ef_construction: v.default_ef_construction,
            ef_search: v.default_ef_search,
        },
        saves,
        following,
        limits: v.limits,
        // KiB permits (a Semaphore counts up to 2^61; u32 KiB requests cover 4 TiB).
        write_budget: Arc::new(tokio::sync::Semaphore::new(
            v.max_write_backlog_bytes.div_ceil(1024),
        )),
        max_queued_writes: v.max_queued_writes,
        api_key: v.api_key.clone(),
        metrics_public: v.metrics_public,
    })
}

/// Binds the HTTP API and starts serving it; logs the addresses bound.
fn serve(v: &VectordConfig, state: web::Data<AppState>) -> std::io::Result<Server> {
    let workers = if v.workers == 0 { cores() } else { v.workers };
    let search_threads = state.search_permits.available_permits();
    let persisting = state.persister.is_some();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(middleware::from_fn(http::replica::refuse_writes))
            .wrap(middleware::from_fn(http::auth::require_api_key))
            .wrap(middleware::from_fn(http::service_api::log_request))
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    .workers(workers)
    .shutdown_timeout(10)
    // Signals are ours (`run`): actix's own handling would stop the whole actor system
    // before the final save.
    .disable_signals()
    .bind(&v.bind)
    .map_err(|e| std::io::Error::new(e.kind(), format!("vectord.bind {}: {e}", v.bind)))?;
    // The addresses bound, not the setting: port 0 means a port the system picked.
    let listening: Vec<String> = server.addrs().iter().map(|a| a.to_string()).collect();
    let server = server.run();
    log::info!(
        "vectord: listening on {} ({}), {workers} workers, {search_threads} concurrent searches",
        listening.join(", "),
        if persisting {
            format!("persisting to {}", v.storaged_url)
        } else {
            "ephemeral".into()
        }
    );
    Ok(server)
}

/// Loads the stored indexes (retrying until storaged answers), then marks the service
/// ready; loads that failed for a transient reason go on being retried in the background.
async fn rehydrate(
    store: StoragedClient,
    registry: Arc<Registry>,
    timeout: Duration,
    ready: Arc<AtomicBool>,
) {
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        match registry.rehydrate(&store, timeout, cores()).await {
            Ok(report) => {
                vectord_actors::metrics::metrics()
                    .rehydrate_seconds
                    .set(started.elapsed().as_secs_f64());
                log::info!(
                    "vectord: ready, {} indexes loaded, {} failed ({} retried in the background), {} ms",
                    report.loaded,
                    report.failed,
                    report.retrying,
                    started.elapsed().as_millis()
                );
                if report.retrying > 0 {
                    let (store, registry) = (store.clone(), registry.clone());
                    actix_rt::spawn(
                        async move { registry.retry_failed_loads(store, timeout).await },
                    );
                }
                break;
            }
            Err(e) => {
                log::warn!(
                    "vectord: cannot list indexes in storaged yet, retrying in {} ms: {e}",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
    ready.store(true, Ordering::Release);
    supervisor::ready();
}

/// Saves every pending change before the process exits (within a minute).
async fn save_at_shutdown(persister: &Addr<Persister>) {
    log::info!("vectord: shutting down, saving pending changes");
    match tokio::time::timeout(Duration::from_secs(60), persister.send(FlushAll)).await {
        Ok(Ok(Ok(()))) => log::info!("vectord: everything saved"),
        Ok(Ok(Err(e))) => log::error!("vectord: some changes could not be saved: {e}"),
        Ok(Err(e)) => log::error!("vectord: persister unavailable at shutdown: {e}"),
        Err(_) => log::error!(
            "vectord: saving at shutdown timed out after 60 s; unsaved changes are lost"
        ),
    }
}

/// Tells systemd (a `Type=notify` unit) how the service is doing; does nothing when not
/// started by systemd (no `NOTIFY_SOCKET`).
mod supervisor {
    use sd_notify::NotifyState;

    /// Start-up loading is done and requests are served.
    pub fn ready() {
        if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
            log::warn!("vectord: telling systemd READY failed: {e}");
        }
    }

    /// A stop began (pending changes are being saved).
    pub fn stopping() {
        let _ = sd_notify::notify(&[
            NotifyState::Stopping,
            NotifyState::Status("saving pending changes"),
        ]);
    }

    /// When the unit has `WatchdogSec=`, pings systemd at a third of that interval, from the
    /// main arbiter: a wedged main thread stops the pings and systemd restarts the service.
    pub fn start_watchdog() {
        let Some(interval) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) else {
            return;
        };
        let every = interval / 3;
        log::info!("vectord: systemd watchdog every {} ms", every.as_millis());
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            }
        });
    }
}

/// Waits for SIGTERM or SIGINT and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("vectord: cannot listen for signals; stop it with kill -9");
        return futures::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
