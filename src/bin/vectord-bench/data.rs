//! Benchmark data: the `.fvecs`/`.ivecs` sets (e.g. `minilm-dev`), and a seeded synthetic
//! generator whose exact ground truth is computed by brute force and cached on disk.

use std::path::{Path, PathBuf};

use vectord_actors::distance::Metric;
use vectord_actors::sample::seeded_vectors as random_vectors;

/// Base vectors, queries and the exact top-k ids of each query.
pub struct Dataset {
    pub name: String,
    pub metric: Metric,
    pub dim: usize,
    pub base: Vec<Vec<f32>>,
    pub queries: Vec<Vec<f32>>,
    /// For each query, the ids (rows of `base`) of its nearest neighbours, nearest first.
    pub truth: Vec<Vec<usize>>,
}

/// Reads a TEXMEX file: records of a little-endian i32 dimension then that many 4-byte
/// values, decoded by `value`.
fn read_vecs<T>(path: &Path, value: impl Fn([u8; 4]) -> T) -> Result<Vec<Vec<T>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{}: truncated record at byte {at}", path.display()))?;
        let d = i32::from_le_bytes(head);
        if d <= 0 || d > 1 << 16 {
            return Err(format!(
                "{}: bad dimension {d} at byte {at}",
                path.display()
            ));
        }
        let d = d as usize;
        let body = bytes
            .get(at + 4..at + 4 + 4 * d)
            .ok_or_else(|| format!("{}: truncated record at byte {at}", path.display()))?;
        out.push(
            body.chunks_exact(4)
                .map(|c| value([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
        at += 4 + 4 * d;
    }
    Ok(out)
}

/// `minilm-dev`-style directory: base.fvecs, query.fvecs, groundtruth.cosine.ivecs.
pub fn load_fvecs_dir(dir: &Path, max_queries: usize) -> Result<Dataset, String> {
    let base = read_vecs(&dir.join("base.fvecs"), f32::from_le_bytes)?;
    let mut queries = read_vecs(&dir.join("query.fvecs"), f32::from_le_bytes)?;
    let mut truth: Vec<Vec<usize>> =
        read_vecs(&dir.join("groundtruth.cosine.ivecs"), i32::from_le_bytes)?
            .into_iter()
            .map(|row| row.into_iter().map(|i| i.max(0) as usize).collect())
            .collect();
    queries.truncate(max_queries);
    truth.truncate(max_queries);
    let dim = base.first().map_or(0, |v| v.len());
    let name = dir
        .file_name()
        .map_or("fvecs".into(), |n| n.to_string_lossy().to_string());
    Ok(Dataset {
        name,
        metric: Metric::Cosine,
        dim,
        base,
        queries,
        truth,
    })
}

/// A synthetic set of `n` clustered `dim`-d vectors under L2 (uniform noise around 100
/// seeded centres, which is closer to real embeddings than plain uniform data), with its
/// top-100 ground truth cached in `cache_dir`.
pub fn synthetic(
    n: usize,
    dim: usize,
    queries: usize,
    cache_dir: &Path,
) -> Result<Dataset, String> {
    let centres = random_vectors(7, 100, dim);
    let noise = random_vectors(8, n + queries, dim);
    let point = |i: usize| -> Vec<f32> {
        let c = &centres[(i * 7919) % centres.len()];
        c.iter().zip(&noise[i]).map(|(c, e)| c + 0.35 * e).collect()
    };
    let base: Vec<Vec<f32>> = (0..n).map(point).collect();
    let queries: Vec<Vec<f32>> = (n..n + queries).map(point).collect();
    let cache: PathBuf = cache_dir.join(format!("synthetic-{n}-{dim}-{}.gt", queries.len()));
    let truth = match read_truth(&cache, queries.len()) {
        Some(t) => t,
        None => {
            eprintln!(
                "computing exact ground truth for {n} x {} queries (cached in {})",
                queries.len(),
                cache.display()
            );
            let t = brute_force(&base, &queries, Metric::L2, 100);
            std::fs::create_dir_all(cache_dir)
                .map_err(|e| format!("{}: {e}", cache_dir.display()))?;
            write_truth(&cache, &t).map_err(|e| format!("{}: {e}", cache.display()))?;
            t
        }
    };
    Ok(Dataset {
        name: format!("synthetic-{n}x{dim}"),
        metric: Metric::L2,
        dim,
        base,
        queries,
        truth,
    })
}

/// Exact top-`k` by the metric's reported distance, on every core.
pub fn brute_force(
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    metric: Metric,
    k: usize,
) -> Vec<Vec<usize>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = queries.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = queries
            .chunks(chunk)
            .map(|qs| {
                scope.spawn(move || {
                    qs.iter()
                        .map(|q| {
                            let mut d: Vec<(f32, usize)> = base
                                .iter()
                                .enumerate()
                                .map(|(i, v)| (metric.reported(q, v), i))
                                .collect();
                            let k = k.min(d.len());
                            if k > 0 && k < d.len() {
                                d.select_nth_unstable_by(k - 1, |a, b| {
                                    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
                                });
                                d.truncate(k);
                            }
                            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                            // not `into_iter`: an in-place collect would keep the
                            // whole scored vector's allocation alive in each row
                            d.iter().map(|&(_, i)| i).collect::<Vec<usize>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    })
}

fn read_truth(path: &Path, rows: usize) -> Option<Vec<Vec<usize>>> {
    let text = std::fs::read_to_string(path).ok()?;
    let t: Vec<Vec<usize>> = text
        .lines()
        .map(|l| l.split(' ').filter_map(|x| x.parse().ok()).collect())
        .collect();
    (t.len() == rows).then_some(t)
}

fn write_truth(path: &Path, truth: &[Vec<usize>]) -> std::io::Result<()> {
    let text: Vec<String> = truth
        .iter()
        .map(|row| {
            row.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    std::fs::write(path, text.join("\n"))
}

/// recall@k of `found` (ids) against the first `k` of `truth`.
pub fn recall(found: &[usize], truth: &[usize], k: usize) -> f64 {
    let want = &truth[..k.min(truth.len())];
    let hits = found.iter().take(k).filter(|id| want.contains(id)).count();
    hits as f64 / want.len().max(1) as f64
}

/// Mean recall@k of each query's `found` ids against its `truth`.
pub fn mean_recall(found: &[Vec<usize>], truth: &[Vec<usize>], k: usize) -> f64 {
    found
        .iter()
        .zip(truth)
        .map(|(f, t)| recall(f, t, k))
        .sum::<f64>()
        / found.len().max(1) as f64
}

/// Writes `set` as a data set directory (`base.fvecs`, `query.fvecs`, and its ground truth
/// as `groundtruth.cosine.ivecs` under cosine, else `groundtruth.ivecs`) under `dir`, for
/// tools that read files (hnswlib's bench); returns `dir`.
pub fn write_dir(set: &Dataset, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let rows = |rows: &mut dyn Iterator<Item = Vec<[u8; 4]>>| -> Vec<u8> {
        let mut out = Vec::new();
        for row in rows {
            out.extend_from_slice(&(row.len() as i32).to_le_bytes());
            row.iter().for_each(|v| out.extend_from_slice(v));
        }
        out
    };
    let floats = |vs: &[Vec<f32>]| {
        rows(
            &mut vs
                .iter()
                .map(|v| v.iter().map(|x| x.to_le_bytes()).collect()),
        )
    };
    let truth = rows(
        &mut set
            .truth
            .iter()
            .map(|t| t.iter().map(|&i| (i as i32).to_le_bytes()).collect()),
    );
    let truth_name = match set.metric {
        Metric::Cosine => "groundtruth.cosine.ivecs",
        _ => "groundtruth.ivecs",
    };
    for (name, bytes) in [
        ("base.fvecs", floats(&set.base)),
        ("query.fvecs", floats(&set.queries)),
        (truth_name, truth),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(dir.to_path_buf())
}
