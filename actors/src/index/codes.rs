//! int8 scalar quantization of a sealed segment's vectors: one byte per value instead of
//! four, so that a graph walk reads a quarter of the memory and compares bytes; the best
//! candidates are then rescored with the f32 vectors (`search`).
//!
//! One range per segment, not per dimension: value x becomes code
//! c = round((x - lo) / scale) clamped to 0..=255, with `lo` and `lo + 255 · scale` the
//! quantiles (1 - q) / 2 and (1 + q) / 2 of all the segment's values (q = 0.99 by default:
//! the extreme 1 % is clamped, as Qdrant does). A single scale keeps every distance an
//! integer sum: with a = codes of x and b = codes of y,
//!
//! ```text
//! |x - y|² ≈ scale² · Σ (a_i - b_i)²
//! x · y    ≈ dim · lo² + lo · scale · (Σ a_i + Σ b_i) + scale² · Σ a_i b_i
//! ```
//!
//! where Σ a_i is kept per point. (A scale per dimension would turn the sums into float
//! sums with a multiply per value, which is what the codes are there to avoid.) The query
//! is quantized the same way.

use crate::distance::Metric;

use super::points::Points;

/// Most values sampled to find a segment's range.
const SAMPLE: usize = 1 << 20;

pub struct Codes {
    dim: usize,
    metric: Metric,
    /// The low end of the range and the step between codes.
    range: [f32; 2],
    /// Point p's codes are `codes[p * dim..(p + 1) * dim]`.
    codes: Vec<u8>,
    /// Σ of each point's codes (for dot products).
    sums: Vec<u32>,
}

/// A query quantized with a segment's range.
pub struct QueryCodes {
    codes: Vec<u8>,
    sum: u32,
}

impl Codes {
    /// The codes of every point of `points`, with a range from the `quantile` of their
    /// values.
    pub fn build(points: &Points, metric: Metric, quantile: f32) -> Codes {
        let (dim, values) = (points.dim(), points.vectors());
        let (lo, hi) = range(values, quantile);
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let code = |x: f32| code(x, lo, scale);
        let mut bytes = Vec::with_capacity(values.len());
        let mut sums = Vec::with_capacity(points.len());
        for p in 0..points.len() {
            let start = bytes.len();
            bytes.extend(points.vector(p).iter().map(|&x| code(x)));
            sums.push(bytes[start..].iter().map(|&c| c as u32).sum());
        }
        Codes {
            dim,
            metric,
            range: [lo, scale],
            codes: bytes,
            sums,
        }
    }

    /// Codes as stored (`parts`) for `points`, checked: a range of two finite numbers with
    /// a positive step, one code per value.
    pub fn from_parts(
        range: &[f32],
        codes: Vec<u8>,
        points: &Points,
        metric: Metric,
    ) -> Result<Codes, String> {
        let &[lo, scale] = range else {
            return Err(format!("a code range of {} values", range.len()));
        };
        if !lo.is_finite() || !scale.is_finite() || scale <= 0.0 {
            return Err(format!("a code range from {lo} by {scale}"));
        }
        let dim = points.dim();
        if codes.len() != points.len() * dim {
            return Err(format!(
                "{} codes for {} points of dim {dim}",
                codes.len(),
                points.len()
            ));
        }
        let sums = codes
            .chunks(dim)
            .map(|c| c.iter().map(|&x| x as u32).sum())
            .collect();
        Ok(Codes {
            dim,
            metric,
            range: [lo, scale],
            codes,
            sums,
        })
    }

    /// The stored form: the range (low end, step) and every point's codes.
    pub fn parts(&self) -> (&[f32], &[u8]) {
        (&self.range, &self.codes)
    }

    pub fn quantize(&self, query: &[f32]) -> QueryCodes {
        let codes: Vec<u8> = query
            .iter()
            .map(|&x| code(x, self.range[0], self.range[1]))
            .collect();
        let sum = codes.iter().map(|&c| c as u32).sum();
        QueryCodes { codes, sum }
    }

    #[inline]
    fn point(&self, p: u32) -> &[u8] {
        &self.codes[p as usize * self.dim..(p as usize + 1) * self.dim]
    }

    /// The search distance (as the f32 search computes it: squared under L2, 1 - dot
    /// otherwise) between the query and point `p`, from their codes.
    #[inline]
    pub fn distance(&self, query: &QueryCodes, p: u32) -> f32 {
        let kernels = kernels();
        let [lo, s] = self.range;
        match self.metric {
            Metric::L2 => s * s * (kernels.l2)(&query.codes, self.point(p)) as f32,
            Metric::Cosine | Metric::Ip => {
                let dot = (kernels.dot)(&query.codes, self.point(p)) as f32;
                let sums = (query.sum + self.sums[p as usize]) as f32;
                1.0 - (self.dim as f32 * lo * lo + lo * s * sums + s * s * dot)
            }
        }
    }

    /// Where point `p`'s codes are, to prefetch them.
    #[inline]
    pub fn address(&self, p: u32) -> *const u8 {
        self.codes.as_ptr().wrapping_add(p as usize * self.dim)
    }

    pub fn heap_bytes(&self) -> usize {
        self.codes.capacity() + self.sums.capacity() * 4
    }
}

/// The code of value `x` in the range starting at `lo`, `scale` a step.
fn code(x: f32, lo: f32, scale: f32) -> u8 {
    ((x - lo) / scale).round().clamp(0.0, 255.0) as u8
}

/// The quantiles (1 - q) / 2 and (1 + q) / 2 of `values` (of at most `SAMPLE` of them,
/// evenly spaced).
fn range(values: &[f32], quantile: f32) -> (f32, f32) {
    let step = values.len().div_ceil(SAMPLE).max(1);
    let mut sample: Vec<f32> = values
        .iter()
        .step_by(step)
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if sample.is_empty() {
        return (0.0, 0.0);
    }
    let q = quantile.clamp(0.5, 1.0);
    let last = sample.len() - 1;
    let at = |f: f32| ((f * last as f32).round() as usize).min(last);
    let (lo_at, hi_at) = (at((1.0 - q) / 2.0), at((1.0 + q) / 2.0));
    let lo = *sample.select_nth_unstable_by(lo_at, f32::total_cmp).1;
    let hi = *sample.select_nth_unstable_by(hi_at, f32::total_cmp).1;
    (lo, hi)
}

/// The integer kernels, chosen once for this CPU.
struct Kernels {
    dot: fn(&[u8], &[u8]) -> u32,
    l2: fn(&[u8], &[u8]) -> u32,
}

fn kernels() -> &'static Kernels {
    static CHOSEN: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            return Kernels {
                dot: avx2::dot,
                l2: avx2::l2,
            };
        }
        Kernels {
            dot: dot_portable,
            l2: l2_portable,
        }
    })
}

/// Σ a_i b_i. Each product fits 16 bits; the loop is written for the compiler to turn into
/// wide multiply-adds.
#[inline(always)]
fn dot_portable(a: &[u8], b: &[u8]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as i32 * y as i32) as u32)
        .fold(0u32, u32::wrapping_add)
}

/// Σ (a_i - b_i)².
#[inline(always)]
fn l2_portable(a: &[u8], b: &[u8]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as i32 - y as i32;
            (d * d) as u32
        })
        .fold(0u32, u32::wrapping_add)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    /// The portable loops compiled for AVX2 (the compiler vectorizes them 32 bytes wide).
    #[target_feature(enable = "avx2")]
    unsafe fn dot_avx2(a: &[u8], b: &[u8]) -> u32 {
        super::dot_portable(a, b)
    }

    #[target_feature(enable = "avx2")]
    unsafe fn l2_avx2(a: &[u8], b: &[u8]) -> u32 {
        super::l2_portable(a, b)
    }

    pub fn dot(a: &[u8], b: &[u8]) -> u32 {
        // SAFETY: `kernels` hands out this function only after `is_x86_feature_detected!`
        // found AVX2 on this CPU; the body is safe code compiled with AVX2 enabled.
        unsafe { dot_avx2(a, b) }
    }

    pub fn l2(a: &[u8], b: &[u8]) -> u32 {
        // SAFETY: as for `dot`: only chosen where AVX2 was detected.
        unsafe { l2_avx2(a, b) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn points(vectors: &[Vec<f32>]) -> Points {
        let mut points = Points::new(vectors[0].len());
        for (i, v) in vectors.iter().enumerate() {
            points.push(&i.to_string(), v, Map::new(), None);
        }
        points
    }

    #[test]
    fn code_distances_are_close_to_the_real_ones() {
        let data = crate::sample::seeded_vectors(3, 200, 64);
        for metric in [Metric::L2, Metric::Cosine] {
            let vectors: Vec<Vec<f32>> = match metric {
                Metric::L2 => data.clone(),
                _ => data
                    .iter()
                    .map(|v| {
                        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                        v.iter().map(|x| x / n).collect()
                    })
                    .collect(),
            };
            let pts = points(&vectors);
            let codes = Codes::build(&pts, metric, 1.0);
            let q = codes.quantize(&vectors[0]);
            for (p, v) in vectors.iter().enumerate().skip(1) {
                let real = match metric {
                    Metric::L2 => v
                        .iter()
                        .zip(&vectors[0])
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f32>(),
                    _ => 1.0 - v.iter().zip(&vectors[0]).map(|(a, b)| a * b).sum::<f32>(),
                };
                let approx = codes.distance(&q, p as u32);
                let tolerance = 0.03 * real.abs().max(0.1) + 0.01;
                assert!(
                    (approx - real).abs() <= tolerance,
                    "{metric:?} {p}: {approx} vs {real}"
                );
            }
        }
    }

    #[test]
    fn kernels_agree_with_the_portable_loops() {
        let a: Vec<u8> = (0..1001u32).map(|i| (i * 37 % 256) as u8).collect();
        let b: Vec<u8> = (0..1001u32).map(|i| (i * 91 % 256) as u8).collect();
        let k = kernels();
        assert_eq!((k.dot)(&a, &b), dot_portable(&a, &b));
        assert_eq!((k.l2)(&a, &b), l2_portable(&a, &b));
        assert_eq!(dot_portable(&[255; 4], &[255; 4]), 4 * 255 * 255);
    }

    #[test]
    fn values_outside_the_quantile_are_clamped() {
        let mut v = vec![vec![0.0f32; 4]; 100];
        v[7][2] = 1000.0; // one outlier
        for (i, row) in v.iter_mut().enumerate() {
            row[0] = i as f32 / 100.0;
        }
        let codes = Codes::build(&points(&v), Metric::L2, 0.99);
        let [lo, scale] = codes.range;
        assert!(lo + 255.0 * scale < 1000.0, "the outlier sets no range");
        assert_eq!(codes.point(7)[2], 255);
    }
}
