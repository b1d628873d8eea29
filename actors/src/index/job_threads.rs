//! The threads a background job (a seal's graph build, a merge's inserts) runs on: one
//! per core, started for the job and ended with it, at a lower scheduling priority than
//! the threads that answer requests.
//!
//! Threads of their own, which end with the job: a thread's allocator cache keeps freed
//! memory (`hnsw_rs` frees a few hundred MB of small allocations per million points), and
//! only a thread that exits hands it all back. Measured: 8 MB less resident after sealing
//! 100k × 128-d.
//!
//! Lower priority: a build uses every core for seconds to minutes; at equal priority,
//! searches arriving meanwhile wait for the scheduler's turn behind it. At a nice value
//! `JOB_NICE` above the process's, the scheduler gives a build about a tenth of a core
//! that a search also wants, and still every core nobody else wants, so a bulk load on an
//! idle machine builds as fast as before. (Qdrant's optimizer and Elasticsearch's merges
//! likewise yield to queries.)

/// How much nicer job threads are than the rest of the process (Linux caps the result
/// at 19; raising a nice value needs no privilege).
pub const JOB_NICE: i32 = 10;

/// A pool of one thread per core for one job of `kind` ("build", "merge").
pub fn job_threads(kind: &'static str) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .thread_name(move |i| format!("vectord-{kind}-{i}"))
        .start_handler(|_| lower_priority())
        .build()
        .map_err(|e| format!("starting the {kind} threads: {e}"))
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: nice() takes an integer and touches no memory of ours. On Linux it changes
    // the calling thread's nice value only (threads are scheduled entities of their own).
    // It can fail only by being refused a raise, and this is a lowering; a failure would
    // leave the thread at normal priority, which is what it was.
    unsafe {
        libc::nice(JOB_NICE);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// The calling thread's nice value.
#[cfg(all(test, target_os = "linux"))]
fn nice_value() -> i32 {
    // SAFETY: getpriority takes integers and touches no memory of ours; `who` = 0 on
    // Linux is the calling thread.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn job_threads_run_nicer_than_the_thread_that_starts_them() {
        let own = nice_value();
        let pool = job_threads("test").unwrap();
        let theirs = pool.broadcast(|_| nice_value());
        assert!(!theirs.is_empty());
        for nice in theirs {
            assert_eq!(nice, (own + JOB_NICE).min(19));
        }
        // The starting thread keeps its own.
        assert_eq!(nice_value(), own);
    }
}
