//! The three distances an index can use, as `hnsw_rs::Distance` implementations that cannot
//! panic, and the exact figures reported to clients.
//!
//! `hnsw_rs` asserts that every distance is `>= 0` and compares them with
//! `partial_cmp().unwrap()`, so a graph distance must never be negative or NaN. The
//! `anndists` implementations can come out a hair below zero on rounding and then panic the
//! thread; ours clamp. Inner product is not a metric and `1 − ⟨a,b⟩` is negative for long
//! vectors, so the graph sees a monotone, positive remapping of it (order is all the graph
//! needs); clients always get the API's definition, computed by `reported`.
//!
//! The kernels are chosen once per process for the CPU it runs on (`kernels`): AVX-512 or
//! AVX2 with FMA where the CPU has them, else portable code with eight independent
//! accumulators that the compiler vectorizes for the baseline target (SSE2). The release
//! build targets baseline x86-64, so the fast kernels are compiled with `#[target_feature]`
//! and only ever called after `is_x86_feature_detected!` said yes.

use std::sync::OnceLock;

use hnsw_rs::prelude::Distance;
use serde::{Deserialize, Serialize};

/// The distance an index is created with; part of the persisted envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// 1 − cos(a, b); vectors are normalized at insert, so this is 1 − ⟨a, b⟩.
    Cosine,
    /// Euclidean ‖a − b‖ (not squared).
    L2,
    /// 1 − ⟨a, b⟩.
    Ip,
}

impl Metric {
    pub fn parse(text: &str) -> Option<Metric> {
        match text {
            "cosine" => Some(Metric::Cosine),
            "l2" => Some(Metric::L2),
            "ip" => Some(Metric::Ip),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
            Metric::Ip => "ip",
        }
    }

    /// The distance reported to clients, as API.md defines it. For cosine both vectors
    /// are already unit length.
    pub fn reported(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine => (1.0 - dot(a, b)).max(0.0),
            Metric::L2 => l2_squared(a, b).max(0.0).sqrt(),
            Metric::Ip => 1.0 - dot(a, b),
        }
    }
}

/// The distance kernels for this CPU: plain function pointers, so a hot loop calls them
/// without re-checking the CPU.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub dot: fn(&[f32], &[f32]) -> f32,
    pub l2_squared: fn(&[f32], &[f32]) -> f32,
    /// Which instruction set was chosen, for logs and the benchmark.
    pub name: &'static str,
}

/// The kernels chosen for this CPU (detected once).
#[inline]
pub fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    CHOSEN.get_or_init(detect)
}

fn detect() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(k) = x86::detect() {
            return k;
        }
    }
    Kernels {
        dot: dot_portable,
        l2_squared: l2_squared_portable,
        name: "portable",
    }
}

/// Dot product with the kernel chosen for this CPU.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (kernels().dot)(a, b)
}

/// Squared Euclidean distance with the kernel chosen for this CPU.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l2_squared)(a, b)
}

/// Dot product with eight independent accumulators (vectorizes without `unsafe`).
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        let x = &a[i * 8..i * 8 + 8];
        let y = &b[i * 8..i * 8 + 8];
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut sum = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in chunks * 8..n {
        sum += a[i] * b[i];
    }
    sum
}

/// Squared Euclidean distance, same shape as `dot_portable`.
pub fn l2_squared_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        let x = &a[i * 8..i * 8 + 8];
        let y = &b[i * 8..i * 8 + 8];
        for j in 0..8 {
            let d = x[j] - y[j];
            acc[j] += d * d;
        }
    }
    let mut sum = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in chunks * 8..n {
        let d = a[i] - b[i];
        sum += d * d;
    }
    sum
}

/// AVX2+FMA and AVX-512 kernels. Each `*_entry` function is a safe wrapper that is only
/// ever stored in a `Kernels` by `detect`, after the CPU was checked for the features the
/// kernel is compiled with; nothing else can reach them (the module is private).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Kernels;
    use std::arch::x86_64::*;

    pub(super) fn detect() -> Option<Kernels> {
        // A diagnostic override, to compare kernels on one machine: portable, avx2.
        let wanted = std::env::var("VECTORD_KERNELS").unwrap_or_default();
        if wanted == "portable" {
            return None;
        }
        if wanted != "avx2" && is_x86_feature_detected!("avx512f") {
            return Some(Kernels {
                dot: dot_avx512_entry,
                l2_squared: l2_avx512_entry,
                name: "avx512f",
            });
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Some(Kernels {
                dot: dot_avx2_entry,
                l2_squared: l2_avx2_entry,
                name: "avx2+fma",
            });
        }
        None
    }

    fn dot_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: reachable only through `detect`, which checked AVX2 and FMA.
        unsafe { dot_avx2(a, b) }
    }

    fn l2_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: reachable only through `detect`, which checked AVX2 and FMA.
        unsafe { l2_avx2(a, b) }
    }

    fn dot_avx512_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: reachable only through `detect`, which checked AVX-512F.
        unsafe { dot_avx512(a, b) }
    }

    fn l2_avx512_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: reachable only through `detect`, which checked AVX-512F.
        unsafe { l2_avx512(a, b) }
    }

    /// Sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    fn hsum256(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps::<1>(v);
        let lo = _mm256_castps256_ps128(v);
        let s = _mm_add_ps(hi, lo);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    // Loads: every `_mm256_loadu_ps(p.add(i))` below reads 8 floats at i..i+8 with
    // i + 8 <= n <= the length of both slices, so it stays inside them (unaligned loads
    // are allowed by `loadu`). Same for the 16-float AVX-512 loads with i + 16 <= n.

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: see "Loads" above (i + 8j + 8 <= i + 32 <= n).
                let (x, y) = unsafe {
                    (
                        _mm256_loadu_ps(pa.add(i + 8 * j)),
                        _mm256_loadu_ps(pb.add(i + 8 * j)),
                    )
                };
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: see "Loads" above.
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut total = hsum256(sum);
        while i < n {
            total += a[i] * b[i];
            i += 1;
        }
        total
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: see "Loads" above (i + 8j + 8 <= i + 32 <= n).
                let d = unsafe {
                    _mm256_sub_ps(
                        _mm256_loadu_ps(pa.add(i + 8 * j)),
                        _mm256_loadu_ps(pb.add(i + 8 * j)),
                    )
                };
                *acc = _mm256_fmadd_ps(d, d, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: see "Loads" above.
            let d =
                unsafe { _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
            acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut total = hsum256(sum);
        while i < n {
            let d = a[i] - b[i];
            total += d * d;
            i += 1;
        }
        total
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: see "Loads" above (i + 16j + 16 <= i + 32 <= n).
                let (x, y) = unsafe {
                    (
                        _mm512_loadu_ps(pa.add(i + 16 * j)),
                        _mm512_loadu_ps(pb.add(i + 16 * j)),
                    )
                };
                *acc = _mm512_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 16 <= n {
            // SAFETY: see "Loads" above.
            let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
            acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
            i += 16;
        }
        let mut total = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        while i < n {
            total += a[i] * b[i];
            i += 1;
        }
        total
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: see "Loads" above (i + 16j + 16 <= i + 32 <= n).
                let d = unsafe {
                    _mm512_sub_ps(
                        _mm512_loadu_ps(pa.add(i + 16 * j)),
                        _mm512_loadu_ps(pb.add(i + 16 * j)),
                    )
                };
                *acc = _mm512_fmadd_ps(d, d, *acc);
            }
            i += 32;
        }
        while i + 16 <= n {
            // SAFETY: see "Loads" above.
            let d =
                unsafe { _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
            acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
            i += 16;
        }
        let mut total = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        while i < n {
            let d = a[i] - b[i];
            total += d * d;
            i += 1;
        }
        total
    }
}

/// Euclidean norm, computed in f64: no square of an f32 overflows or underflows there
/// (f32 components of 1e20 or 1e-25 have squares far inside f64's range), so the norm is
/// exact to f32 precision for every finite vector.
pub fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// Scales `v` to unit length in place; returns false when its norm is zero (or the vector
/// holds a non-finite value). Computed in f64 (see `norm`), so a vector of tiny or huge
/// components is normalized like any other and comes out of unit length within f32
/// rounding.
pub fn normalize(v: &mut [f32]) -> bool {
    let n = norm(v);
    if !(n.is_finite() && n > 0.0) {
        return false;
    }
    v.iter_mut().for_each(|x| *x = (f64::from(*x) / n) as f32);
    true
}

/// Largest Euclidean norm accepted under l2 and ip: any two such vectors have a squared
/// distance and a dot product below 4e36, so every distance is a finite f32 (f32 reaches
/// 3.4e38). Larger vectors are refused at validation.
pub const MAX_NORM: f64 = 1e18;

/// What the graph may see: never negative, never NaN.
#[inline]
fn graph_safe(d: f32) -> f32 {
    if d.is_nan() {
        f32::MAX
    } else {
        d.max(0.0)
    }
}

/// Cosine over unit vectors: 1 − ⟨a, b⟩, clamped at 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        graph_safe(1.0 - dot(va, vb))
    }
}

/// Euclidean distance, not squared.
#[derive(Debug, Clone, Copy, Default)]
pub struct L2Distance;

impl Distance<f32> for L2Distance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        graph_safe(l2_squared(va, vb)).sqrt()
    }
}

/// Inner product, remapped for the graph: x = 1 − ⟨a, b⟩ becomes 1 + x for x ≥ 0 and
/// 1 / (1 − x) below, a positive function increasing in x, so neighbour order is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct IpDistance;

impl Distance<f32> for IpDistance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        let x = 1.0 - dot(va, vb);
        let mapped = if x >= 0.0 { 1.0 + x } else { 1.0 / (1.0 - x) };
        graph_safe(mapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::seeded_vectors as vectors;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn chosen_kernels_agree_with_the_portable_ones() {
        let k = kernels();
        for dim in [1, 5, 8, 15, 16, 17, 31, 32, 33, 100, 128, 384, 1000] {
            for pair in vectors(dim as u64 + 100, 10, dim).chunks(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let (d, p) = ((k.dot)(a, b), dot_portable(a, b));
                assert!(
                    (d - p).abs() <= 1e-4 * (1.0 + p.abs()),
                    "{} dim {dim}",
                    k.name
                );
                let (d, p) = ((k.l2_squared)(a, b), l2_squared_portable(a, b));
                assert!(
                    (d - p).abs() <= 1e-4 * (1.0 + p.abs()),
                    "{} dim {dim}",
                    k.name
                );
            }
        }
    }

    #[test]
    fn kernels_match_a_plain_reference() {
        for dim in [1, 3, 7, 8, 9, 31, 384, 1000] {
            for pair in vectors(dim as u64, 20, dim).chunks(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let d = naive_dot(a, b);
                assert!(
                    (dot(a, b) as f64 - d).abs() < 1e-4 * (1.0 + d.abs()),
                    "dim {dim}"
                );
                let l2: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| ((*x - *y) as f64).powi(2))
                    .sum();
                assert!((l2_squared(a, b) as f64 - l2).abs() < 1e-4 * (1.0 + l2));
                assert!((Metric::L2.reported(a, b) as f64 - l2.sqrt()).abs() < 1e-4 * (1.0 + l2));
                assert!(
                    (Metric::Ip.reported(a, b) as f64 - (1.0 - d)).abs() < 1e-4 * (1.0 + d.abs())
                );
            }
        }
    }

    #[test]
    fn cosine_of_a_unit_vector_with_itself_is_zero_and_never_negative() {
        for mut v in vectors(7, 200, 384) {
            assert!(normalize(&mut v));
            let d = CosineDistance.eval(&v, &v);
            assert!((0.0..=1e-6).contains(&d), "{d}");
            assert!(Metric::Cosine.reported(&v, &v) >= 0.0);
        }
    }

    #[test]
    fn graph_distances_are_never_negative_or_nan() {
        let huge = vec![f32::MAX; 16];
        let neg = vec![-f32::MAX; 16];
        for d in [
            CosineDistance.eval(&huge, &neg),
            L2Distance.eval(&huge, &neg),
            IpDistance.eval(&huge, &huge),
            IpDistance.eval(&huge, &neg),
            IpDistance.eval(&[f32::INFINITY], &[f32::NEG_INFINITY]),
        ] {
            assert!(d >= 0.0 && !d.is_nan(), "{d}");
        }
    }

    #[test]
    fn ip_remapping_keeps_order() {
        let q = vec![1.0f32, 2.0, 3.0];
        let mut cands = vectors(3, 100, 3);
        cands
            .iter_mut()
            .for_each(|v| v.iter_mut().for_each(|x| *x *= 5.0));
        let mut by_graph = cands.clone();
        by_graph.sort_by(|a, b| IpDistance.eval(&q, a).total_cmp(&IpDistance.eval(&q, b)));
        let mut by_api = cands;
        by_api.sort_by(|a, b| {
            Metric::Ip
                .reported(&q, a)
                .total_cmp(&Metric::Ip.reported(&q, b))
        });
        assert_eq!(by_graph, by_api);
    }

    /// The API distance from the graph's distance for the same pair: equal for cosine and
    /// l2, the inverse remapping for ip.
    fn api_from_graph(metric: Metric, d: f32) -> f32 {
        match metric {
            Metric::Cosine | Metric::L2 => d,
            Metric::Ip if d >= 1.0 => d - 1.0,
            Metric::Ip => 1.0 - 1.0 / d,
        }
    }

    #[test]
    fn graph_distances_map_back_to_api_distances() {
        for pair in vectors(11, 200, 16).chunks(2) {
            let (mut a, mut b) = (pair[0].clone(), pair[1].clone());
            a.iter_mut().for_each(|x| *x *= 3.0);
            let ip = api_from_graph(Metric::Ip, IpDistance.eval(&a, &b));
            assert!((ip - Metric::Ip.reported(&a, &b)).abs() < 1e-4, "{ip}");
            let l2 = api_from_graph(Metric::L2, L2Distance.eval(&a, &b));
            assert!((l2 - Metric::L2.reported(&a, &b)).abs() < 1e-5);
            normalize(&mut a);
            normalize(&mut b);
            let cos = api_from_graph(Metric::Cosine, CosineDistance.eval(&a, &b));
            assert!((cos - Metric::Cosine.reported(&a, &b)).abs() < 1e-6);
        }
    }

    #[test]
    fn normalize_handles_tiny_and_huge_components() {
        for scale in [1e-25f32, 1e-38, 1e20, 1e30, f32::MAX / 2.0] {
            for base in vectors(5, 20, 64) {
                let mut v: Vec<f32> = base.iter().map(|x| x * scale).collect();
                if v.iter().all(|x| *x == 0.0) {
                    continue; // underflowed to zero in f32 already
                }
                assert!(normalize(&mut v), "scale {scale}");
                let self_distance = Metric::Cosine.reported(&v, &v);
                assert!(
                    self_distance.abs() <= 1e-6,
                    "scale {scale}: {self_distance}"
                );
                assert!((norm(&v) - 1.0).abs() < 1e-6, "scale {scale}");
            }
        }
    }

    #[test]
    fn distances_below_the_norm_limit_are_finite() {
        let dim = 4096;
        let big = (MAX_NORM / (dim as f64).sqrt()) as f32;
        let a = vec![big; dim];
        let b = vec![-big; dim];
        for d in [
            Metric::L2.reported(&a, &b),
            Metric::Ip.reported(&a, &a),
            Metric::Ip.reported(&a, &b),
        ] {
            assert!(d.is_finite(), "{d}");
        }
    }

    #[test]
    fn normalize_refuses_zero() {
        let mut z = vec![0.0f32; 4];
        assert!(!normalize(&mut z));
        let mut v = vec![3.0f32, 4.0];
        assert!(normalize(&mut v));
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
