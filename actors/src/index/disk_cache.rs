//! The cache files of an `on_disk` index: `<vectord.cache_dir>/<index>/seg-<id>.vdc`, one
//! per sealed segment (format: `codec::cache_file`). Its vectors are mapped from there
//! instead of held on the heap; the graph, the int8 codes and the ids stay in RAM.
//!
//! A seal, merge or compaction writes its new segment's file under a temporary name while
//! it builds (no lock held), maps it, and the install renames it to the segment's number
//! (which a merge learns only then). A job that is never installed (its index deleted, its
//! segment gone) removes its file when dropped. A merge's sources lose their files at its
//! install; a start-up removes every file that its index's manifest does not name.
//! storaged's objects stay the truth: a file that is missing or fails its checks is
//! written again from them at start-up (`persist::loader`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::codes::Codes;
use super::field_index::FieldIndexes;
use super::points::Points;
use super::sealed::FlatGraph;
use crate::codec::cache_file;

/// The directory of index `name`'s cache files.
pub fn index_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

/// The cache file of segment `id`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016x}.vdc"))
}

fn segment_of(file_name: &str) -> Option<u64> {
    let hex = file_name.strip_prefix("seg-")?.strip_suffix(".vdc")?;
    u64::from_str_radix(hex, 16).ok()
}

/// A name no other file of this process takes (a temporary cache file).
pub fn temp_path(dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        "new-{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Relaxed)
    ))
}

/// A new segment's points with their vectors mapped from a temporary cache file, until
/// `settle` gives that file the segment's number; dropped unsettled, the file goes.
pub struct CachedPoints {
    temp: Option<PathBuf>,
    points: Option<Points>,
}

impl CachedPoints {
    /// Renames the file to segment `id`'s and hands over the points (mapped). Should the
    /// rename fail, the points stay mapped (from the temporary file, removed at the next
    /// start-up) and the segment is fetched from storaged after a restart.
    pub fn settle(mut self, id: u64) -> Option<Points> {
        if let Some(temp) = self.temp.take() {
            let to = segment_path(temp.parent().unwrap_or(Path::new("")), id);
            if let Err(e) = std::fs::rename(&temp, &to) {
                log::warn!(
                    "cache file {} could not be renamed to {}: {e}",
                    temp.display(),
                    to.display()
                );
            }
        }
        self.points.take()
    }
}

impl Drop for CachedPoints {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Writes a new sealed segment's arrays to a temporary cache file in `dir` and maps its
/// vectors: the points it returns hold no vector on the heap.
pub fn spill(
    dir: &Path,
    points: &Points,
    graph: &FlatGraph,
    fields: &FieldIndexes,
    codes: Option<&Codes>,
) -> Result<CachedPoints, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let temp = temp_path(dir);
    let mut cached = CachedPoints {
        temp: Some(temp.clone()),
        points: None,
    };
    let (metadata_bytes, metadata_ends) =
        super::one_object::encode_metadata(points.metadata_slice());
    let encoded = fields.encode();
    let view = super::persisted::segment_view(
        points,
        graph,
        (&metadata_bytes, &metadata_ends),
        &encoded,
        codes,
    );
    cache_file::write_view(&temp, 0, &view)?;
    let opened = cache_file::open(&temp)?;
    cached.points = Some(points.with_vectors(opened.arrays.vectors)?);
    Ok(cached)
}

/// Removes segment files of `dir` that are not among `keep`, and temporary files (left by
/// a process that stopped while writing one). Returns how many it removed.
pub fn collect(dir: &Path, keep: &HashSet<u64>) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stale = match segment_of(&name) {
            Some(id) => !keep.contains(&id),
            None => name.ends_with(".tmp"),
        };
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Removes the cache files of a deleted index.
pub fn remove_index(root: &Path, name: &str) {
    let dir = index_dir(root, name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => log::info!("index {name:?}: cache files removed ({})", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log::warn!(
            "index {name:?}: removing its cache files {} failed: {e}",
            dir.display()
        ),
    }
}
