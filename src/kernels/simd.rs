//! Vectorized f32 math shared by the model (activations, attention) and generation
//! (log-softmax). Each function has a portable version and an AVX2+FMA one that performs
//! the same operations in the same order (the exp's fused multiply-adds are `mul_add` in
//! the portable code: exactly rounded either way), so both give bit-identical results and
//! the choice of path never changes an output. Why by hand: the crate is built for generic
//! x86-64, where these loops only vectorize to SSE2, and libm's scalar `expf` / `erff` were
//! the largest costs after the matrix products.

use rayon::prelude::*;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding and subtracting rounds to an integer.
const ROUND: f32 = 12_582_912.0;
/// Cephes expf polynomial for e^r on [-ln2/2, ln2/2], highest degree first.
const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];
/// Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7): erf(a) = 1 - t*P(t) e^(-a^2),
/// t = 1 / (1 + p a).
const ERF_P: f32 = 0.327_591_1;
const ERF_A: [f32; 5] = [
    1.061_405_4,
    -1.453_152_1,
    1.421_413_8,
    -0.284_496_74,
    0.254_829_6,
];

/// e^x with ~1 ulp error, x clamped to [-87, 88] (so below -87 it returns ~1e-38, not 0:
/// invisible in the sums it is used for).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = x.mul_add(LOG2E, ROUND) - ROUND;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p = EXP_P[0];
    for &c in &EXP_P[1..] {
        p = p.mul_add(r, c);
    }
    let y = (p * r).mul_add(r, r) + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

#[inline(always)]
fn silu1(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

#[inline(always)]
fn gelu_erf1(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + ERF_P * a);
    let mut p = ERF_A[0];
    for &c in &ERF_A[1..] {
        p = p * t + c;
    }
    let e = 1.0 - (p * t) * exp(-(a * a));
    let erf = if z < 0.0 { -e } else { e };
    (0.5 * x) * (1.0 + erf)
}

/// Elementwise activation kinds with a vectorized kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// x * sigmoid(x), as torch: x / (1 + e^-x).
    Silu,
    /// 0.5 x (1 + erf(x / sqrt 2)).
    GeluErf,
}

/// `act` of every element of `x`, in parallel for large inputs.
pub fn activation(x: &[f32], act: Act) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| activation_into(x, o, act));
    out
}

fn activation_into(x: &[f32], out: &mut [f32], act: Act) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is present (checked once).
        done = unsafe { avx2::activation(x, out, act) };
    }
    for (o, &x) in out[done..].iter_mut().zip(&x[done..]) {
        *o = match act {
            Act::Silu => silu1(x),
            Act::GeluErf => gelu_erf1(x),
        };
    }
}

/// `max + ln(sum(exp(x - max)))` of a row: subtracting it gives the log-softmax. NaN if the
/// row has a NaN; the max itself if it is not finite.
pub fn log_softmax_shift(scores: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if scores.len() >= 8 && has_avx2() {
        // SAFETY: AVX2 is present (checked once).
        return unsafe { avx2::log_softmax_shift(scores) };
    }
    log_softmax_shift_portable(scores)
}

pub(crate) fn log_softmax_shift_portable(scores: &[f32]) -> f32 {
    // 8 independent lanes, like torch's vectorized kernel (and the AVX2 path).
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = scores.chunks_exact(8);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x > *l || x.is_nan() { x } else { *l };
        }
    }
    let mut max =
        chunks
            .remainder()
            .iter()
            .chain(&lanes)
            .copied()
            .fold(
                f32::NEG_INFINITY,
                |m, x| if x > m || x.is_nan() { x } else { m },
            );
    if !max.is_finite() {
        // All -inf, +inf or NaN somewhere: let the arithmetic give NaN / -inf like torch.
        if max.is_nan() {
            max = f32::NAN;
        }
        return max;
    }
    let mut sums = [0f32; 8];
    let mut chunks = scores.chunks_exact(8);
    for c in &mut chunks {
        for (s, &x) in sums.iter_mut().zip(c) {
            *s += exp(x - max);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&x| exp(x - max)).sum();
    let sum = sums.iter().sum::<f32>() + tail;
    max + sum.ln()
}

/// Softmax of every `width`-wide row of `x` (attention scores), rows in parallel: the row's
/// max, e^(x - max) summed in 8 lanes, times 1 / sum.
pub fn softmax_rows(x: &[f32], width: usize) -> Vec<f32> {
    map_rows(x, width, |x, out| {
        out.copy_from_slice(x);
        softmax_in_place(out)
    })
}

/// `f(row, out_row)` for every `width`-wide row of `x`, rows in parallel (tasks of ~16K
/// elements).
fn map_rows(x: &[f32], width: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    if width == 0 {
        return out;
    }
    let rows_per_task = (1 << 14) / width + 1;
    out.par_chunks_mut(rows_per_task * width)
        .zip(x.par_chunks(rows_per_task * width))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
                f(x, o);
            }
        });
    out
}

/// Sum with 8 partial sums (vectorizes).
#[inline(always)]
fn sum8(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut c = x.chunks_exact(8);
    for v in &mut c {
        for j in 0..8 {
            acc[j] += f(v[j]);
        }
    }
    let tail: f32 = c.remainder().iter().map(|&v| f(v)).sum();
    acc.iter().sum::<f32>() + tail
}

/// Layer norm (`bias: Some`) or T5's RMS norm (`None`, no centring) of every `d`-wide row,
/// rows in parallel: mean, centred variance (two passes, as torch), `x / sqrt(var + eps)`
/// times the weight, plus the bias.
pub fn norm_rows(x: &[f32], d: usize, weight: &[f32], bias: Option<&[f32]>, eps: f32) -> Vec<f32> {
    map_rows(x, d, |x, o| {
        let mean = if bias.is_some() {
            sum8(x, |v| v) / d as f32
        } else {
            0.0
        };
        let var = sum8(x, |v| (v - mean) * (v - mean)) / d as f32;
        let scale = (var + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(x).zip(weight) {
            *o = (v - mean) / scale * w;
        }
        if let Some(b) = bias {
            for (o, &b) in o.iter_mut().zip(b) {
                *o += b;
            }
        }
    })
}

/// In-place softmax of one row: max, e^(x - max) summed in 8 lanes, times 1 / sum. The
/// crate's one softmax: encoder attention rows ([`softmax_rows`]) and the decoder step's
/// attention (inlined there, so its max and scaling loops vectorize inside AVX2 code too).
#[inline(always)]
pub fn softmax_in_place(s: &mut [f32]) {
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut done = 0;
    let mut sums = [0f32; 8];
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is present (checked once).
        done = unsafe { avx2::exp_shifted(s, max, &mut sums) };
    }
    let mut chunks = s[done..].chunks_exact_mut(8);
    for c in &mut chunks {
        for j in 0..8 {
            c[j] = exp(c[j] - max);
            sums[j] += c[j];
        }
    }
    let mut tail = 0f32;
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        tail += *x;
    }
    let inv = 1.0 / (sums.iter().sum::<f32>() + tail);
    for x in s.iter_mut() {
        *x *= inv;
    }
}

/// Dot product with 8 partial sums (vectorizes inside an AVX2 function).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    (((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))) + tail
}

/// `y += p * x`.
#[inline(always)]
pub fn axpy(p: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += p * x;
    }
}

/// The kernels may use AVX2 and FMA ([`super::cpu::features`]).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    super::cpu::features().avx2_fma
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn c(v: f32) -> __m256 {
        _mm256_set1_ps(v)
    }

    /// [`super::exp`] on 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp8(x: __m256) -> __m256 {
        let x = _mm256_min_ps(_mm256_max_ps(x, c(-87.0)), c(88.0));
        let n = _mm256_sub_ps(_mm256_fmadd_ps(x, c(LOG2E), c(ROUND)), c(ROUND));
        let r = _mm256_fmadd_ps(n, c(-LN2_LO), _mm256_fmadd_ps(n, c(-LN2_HI), x));
        let mut p = c(EXP_P[0]);
        for &k in &EXP_P[1..] {
            p = _mm256_fmadd_ps(p, r, c(k));
        }
        let y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), c(1.0));
        // n is an integer in [-126, 127]: the conversion is exact
        let e = _mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
            23,
        );
        _mm256_mul_ps(y, _mm256_castsi256_ps(e))
    }

    /// Whole blocks of 8; returns how many elements were done.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn activation(x: &[f32], out: &mut [f32], act: Act) -> usize {
        let n8 = x.len().min(out.len()) / 8 * 8;
        let sign = _mm256_set1_ps(-0.0);
        for i in (0..n8).step_by(8) {
            let v = _mm256_loadu_ps(x.as_ptr().add(i));
            let y = match act {
                Act::Silu => _mm256_div_ps(v, _mm256_add_ps(c(1.0), exp8(_mm256_xor_ps(v, sign)))),
                Act::GeluErf => {
                    let z = _mm256_mul_ps(v, c(std::f32::consts::FRAC_1_SQRT_2));
                    let a = _mm256_andnot_ps(sign, z);
                    let t =
                        _mm256_div_ps(c(1.0), _mm256_add_ps(c(1.0), _mm256_mul_ps(c(ERF_P), a)));
                    let mut p = c(ERF_A[0]);
                    for &k in &ERF_A[1..] {
                        p = _mm256_add_ps(_mm256_mul_ps(p, t), c(k));
                    }
                    let neg_a2 = _mm256_xor_ps(_mm256_mul_ps(a, a), sign);
                    let e = _mm256_sub_ps(c(1.0), _mm256_mul_ps(_mm256_mul_ps(p, t), exp8(neg_a2)));
                    // -e where z < 0 (as the scalar `if z < 0.0`)
                    let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(z, _mm256_setzero_ps());
                    let erf = _mm256_blendv_ps(e, _mm256_xor_ps(e, sign), neg);
                    _mm256_mul_ps(_mm256_mul_ps(c(0.5), v), _mm256_add_ps(c(1.0), erf))
                }
            };
            _mm256_storeu_ps(out.as_mut_ptr().add(i), y);
        }
        n8
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn log_softmax_shift(scores: &[f32]) -> f32 {
        let n8 = scores.len() / 8 * 8;
        let ptr = scores.as_ptr();
        let mut m = c(f32::NEG_INFINITY);
        let mut nan = _mm256_setzero_ps();
        for i in (0..n8).step_by(8) {
            let x = _mm256_loadu_ps(ptr.add(i));
            m = _mm256_max_ps(m, x);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
        }
        let tail = &scores[n8..];
        if _mm256_movemask_ps(nan) != 0 || tail.iter().any(|x| x.is_nan()) {
            return f32::NAN;
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        // No NaN: the max does not depend on the order (and -0 vs +0 changes nothing below).
        let max = tail
            .iter()
            .chain(&lanes)
            .fold(f32::NEG_INFINITY, |a, &x| if x > a { x } else { a });
        if !max.is_finite() {
            return max;
        }
        let vmax = c(max);
        let mut acc = _mm256_setzero_ps();
        for i in (0..n8).step_by(8) {
            let x = _mm256_loadu_ps(ptr.add(i));
            acc = _mm256_add_ps(acc, exp8(_mm256_sub_ps(x, vmax)));
        }
        let mut sums = [0f32; 8];
        _mm256_storeu_ps(sums.as_mut_ptr(), acc);
        let tail: f32 = tail.iter().map(|&x| exp(x - max)).sum();
        let sum = sums.iter().sum::<f32>() + tail;
        max + sum.ln()
    }

    /// [`super::dot`] on 8 lanes: the same products, sums and reduction order.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let n8 = n / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        for i in (0..n8).step_by(8) {
            let p = _mm256_mul_ps(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
            );
            acc = _mm256_add_ps(acc, p);
        }
        // lanes (0+4, 1+5, 2+6, 3+7), then (c0 + c2, c1 + c3), then their sum
        let c = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let d = _mm_add_ps(c, _mm_movehl_ps(c, c));
        let r = _mm_add_ss(d, _mm_shuffle_ps::<0b01>(d, d));
        let tail: f32 = a[n8..n].iter().zip(&b[n8..n]).map(|(x, y)| x * y).sum();
        _mm_cvtss_f32(r) + tail
    }

    /// [`super::axpy`] on 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(p: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let n8 = n / 8 * 8;
        let pv = _mm256_set1_ps(p);
        for i in (0..n8).step_by(8) {
            let yp = y.as_mut_ptr().add(i);
            let v = _mm256_add_ps(
                _mm256_loadu_ps(yp),
                _mm256_mul_ps(pv, _mm256_loadu_ps(x.as_ptr().add(i))),
            );
            _mm256_storeu_ps(yp, v);
        }
        for (y, &x) in y[n8..n].iter_mut().zip(&x[n8..n]) {
            *y += p * x;
        }
    }

    /// `x = e^(x - max)` over whole blocks of 8, summed into `sums` by lane; returns how
    /// many elements were done.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_shifted(x: &mut [f32], max: f32, sums: &mut [f32; 8]) -> usize {
        let n8 = x.len() / 8 * 8;
        let vmax = c(max);
        let mut acc = _mm256_loadu_ps(sums.as_ptr());
        for i in (0..n8).step_by(8) {
            let p = x.as_mut_ptr().add(i);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), vmax));
            _mm256_storeu_ps(p, e);
            acc = _mm256_add_ps(acc, e);
        }
        _mm256_storeu_ps(sums.as_mut_ptr(), acc);
        n8
    }
}

/// Tests: `n` seeded pseudo-random values in [-scale, scale).
#[cfg(test)]
pub(crate) fn test_values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut st = seed;
    (0..n)
        .map(|_| {
            st = st
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((st >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        test_values(seed, n, scale)
    }

    /// [`softmax_in_place`]'s operations written out without AVX2: e^(x - max), whole blocks
    /// of 8 summed by lane, the tail apart, times 1 / sum.
    fn softmax_portable(x: &[f32]) -> Vec<f32> {
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut out: Vec<f32> = x.iter().map(|&v| exp(v - max)).collect();
        let n8 = x.len() / 8 * 8;
        let mut sums = [0f32; 8];
        for (i, &e) in out[..n8].iter().enumerate() {
            sums[i % 8] += e;
        }
        let inv = 1.0 / (sums.iter().sum::<f32>() + out[n8..].iter().sum::<f32>());
        out.iter_mut().for_each(|e| *e *= inv);
        out
    }

    /// Both paths bit-identical; within 1e-6 * max(1, |x|) of candle's kernels (libm's
    /// expf / erff), which they replace.
    #[test]
    fn activations_match_candle_and_the_portable_path() {
        use candle_core::{Device, Tensor};
        let mut x = rows(3, 4099, 12.0);
        x.extend([
            0.0, -0.0, 100.0, -100.0, 1e-8, -1e-8, 88.5, -88.5, 5.5, -5.5,
        ]);
        let t = Tensor::from_slice(&x, x.len(), &Device::Cpu).unwrap();
        for act in [Act::Silu, Act::GeluErf] {
            let fast = activation(&x, act);
            let reference = match act {
                Act::Silu => t.silu(),
                Act::GeluErf => t.gelu_erf(),
            }
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
            for (i, ((&x, &y), &want)) in x.iter().zip(&fast).zip(&reference).enumerate() {
                let portable = match act {
                    Act::Silu => silu1(x),
                    Act::GeluErf => gelu_erf1(x),
                };
                assert_eq!(y.to_bits(), portable.to_bits(), "{act:?} x[{i}] = {x}");
                let tol = 1e-6 * x.abs().max(1.0);
                assert!((y - want).abs() <= tol, "{act:?}({x}) = {y}, candle {want}");
            }
        }
    }

    #[test]
    fn softmax_rows_match_candle() {
        use candle_core::{Device, Tensor};
        for width in [1usize, 7, 8, 30, 512] {
            let x = rows(width as u64, 5 * width, 20.0);
            let got = softmax_rows(&x, width);
            let t = Tensor::from_slice(&x, (5, width), &Device::Cpu).unwrap();
            let want = candle_nn::ops::softmax_last_dim(&t)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.max(1e-3),
                    "width {width}: {a} vs {b}"
                );
            }
            // the portable path gives the same bits
            assert_eq!(
                &got[..width],
                &softmax_portable(&x[..width])[..],
                "width {width}"
            );
        }
    }

    #[test]
    fn norm_rows_match_the_formula_in_f64() {
        let d = 37;
        let x: Vec<f32> = rows(9, 4 * d, 3.0).iter().map(|v| v + 5.0).collect();
        let w = rows(10, d, 1.0);
        let b = rows(11, d, 1.0);
        for bias in [Some(&b[..]), None] {
            let got = norm_rows(&x, d, &w, bias, 1e-5);
            for (r, row) in x.chunks(d).enumerate() {
                let n = d as f64;
                let mean = if bias.is_some() {
                    row.iter().map(|&v| v as f64).sum::<f64>() / n
                } else {
                    0.0
                };
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                for j in 0..d {
                    let want = (row[j] as f64 - mean) / (var + 1e-5).sqrt() * w[j] as f64
                        + bias.map_or(0.0, |b| b[j] as f64);
                    let g = got[r * d + j] as f64;
                    assert!(
                        (g - want).abs() < 2e-6 * want.abs().max(1.0),
                        "{g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn log_softmax_shift_paths_are_bit_identical() {
        const NEG: f32 = f32::NEG_INFINITY;
        for len in [1usize, 7, 8, 9, 15, 16, 17, 100, 1003, 53_685] {
            for case in 0..6 {
                let mut row = rows(len as u64 * 31 + case, len, 30.0);
                match case {
                    1 => row.iter_mut().step_by(3).for_each(|x| *x = NEG),
                    2 => row.iter_mut().for_each(|x| *x = (*x * 4.0).round() / 4.0), // ties
                    3 => row[len / 2] = f32::NAN,
                    4 => row[len - 1] = f32::INFINITY,
                    5 => row
                        .iter_mut()
                        .for_each(|x| *x = if *x > 0.0 { 0.0 } else { -0.0 }),
                    _ => {}
                }
                let (a, b) = (log_softmax_shift(&row), log_softmax_shift_portable(&row));
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "len {len} case {case}: {a} vs {b}"
                );
                if case == 0 {
                    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                    let s: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
                    assert!((a as f64 - (m + s.ln())).abs() < 1e-5 * (1.0 + m.abs()));
                }
            }
        }
        assert_eq!(log_softmax_shift(&[NEG; 20]), NEG);
    }

    #[test]
    fn dot_axpy_softmax() {
        let a = rows(5, 64, 1.0);
        let b = rows(6, 64, 1.0);
        let want: f64 = a.iter().zip(&b).map(|(x, y)| (x * y) as f64).sum();
        assert!((dot(&a, &b) as f64 - want).abs() < 1e-5);
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            for len in [64, 63, 8, 5] {
                let (x, y) = (&a[..len], &b[..len]);
                // SAFETY: AVX2 is present.
                assert_eq!(dot(x, y).to_bits(), unsafe { avx2::dot(x, y) }.to_bits());
                let (mut y1, mut y2) = (y.to_vec(), y.to_vec());
                axpy(0.3, x, &mut y1);
                // SAFETY: AVX2 is present.
                unsafe { avx2::axpy(0.3, x, &mut y2) };
                assert_eq!(y1, y2);
            }
        }
        let (a7, b7) = (&a[..63], &b[..63]);
        let want7: f64 = a7.iter().zip(b7).map(|(x, y)| (x * y) as f64).sum();
        assert!((dot(a7, b7) as f64 - want7).abs() < 1e-5);
        let mut y = b.clone();
        axpy(0.5, &a, &mut y);
        for ((y, a), b) in y.iter().zip(&a).zip(&b) {
            assert_eq!(*y, b + 0.5 * a);
        }
        // softmax: the AVX2 blocks give what the portable loop gives, bit for bit
        for len in [1usize, 7, 8, 9, 37, 512] {
            let x = rows(7 + len as u64, len, 5.0);
            let mut got = x.clone();
            softmax_in_place(&mut got);
            assert_eq!(got, softmax_portable(&x), "len {len}");
            assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }
}
