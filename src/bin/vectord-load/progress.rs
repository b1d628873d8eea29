//! Progress while loading: an `indicatif` bar (vectors/s, ETA) when stderr is a terminal,
//! otherwise a plain line every 2 s, which reads well in a log file or CI output. Notes
//! (such as retries) are printed above the bar so that it is not torn.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often a plain progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);
/// Retry notes are printed at most this often (the count is in the progress and summary).
const RETRY_NOTE_EVERY: Duration = Duration::from_secs(5);

/// Shared by the sending threads; cheap to call from each of them.
pub struct Progress {
    quiet: bool,
    bar: Option<ProgressBar>,
    /// Vectors acknowledged by vectord.
    loaded: AtomicU64,
    retries: AtomicU64,
    total: Option<u64>,
    start: Instant,
    last_retry_note: Mutex<Option<Instant>>,
    /// The plain ticker: its stop signal and thread.
    ticker: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Progress {
    /// No progress display, only notes (for the requests before the load starts).
    pub fn notes_only(quiet: bool) -> Arc<Progress> {
        Arc::new(Progress {
            quiet,
            bar: None,
            loaded: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            total: None,
            start: Instant::now(),
            last_retry_note: Mutex::new(None),
            ticker: Mutex::new(None),
        })
    }

    /// Progress over `total` vectors to send (when known).
    pub fn start(total: Option<u64>, quiet: bool) -> Arc<Progress> {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{spinner} {elapsed_precise} {wide_bar} {human_pos}/{human_len} vectors  \
                 {rate}  ETA {eta}  {msg}"
            } else {
                "{spinner} {elapsed_precise} {human_pos} vectors  {rate}  {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                // indicatif's {per_sec} shows four decimals; whole vectors/s read better
                bar.set_style(style.with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} vectors/s", state.per_sec());
                    },
                ));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let progress = Arc::new(Progress {
            quiet,
            bar,
            loaded: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            total,
            start: Instant::now(),
            last_retry_note: Mutex::new(None),
            ticker: Mutex::new(None),
        });
        if !quiet && progress.bar.is_none() {
            let (tx, rx) = mpsc::channel::<()>();
            let p = progress.clone();
            let handle = std::thread::spawn(move || {
                let mut last = (Instant::now(), 0u64);
                loop {
                    match rx.recv_timeout(PLAIN_EVERY) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let now = (Instant::now(), p.loaded());
                    let rate = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64();
                    eprintln!("{}", p.plain_line(rate));
                    last = now;
                }
            });
            *progress.ticker.lock().unwrap() = Some((tx, handle));
        }
        progress
    }

    /// "loaded 12000/100000 vectors, 3500/s, ETA 25s, 2 retries": `rate` over the last
    /// interval, the ETA from the average so far (steadier).
    fn plain_line(&self, rate: f64) -> String {
        let loaded = self.loaded();
        let mut line = match self.total {
            Some(t) => format!("loaded {loaded}/{t} vectors, {rate:.0}/s"),
            None => format!("loaded {loaded} vectors, {rate:.0}/s"),
        };
        let average = loaded as f64 / self.start.elapsed().as_secs_f64();
        if let Some(t) = self.total {
            if average > 0.0 && t > loaded {
                line += &format!(", ETA {}", seconds((t - loaded) as f64 / average));
            }
        }
        let retries = self.retries();
        if retries > 0 {
            line += &format!(", {retries} retries");
        }
        line
    }

    /// `n` more vectors were acknowledged.
    pub fn add(&self, n: u64) {
        self.loaded.fetch_add(n, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    pub fn loaded(&self) -> u64 {
        self.loaded.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// A request is retried; `note` says why (printed now and then, not for each one).
    pub fn retry(&self, note: impl FnOnce() -> String) {
        let n = self.retries.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{n} retries"));
        }
        let mut last = self.last_retry_note.lock().unwrap();
        if last.is_none_or(|t| t.elapsed() >= RETRY_NOTE_EVERY) {
            *last = Some(Instant::now());
            drop(last);
            self.note(&note());
        }
    }

    /// A line for the user, above the bar (nothing with --quiet).
    pub fn note(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("vectord-load: {text}")),
            None => eprintln!("vectord-load: {text}"),
        }
    }

    /// Stops the bar (left on screen as it ended) or the plain ticker.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
            // the finished bar stays; what follows goes on the next line
            eprintln!();
        }
        if let Some((tx, handle)) = self.ticker.lock().unwrap().take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

/// "42s", "3m05s", "1h02m".
pub fn seconds(s: f64) -> String {
    let s = s.round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}
