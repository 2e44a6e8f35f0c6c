//! Int8 linear layers for `--quantize q8`.
//!
//! Weights `[n, k]` are quantized once, symmetric per output row (`scale = max|w| / 127`).
//! Activations are quantized per row (token) at run time the same way, then shifted to u8
//! (`+128`) so that AVX-512 VNNI's `vpdpbusd` (u8 x i8, exact i32 sums) applies; the shift is
//! undone with `128 * rowsum(w_q)`. `y = x_scale * w_scale * (acc - 128 * rowsum) + bias`.
//!
//! Kernels: AVX-512 VNNI, AVX-VNNI (the same `vpdpbusd` on 256-bit registers), AVX2
//! (`vpmaddubsw` on |w| and sign-applied *signed* activations, which cannot saturate) and
//! scalar, all on one packed layout and all exact: every path returns the
//! same bits. The GEMM is register-blocked (`MR` rows x `PANEL` columns per tile, weights
//! packed per panel as `[k/4][PANEL][4]`, activations per row block as `[k/4][MR][4]`) and
//! split over output panels with rayon when the current pool has more than one thread.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::SendPtr;
use super::{KernelError, Result};

/// Rows per register tile.
const MR: usize = 8;
/// 16-lane i32 vectors per register tile.
const NR: usize = 3;
/// Output columns per packed weight panel (= register tile width).
const PANEL: usize = NR * 16;
/// Bytes of packed weight per column block where the L2 size is unknown (3/8 of a 1 MiB L2).
const NC_BYTES: usize = 384 << 10;
/// Below this many multiply-adds a GEMM runs on the calling thread (rayon is not worth it).
const PAR_MIN_MACS: usize = 1 << 22;
/// `255 * 127 * k` must fit an i32 accumulator.
const MAX_K: usize = (i32::MAX as usize) / (255 * 127);

/// Which GEMM implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Scalar,
    /// `vpmaddubsw` on |w| and sign-applied signed activations (AVX2 without VNNI).
    Avx2,
    /// `vpdpbusd` on 256-bit registers (AVX-VNNI).
    AvxVnni,
    /// `vpdpbusd` on 512-bit registers (AVX-512 VNNI).
    Avx512Vnni,
}

impl Kernel {
    const ALL: [Kernel; 4] = [
        Kernel::Scalar,
        Kernel::Avx2,
        Kernel::AvxVnni,
        Kernel::Avx512Vnni,
    ];

    /// The fastest kernel the CPU features in use allow ([`super::cpu::features`]: the
    /// CPU's, capped by `TOMTAT_CPU_ISA`).
    pub fn detect() -> Kernel {
        let f = super::cpu::features();
        Self::ALL
            .into_iter()
            .rfind(|k| k.runs_on(f))
            .unwrap_or(Kernel::Scalar)
    }

    /// Every kernel this CPU can run, slowest first (whatever the environment caps).
    pub fn available() -> Vec<Kernel> {
        Self::ALL.into_iter().filter(|k| k.is_available()).collect()
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        self.runs_on(super::cpu::Features::detect())
    }

    fn runs_on(self, f: super::cpu::Features) -> bool {
        match self {
            Kernel::Scalar => true,
            _ if cfg!(not(target_arch = "x86_64")) => false,
            Kernel::Avx2 => f.avx2_fma,
            Kernel::AvxVnni => f.avx_vnni,
            Kernel::Avx512Vnni => f.avx512_vnni,
        }
    }

    /// Whether the kernel takes activations as signed `q` (AVX2) rather than `q + 128`.
    pub const fn signed_activations(self) -> bool {
        matches!(self, Kernel::Avx2)
    }

    /// The name `tomtat bench` prints.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "AVX2",
            Kernel::AvxVnni => "AVX-VNNI",
            Kernel::Avx512Vnni => "AVX-512 VNNI",
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Packed int8 weight with everything the GEMM epilogue needs. Arrays indexed by output
/// column are padded to a whole number of panels (zeros).
struct Packed {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of 4 (padding weights are 0).
    kp: usize,
    /// `[n_pad / PANEL][kp / 4][PANEL][4]`.
    data: Vec<i8>,
    scale: Vec<f32>,
    /// `128 * sum_k w_q[n, k]`.
    comp: Vec<i32>,
    /// Zeros when the layer has no bias.
    bias: Vec<f32>,
}

/// An int8 linear layer `y = x W^T + b` (`W`: `[n_out, k]`). Cheap to clone.
#[derive(Clone)]
pub struct QLinear {
    w: Arc<Packed>,
    has_bias: bool,
    kernel: Kernel,
}

impl std::fmt::Debug for QLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QLinear")
            .field("n_out", &self.w.n)
            .field("k", &self.w.k)
            .field("bias", &self.has_bias)
            .field("kernel", &self.kernel)
            .finish()
    }
}

/// Round to nearest, ties to even, for |v| < 2^22 (quantized values are within ±128): adding
/// and removing 1.5 * 2^23 does it in the default rounding mode, without a libm call.
#[inline(always)]
fn rne(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// Bytes of packed weight per column block: 3/8 of the core's L2, which holds the block while
/// every row tile of the activations passes over it (the rest of L2 takes the activations,
/// the output rows and what the prefetcher brings in).
fn nc_bytes() -> usize {
    super::gemm::l2_bytes().map_or(NC_BYTES, |l2| l2 / 8 * 3)
}

fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// Symmetric quantization of one row: `round_ties_even(v * 127 / max|v|)`; returns the scale.
fn quantize_row_i8(row: &[f32], out: &mut [i8]) -> f32 {
    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax.is_nan() || amax <= 0.0 || amax.is_infinite() {
        out.iter_mut().for_each(|o| *o = 0);
        return if amax.is_finite() { 0.0 } else { f32::NAN };
    }
    let inv = 127.0 / amax;
    for (o, v) in out.iter_mut().zip(row) {
        *o = rne(v * inv).clamp(-127.0, 127.0) as i8;
    }
    amax / 127.0
}

/// Activation row -> u8 (`q + 128`) into `out[..k]`; returns the scale. Scalar reference of
/// [`x86::quantize_row_u8_avx512`] (bit-identical for finite input).
fn quantize_row_u8_scalar(row: &[f32], out: &mut [u8]) -> f32 {
    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    let Some(inv) = row_inv_scale(amax, out) else {
        return 0.0;
    };
    quantize_u8_into(row, out, inv);
    amax / 127.0
}

/// `127 / amax` for a row whose largest magnitude is `amax`; `None` for a zero or NaN row,
/// whose `out` is then all 128 (q = 0, scale 0). Shared by every activation quantizer.
#[inline(always)]
fn row_inv_scale(amax: f32, out: &mut [u8]) -> Option<f32> {
    if amax.is_nan() || amax <= 0.0 {
        out.iter_mut().for_each(|o| *o = 128);
        return None;
    }
    Some(127.0 / amax)
}

/// `q + 128` of each value (the scalar step; the SIMD quantizers' tails).
#[inline(always)]
fn quantize_u8_into(row: &[f32], out: &mut [u8], inv: f32) {
    for (o, v) in out.iter_mut().zip(row) {
        *o = (rne(v * inv).clamp(-127.0, 127.0) as i32 + 128) as u8;
    }
}

impl Packed {
    #[cfg(test)]
    fn new(w: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Self {
        Self::from_fn(n, k, bias, |i, out| out.copy_from_slice(&w[i * k..][..k]))
    }

    /// Quantize rows `row(i, out)` writes (f32, length k) straight into the panel layout,
    /// one panel per rayon task: no full-size temporary besides the result.
    fn from_fn(
        n: usize,
        k: usize,
        bias: Option<&[f32]>,
        row: impl Fn(usize, &mut [f32]) + Sync,
    ) -> Self {
        let kp = round_up(k, 4);
        let n_pad = round_up(n, PANEL);
        let mut data = vec![0i8; n_pad * kp];
        let mut scale = vec![0f32; n_pad];
        let mut comp = vec![0i32; n_pad];
        let mut bias_p = vec![0f32; n_pad];
        if let Some(b) = bias {
            bias_p[..n].copy_from_slice(b);
        }
        data.par_chunks_mut(kp * PANEL)
            .zip(scale.par_chunks_mut(PANEL))
            .zip(comp.par_chunks_mut(PANEL))
            .enumerate()
            .for_each(|(p, ((panel, scale), comp))| {
                let mut f = vec![0f32; k];
                let mut q = vec![0i8; k];
                for cc in 0..PANEL.min(n.saturating_sub(p * PANEL)) {
                    row(p * PANEL + cc, &mut f);
                    scale[cc] = quantize_row_i8(&f, &mut q);
                    comp[cc] = 128 * q.iter().map(|&v| v as i32).sum::<i32>();
                    for (kk, &v) in q.iter().enumerate() {
                        panel[(kk / 4) * 4 * PANEL + cc * 4 + kk % 4] = v;
                    }
                }
            });
        Packed {
            n,
            k,
            kp,
            data,
            scale,
            comp,
            bias: bias_p,
        }
    }

    /// `out[m, n] = epilogue(a_packed x W^T)`. `a`: activations packed per MR-row block as
    /// `[kp/4][MR][4]` (`m` rounded up to MR rows); `sx`: `[m]` activation scales.
    #[cfg(test)]
    fn gemm(&self, kernel: Kernel, a: &[u8], sx: &[f32], m: usize, out: &mut [f32]) {
        assert!(out.len() >= m * self.n);
        // SAFETY: `out` holds the `m x n` output.
        unsafe { self.gemm_uninit(kernel, a, sx, m, out.as_mut_ptr()) }
    }

    /// [`Self::gemm`] into possibly uninitialized memory.
    ///
    /// # Safety
    /// `out` must be valid for writes of `m * n` f32.
    unsafe fn gemm_uninit(&self, kernel: Kernel, a: &[u8], sx: &[f32], m: usize, out: *mut f32) {
        assert!(sx.len() >= m && a.len() >= round_up(m, MR) * self.kp);
        assert!(
            kernel.is_available(),
            "int8 kernel {kernel:?} not supported by this CPU"
        );
        let panels = self.data.len() / (self.kp * PANEL).max(1);
        let threads = rayon::current_num_threads();
        let out_ptr = SendPtr(out);
        if threads > 1 && panels > 1 && m * self.n * self.kp >= PAR_MIN_MACS {
            // A few chunks per thread for balance; each writes a disjoint set of columns.
            let chunks = (threads * 4).min(panels);
            let per = panels.div_ceil(chunks);
            (0..panels.div_ceil(per)).into_par_iter().for_each(|c| {
                let p0 = c * per;
                let p1 = (p0 + per).min(panels);
                let out_ptr = &out_ptr;
                // SAFETY: bounds asserted above; panels of different chunks write disjoint
                // columns of `out`.
                unsafe { self.gemm_panels(kernel, a, sx, m, p0, p1, out_ptr.get()) }
            });
        } else {
            // SAFETY: as above, one chunk.
            unsafe { self.gemm_panels(kernel, a, sx, m, 0, panels, out_ptr.get()) }
        }
    }

    /// Panels `p0..p1` for all `m` rows. Caller guarantees the buffer sizes of [`Self::gemm`]
    /// and that `kernel` is supported.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_panels(
        &self,
        kernel: Kernel,
        a: &[u8],
        sx: &[f32],
        m: usize,
        p0: usize,
        p1: usize,
        out: *mut f32,
    ) {
        let kg = self.kp / 4;
        // Column blocks of the weight small enough to stay in L2 while every row block of
        // the activations passes over them; within a block, a row block sweeps the panels
        // left to right, so output rows are written contiguously (few TLB misses on wide
        // outputs such as the vocabulary projection).
        let nc = (nc_bytes() / (self.kp * PANEL)).max(1);
        for q0 in (p0..p1).step_by(nc) {
            let q1 = (q0 + nc).min(p1);
            for m0 in (0..m).step_by(MR) {
                let rows = (m - m0).min(MR);
                let ap = a.as_ptr().add((m0 / MR) * kg * 4 * MR);
                let s = sx.as_ptr().add(m0);
                for p in q0..q1 {
                    let col0 = p * PANEL;
                    let t = Tile {
                        b: self.data.as_ptr().add(p * kg * 4 * PANEL),
                        kg,
                        scale: self.scale.as_ptr().add(col0),
                        comp: self.comp.as_ptr().add(col0),
                        bias: self.bias.as_ptr().add(col0),
                        ncols: (self.n - col0).min(PANEL),
                        ld: self.n,
                    };
                    let o = out.add(m0 * self.n + col0);
                    match kernel {
                        Kernel::Scalar => tile_scalar(&t, ap, s, o, rows),
                        #[cfg(target_arch = "x86_64")]
                        Kernel::Avx2 => x86::tile_avx2(&t, ap, s, o, rows),
                        #[cfg(target_arch = "x86_64")]
                        Kernel::AvxVnni => x86::tile_avx_vnni(&t, ap, s, o, rows),
                        #[cfg(target_arch = "x86_64")]
                        Kernel::Avx512Vnni => x86::tile_vnni(&t, ap, s, o, rows),
                        #[cfg(not(target_arch = "x86_64"))]
                        _ => tile_scalar(&t, ap, s, o, rows),
                    }
                }
            }
        }
    }
}

/// One weight panel and its epilogue vectors.
struct Tile {
    b: *const i8,
    kg: usize,
    scale: *const f32,
    comp: *const i32,
    bias: *const f32,
    /// Valid output columns in this panel (<= PANEL).
    ncols: usize,
    /// Output row stride.
    ld: usize,
}

/// Reference tile: `rows` rows x `t.ncols` columns.
unsafe fn tile_scalar(t: &Tile, a: *const u8, sx: *const f32, out: *mut f32, rows: usize) {
    for i in 0..rows {
        for c in 0..t.ncols {
            let mut acc = 0i32;
            for g in 0..t.kg {
                let ap = a.add(g * 4 * MR + 4 * i);
                let bp = t.b.add(g * 4 * PANEL + 4 * c);
                for q in 0..4 {
                    acc += *ap.add(q) as i32 * *bp.add(q) as i32;
                }
            }
            *out.add(i * t.ld + c) =
                epilogue(acc, *t.comp.add(c), *sx.add(i), *t.scale.add(c)) + *t.bias.add(c);
        }
    }
}

/// Dequantization, in the operation order every SIMD path uses (no FMA: bit-identical).
#[inline(always)]
fn epilogue(acc: i32, comp: i32, sx: f32, sw: f32) -> f32 {
    (acc.wrapping_sub(comp) as f32 * sx) * sw
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{quantize_u8_into, row_inv_scale, Tile, MR, NR, PANEL};
    use std::arch::x86_64::*;

    /// Dispatch on the row count so the tile is fully unrolled for each.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile_vnni(t: &Tile, a: *const u8, sx: *const f32, o: *mut f32, r: usize) {
        match r {
            8 => vnni::<8>(t, a, sx, o),
            7 => vnni::<7>(t, a, sx, o),
            6 => vnni::<6>(t, a, sx, o),
            5 => vnni::<5>(t, a, sx, o),
            4 => vnni::<4>(t, a, sx, o),
            3 => vnni::<3>(t, a, sx, o),
            2 => vnni::<2>(t, a, sx, o),
            _ => vnni::<1>(t, a, sx, o),
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn vnni<const R: usize>(t: &Tile, a: *const u8, sx: *const f32, out: *mut f32) {
        let mut acc = [[_mm512_setzero_si512(); NR]; R];
        let mut ap = a;
        let mut bp = t.b;
        for _ in 0..t.kg {
            let mut bv = [_mm512_setzero_si512(); NR];
            for (j, b) in bv.iter_mut().enumerate() {
                *b = _mm512_loadu_si512(bp.add(64 * j) as *const _);
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_epi32((ap.add(4 * i) as *const i32).read_unaligned());
                for (c, b) in row.iter_mut().zip(&bv) {
                    *c = _mm512_dpbusd_epi32(*c, av, *b);
                }
            }
            ap = ap.add(4 * MR);
            bp = bp.add(4 * PANEL);
        }
        for j in 0..NR {
            let c0 = 16 * j;
            if c0 >= t.ncols {
                break;
            }
            let valid = (t.ncols - c0).min(16);
            let mask: __mmask16 = if valid == 16 {
                0xffff
            } else {
                (1u16 << valid) - 1
            };
            let cv = _mm512_loadu_si512(t.comp.add(c0) as *const _);
            let sv = _mm512_loadu_ps(t.scale.add(c0));
            let bv = _mm512_loadu_ps(t.bias.add(c0));
            for (i, row) in acc.iter().enumerate() {
                let d = _mm512_cvtepi32_ps(_mm512_sub_epi32(row[j], cv));
                let y = _mm512_mul_ps(_mm512_mul_ps(d, _mm512_set1_ps(*sx.add(i))), sv);
                _mm512_mask_storeu_ps(out.add(i * t.ld + c0), mask, _mm512_add_ps(y, bv));
            }
        }
    }

    /// AVX-VNNI: rows `R` (up to 4) x the 24 columns of half `half` of the panel, 12
    /// accumulators + 3 weight vectors + 1 broadcast = the 16 ymm registers.
    #[target_feature(enable = "avx2,avxvnni")]
    #[inline]
    unsafe fn avx_vnni<const R: usize>(
        t: &Tile,
        a: *const u8,
        sx: *const f32,
        out: *mut f32,
        half: usize,
    ) {
        let mut acc = [[_mm256_setzero_si256(); 3]; R];
        let mut ap = a;
        let mut bp = t.b.add(96 * half);
        for _ in 0..t.kg {
            let mut bv = [_mm256_setzero_si256(); 3];
            for (j, b) in bv.iter_mut().enumerate() {
                *b = _mm256_loadu_si256(bp.add(32 * j) as *const _);
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_epi32((ap.add(4 * i) as *const i32).read_unaligned());
                for (c, b) in row.iter_mut().zip(&bv) {
                    *c = _mm256_dpbusd_avx_epi32(*c, av, *b);
                }
            }
            ap = ap.add(4 * MR);
            bp = bp.add(4 * PANEL);
        }
        store_tile(t, &acc, true, 24 * half, sx, out);
    }

    /// Dequantize 256-bit accumulators (`acc[row][j]`: columns `c0 + 8j ..`, one per lane)
    /// and store the valid columns; `comp`: subtract `128 * rowsum` (u8 activations).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store_tile<const R: usize, const N: usize>(
        t: &Tile,
        acc: &[[__m256i; N]; R],
        comp: bool,
        c0: usize,
        sx: *const f32,
        out: *mut f32,
    ) {
        for j in 0..N {
            let c = c0 + 8 * j;
            if c >= t.ncols {
                break;
            }
            let cv = match comp {
                true => _mm256_loadu_si256(t.comp.add(c) as *const _),
                false => _mm256_setzero_si256(),
            };
            let sv = _mm256_loadu_ps(t.scale.add(c));
            let bv = _mm256_loadu_ps(t.bias.add(c));
            for (i, row) in acc.iter().enumerate() {
                let d = _mm256_cvtepi32_ps(_mm256_sub_epi32(row[j], cv));
                let y = _mm256_mul_ps(_mm256_mul_ps(d, _mm256_set1_ps(*sx.add(i))), sv);
                store8(out.add(i * t.ld + c), _mm256_add_ps(y, bv), t.ncols - c);
            }
        }
    }

    /// A tile entry point: the block's rows in groups of up to 4, over the panel's column
    /// groups of `$cols`, each by `$tile::<rows>`.
    macro_rules! row_groups {
        ($name:ident, $tile:ident, $cols:expr, $features:literal) => {
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(
                t: &Tile,
                a: *const u8,
                sx: *const f32,
                o: *mut f32,
                r: usize,
            ) {
                for i in (0..r).step_by(4) {
                    for g in 0..PANEL / $cols {
                        if $cols * g >= t.ncols {
                            break;
                        }
                        let (a, sx, o) = (a.add(4 * i), sx.add(i), o.add(i * t.ld));
                        match r - i {
                            1 => $tile::<1>(t, a, sx, o, g),
                            2 => $tile::<2>(t, a, sx, o, g),
                            3 => $tile::<3>(t, a, sx, o, g),
                            _ => $tile::<4>(t, a, sx, o, g),
                        }
                    }
                }
            }
        };
    }

    row_groups!(tile_avx_vnni, avx_vnni, 24, "avx2,avxvnni");
    row_groups!(tile_avx2, avx2, 16, "avx2");

    /// The first `valid` (any number; 8 or more = all) lanes of `y` to `dst`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store8(dst: *mut f32, y: __m256, valid: usize) {
        if valid >= 8 {
            _mm256_storeu_ps(dst, y);
        } else {
            let mut tmp = [0f32; 8];
            _mm256_storeu_ps(tmp.as_mut_ptr(), y);
            std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, valid);
        }
    }

    /// AVX2 without VNNI: rows `R` (up to 4) x the 16 columns of group `q` of the panel
    /// (8 accumulators, 2 weight vectors
    /// and their absolute values, a broadcast and 2 temporaries: 15 of 16 ymm registers).
    /// Activations come signed (`q`, not `q + 128`): `vpmaddubsw(|w|, sign(q, w))` sums
    /// pairs of products of magnitude <= 127 * 127, so its 16-bit sums cannot saturate
    /// (u8 x i8 with `q + 128` up to 255 could), and `vpmaddwd` by 1 widens them exactly.
    /// No `128 * rowsum` compensation then: the sums are already `sum q * w`. Needs
    /// q != -128 (`vpsignb` cannot negate it), which quantization to +-127 guarantees.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn avx2<const R: usize>(
        t: &Tile,
        a: *const u8,
        sx: *const f32,
        out: *mut f32,
        q: usize,
    ) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        let mut ap = a;
        let mut bp = t.b.add(64 * q);
        for _ in 0..t.kg {
            let w = [
                _mm256_loadu_si256(bp as *const _),
                _mm256_loadu_si256(bp.add(32) as *const _),
            ];
            let wabs = [_mm256_abs_epi8(w[0]), _mm256_abs_epi8(w[1])];
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_epi32((ap.add(4 * i) as *const i32).read_unaligned());
                for j in 0..2 {
                    let p = _mm256_maddubs_epi16(wabs[j], _mm256_sign_epi8(av, w[j]));
                    row[j] = _mm256_add_epi32(row[j], _mm256_madd_epi16(p, ones));
                }
            }
            ap = ap.add(4 * MR);
            bp = bp.add(4 * PANEL);
        }
        store_tile(t, &acc, false, 16 * q, sx, out);
    }

    /// [`super::quantize_row_u8_scalar`] with AVX2 (cvtps rounds ties to even as well;
    /// bit-identical for finite input).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_row_u8_avx2(row: &[f32], out: &mut [u8]) -> f32 {
        let k = row.len();
        let full = k / 32 * 32;
        let p = row.as_ptr();
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let mut vmax = _mm256_setzero_ps();
        for c in (0..k / 8 * 8).step_by(8) {
            // NaN as the first operand yields the second: NaNs are skipped, as f32::max does
            vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(p.add(c)), abs), vmax);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), vmax);
        let mut amax = lanes.iter().fold(0f32, |m, &v| m.max(v));
        for v in &row[k / 8 * 8..] {
            amax = amax.max(v.abs());
        }
        let Some(inv) = row_inv_scale(amax, &mut out[..k]) else {
            return 0.0;
        };
        let invv = _mm256_set1_ps(inv);
        let (lo, hi, off) = (
            _mm256_set1_epi32(-127),
            _mm256_set1_epi32(127),
            _mm256_set1_epi32(128),
        );
        let q8 = |c: usize| {
            let q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p.add(c)), invv));
            _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(q, lo), hi), off)
        };
        // packs interleave 128-bit lanes: [a0-3 b0-3 c0-3 d0-3 a4-7 b4-7 c4-7 d4-7] in dwords
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for c in (0..full).step_by(32) {
            let ab = _mm256_packs_epi32(q8(c), q8(c + 8));
            let cd = _mm256_packs_epi32(q8(c + 16), q8(c + 24));
            let bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), order);
            _mm256_storeu_si256(out.as_mut_ptr().add(c) as *mut _, bytes);
        }
        quantize_u8_into(&row[full..], &mut out[full..k], inv);
        amax / 127.0
    }

    /// [`super::quantize_row_u8_scalar`] with AVX-512 (cvtps rounds ties to even as well).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_row_u8_avx512(row: &[f32], out: &mut [u8]) -> f32 {
        let k = row.len();
        let full = k / 16 * 16;
        let p = row.as_ptr();
        let mut vmax = _mm512_setzero_ps();
        for c in (0..full).step_by(16) {
            vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(p.add(c))));
        }
        let mut amax = _mm512_reduce_max_ps(vmax);
        for v in &row[full..] {
            amax = amax.max(v.abs());
        }
        let Some(inv) = row_inv_scale(amax, &mut out[..k]) else {
            return 0.0;
        };
        let invv = _mm512_set1_ps(inv);
        let (lo, hi, off) = (
            _mm512_set1_epi32(-127),
            _mm512_set1_epi32(127),
            _mm512_set1_epi32(128),
        );
        for c in (0..full).step_by(16) {
            let q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p.add(c)), invv));
            let q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), off);
            _mm_storeu_si128(out.as_mut_ptr().add(c) as *mut _, _mm512_cvtepi32_epi8(q));
        }
        quantize_u8_into(&row[full..], &mut out[full..k], inv);
        amax / 127.0
    }
}

/// Quantize `m` rows of `x` (`[m, k]` row-major) into the packed activation layout.
fn quantize_activations(x: &[f32], m: usize, k: usize, kernel: Kernel) -> (Vec<u8>, Vec<f32>) {
    let kp = round_up(k, 4);
    let kg = kp / 4;
    let mut a = vec![128u8; round_up(m, MR) * kp];
    let mut sx = vec![0f32; m];
    let mut row_q = vec![128u8; kp];
    for (r, row) in x.chunks_exact(k).take(m).enumerate() {
        sx[r] = match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the VNNI kernel is only selected when AVX-512 F/BW are present.
            Kernel::Avx512Vnni => unsafe { x86::quantize_row_u8_avx512(row, &mut row_q) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both kernels are only selected on CPUs with AVX2.
            Kernel::Avx2 | Kernel::AvxVnni => unsafe { x86::quantize_row_u8_avx2(row, &mut row_q) },
            _ => quantize_row_u8_scalar(row, &mut row_q),
        };
        if kernel.signed_activations() {
            // q + 128 with the top bit flipped is q as i8
            row_q[..k].iter_mut().for_each(|v| *v ^= 0x80);
            row_q[k..].iter_mut().for_each(|v| *v = 0);
        }
        let base = (r / MR) * kg * 4 * MR + (r % MR) * 4;
        for (g, q4) in row_q.chunks_exact(4).enumerate() {
            a[base + g * 4 * MR..][..4].copy_from_slice(q4);
        }
    }
    (a, sx)
}

impl QLinear {
    /// Quantize a row-major `[n, k]` weight with an optional `[n]` bias.
    pub fn from_rows(w: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Result<Self> {
        if w.len() != n * k {
            return Err(KernelError::Weights(format!(
                "int8 linear: {} weight values for shape [{n}, {k}]",
                w.len()
            )));
        }
        Self::from_fn(n, k, bias, |i, out| out.copy_from_slice(&w[i * k..][..k]))
    }

    /// Quantize the `[n, k]` weight whose row `i` `row(i, out)` writes into `out` (length
    /// `k`), with an optional `[n]` bias.
    pub fn from_fn(
        n: usize,
        k: usize,
        bias: Option<&[f32]>,
        row: impl Fn(usize, &mut [f32]) + Sync,
    ) -> Result<Self> {
        if n == 0 || k == 0 || k > MAX_K {
            return Err(KernelError::Weights(format!(
                "int8 linear: unsupported weight shape [{n}, {k}] (k must be 1..={MAX_K})"
            )));
        }
        if let Some(b) = bias {
            if b.len() != n {
                return Err(KernelError::Weights(format!(
                    "int8 linear: bias of {} values does not match {n} outputs",
                    b.len()
                )));
            }
        }
        Ok(QLinear {
            w: Arc::new(Packed::from_fn(n, k, bias, row)),
            has_bias: bias.is_some(),
            kernel: Kernel::detect(),
        })
    }

    /// Quantize `weight` (`[n_out, k]`, f32) with an optional `bias` (`[n_out]`).
    pub fn quantize(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let (n, k) = weight.dims2().map_err(|e| {
            KernelError::Weights(format!("int8 linear: weight must be [n_out, k]: {e}"))
        })?;
        if n == 0 || k == 0 || k > MAX_K {
            return Err(KernelError::Weights(format!(
                "int8 linear: unsupported weight shape [{n}, {k}] (k must be 1..={MAX_K})"
            )));
        }
        let w: Vec<f32> = weight
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_device(&candle_core::Device::Cpu)?
            .to_vec1()?;
        let b: Option<Vec<f32>> = match bias {
            Some(b) => {
                if b.dims() != [n] {
                    return Err(KernelError::Weights(format!(
                        "int8 linear: bias shape {:?} does not match {n} outputs",
                        b.dims()
                    )));
                }
                Some(
                    b.to_dtype(DType::F32)?
                        .to_device(&candle_core::Device::Cpu)?
                        .to_vec1()?,
                )
            }
            None => None,
        };
        Self::from_rows(&w, n, k, b.as_deref())
    }

    /// Row `i` (< n) of the weight as the kernel sees it (int8 x row scale), into `out` (k).
    /// Tied embeddings of a q8 model read their rows here, as CTranslate2's int8 models do.
    pub fn dequantized_row_into(&self, i: usize, out: &mut [f32]) {
        let w = &self.w;
        let (p, cc) = (i / PANEL, i % PANEL);
        let base = p * w.kp * PANEL;
        let scale = w.scale[i];
        for (kk, o) in out.iter_mut().enumerate().take(w.k) {
            *o = w.data[base + (kk / 4) * 4 * PANEL + cc * 4 + kk % 4] as f32 * scale;
        }
    }

    pub fn out_features(&self) -> usize {
        self.w.n
    }

    pub fn in_features(&self) -> usize {
        self.w.k
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The same layer running `kernel` (errors if this CPU lacks it).
    pub fn with_kernel(&self, kernel: Kernel) -> Result<Self> {
        if !kernel.is_available() {
            return Err(KernelError::Input(format!(
                "int8 kernel {kernel:?} is not supported by this CPU"
            )));
        }
        Ok(QLinear {
            kernel,
            ..self.clone()
        })
    }

    /// `x`: `[.., k]` f32 on the CPU -> `[.., n_out]` f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() {
            return Err(KernelError::Input(format!(
                "int8 linear runs on the CPU only, got a tensor on {:?}",
                x.device()
            )));
        }
        if x.dtype() != DType::F32 {
            return Err(KernelError::Input(format!(
                "int8 linear expects f32 input, got {:?}",
                x.dtype()
            )));
        }
        match x.dims().last() {
            Some(&k) if k == self.w.k => {}
            _ => {
                return Err(KernelError::Input(format!(
                    "int8 linear: input shape {:?} does not end in k = {}",
                    x.dims(),
                    self.w.k
                )))
            }
        }
        Ok(x.contiguous()?.apply_op1_no_bwd(self)?)
    }

    /// `x`: `[m, k]` row-major -> `[m, n_out]` row-major.
    pub fn forward_slice(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (k, n) = (self.w.k, self.w.n);
        assert!(x.len() >= m * k);
        let (a, sx) = quantize_activations(x, m, k, self.kernel);
        let mut out = Vec::with_capacity(m * n);
        // SAFETY: `gemm` writes every element of the `m x n` output (each panel's valid
        // columns of every row) before anything reads it; f32 has no invalid bit patterns.
        #[allow(clippy::uninit_vec)]
        unsafe {
            self.w.gemm_uninit(
                self.kernel,
                &a,
                &sx,
                m,
                out.spare_capacity_mut().as_mut_ptr() as *mut f32,
            );
            out.set_len(m * n);
        }
        out
    }
}

impl CustomOp1 for QLinear {
    fn name(&self) -> &'static str {
        "qlinear-int8"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let data = match storage {
            CpuStorage::F32(v) => v.as_slice(),
            _ => candle_core::bail!("qlinear-int8: expected f32 input"),
        };
        let dims = layout.shape().dims();
        let k = self.w.k;
        if dims.last() != Some(&k) {
            candle_core::bail!("qlinear-int8: input shape {dims:?} does not end in k = {k}");
        }
        let count = layout.shape().elem_count();
        let m = count / k;
        // `forward` makes the input contiguous (free when it already is).
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("qlinear-int8: input must be contiguous");
        };
        let x = &data[start..end];
        let out = self.forward_slice(x, m);
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.w.n;
        }
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod row_tests {
    use super::*;

    #[test]
    fn dequantized_rows_are_close_to_the_weight() {
        let (n, k) = (70, 37);
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0)
            .collect();
        let q = QLinear::from_rows(&w, n, k, None).unwrap();
        let mut row = vec![0f32; k];
        for i in [0, 1, 33, 69] {
            q.dequantized_row_into(i, &mut row);
            let max = w[i * k..(i + 1) * k]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            for (a, b) in row.iter().zip(&w[i * k..(i + 1) * k]) {
                assert!(
                    (a - b).abs() <= max / 127.0 * 0.51 + 1e-6,
                    "row {i}: {a} vs {b}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Deterministic pseudo-random numbers (SplitMix64).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn f32(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// Integer GEMM through the packed layouts with unit scales and no bias: outputs are
    /// the exact i32 dot products (they stay below 2^24, so the f32 is exact too).
    #[test]
    fn kernels_exact_on_odd_shapes() {
        let mut rng = Rng(7);
        for &m in &[1usize, 3, 8, 33] {
            for &k in &[64usize, 512, 513] {
                for &n in &[1usize, 17, 48, 1000] {
                    let wq: Vec<i8> = (0..n * k).map(|_| (rng.next() % 255) as i8).collect();
                    let wq: Vec<i8> = wq.iter().map(|&v| v.max(-127)).collect();
                    // q + 128 for q in -127..=127, as quantization makes them
                    let au: Vec<u8> = (0..m * k).map(|_| (rng.next() % 255 + 1) as u8).collect();
                    // A weight whose row max is 127 quantizes to itself with scale 1.
                    let mut w: Vec<f32> = wq.iter().map(|&v| v as f32).collect();
                    for r in 0..n {
                        w[r * k] = 127.0;
                    }
                    let p = Packed::new(&w, n, k, None);
                    assert!(p.scale[..n].iter().all(|&s| s == 1.0));
                    let kp = round_up(k, 4);
                    let mut a = vec![128u8; round_up(m, MR) * kp];
                    for r in 0..m {
                        for kk in 0..k {
                            a[(r / MR) * kp * MR + (kk / 4) * 4 * MR + (r % MR) * 4 + kk % 4] =
                                au[r * k + kk];
                        }
                    }
                    let sx = vec![1f32; m];
                    let want: Vec<f32> = (0..m)
                        .flat_map(|r| {
                            let (au, w) = (&au, &w);
                            (0..n).map(move |c| {
                                let dot: i64 = (0..k)
                                    .map(|kk| (au[r * k + kk] as i64 - 128) * w[c * k + kk] as i64)
                                    .sum();
                                dot as f32
                            })
                        })
                        .collect();
                    for kernel in Kernel::available() {
                        let mut out = vec![f32::NAN; m * n];
                        let a: Vec<u8> = match kernel.signed_activations() {
                            true => a.iter().map(|v| v ^ 0x80).collect(),
                            false => a.clone(),
                        };
                        p.gemm(kernel, &a, &sx, m, &mut out);
                        assert_eq!(out, want, "{kernel:?} m={m} k={k} n={n}");
                    }
                }
            }
        }
    }

    fn random(rng: &mut Rng, dims: (usize, usize)) -> Tensor {
        let v: Vec<f32> = (0..dims.0 * dims.1).map(|_| rng.f32()).collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn all_kernels_give_identical_f32_and_match_f32_matmul() {
        let mut rng = Rng(11);
        // one shape spans two column blocks and a partial panel, whatever the L2 size
        let wide = nc_bytes() / (512 * PANEL) * PANEL + PANEL + 7;
        for &(m, k, n) in &[(1, 64, 1), (3, 513, 17), (33, 512, wide), (40, 100, 130)] {
            let x = random(&mut rng, (m, k));
            let w = random(&mut rng, (n, k));
            let b: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let b = Tensor::from_vec(b, n, &Device::Cpu).unwrap();
            let q = QLinear::quantize(&w, Some(&b)).unwrap();
            let want = x
                .matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            let scalar: Vec<f32> = q
                .with_kernel(Kernel::Scalar)
                .unwrap()
                .forward(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for kernel in Kernel::available() {
                let got: Vec<f32> = q
                    .with_kernel(kernel)
                    .unwrap()
                    .forward(&x)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    scalar.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{kernel:?} {m}x{k}x{n}"
                );
            }
            let dot: f64 = want.iter().zip(&scalar).map(|(a, b)| (a * b) as f64).sum();
            let na: f64 = want.iter().map(|a| (a * a) as f64).sum::<f64>().sqrt();
            let nb: f64 = scalar.iter().map(|a| (a * a) as f64).sum::<f64>().sqrt();
            let cos = dot / (na * nb);
            let err: f64 = want
                .iter()
                .zip(&scalar)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum();
            let rel = err.sqrt() / na;
            // Uniform data: per-element steps of max/127 give ~0.5% relative error.
            assert!(
                cos > 0.9999 && rel < 0.01,
                "cosine {cos} rel {rel} for {m}x{k}x{n}"
            );
        }
    }

    /// The int8 path computes exactly "quantize, dequantize, f32 matmul": what is left
    /// against the f32 layer is quantization error alone.
    #[test]
    fn matches_fake_quantized_f32_reference() {
        let mut rng = Rng(5);
        let (m, k, n) = (7, 96, 50);
        // Heavy-tailed data, like activations with outlier features.
        let x: Vec<f32> = (0..m * k).map(|_| rng.f32().powi(5) * 8.0).collect();
        let w: Vec<f32> = (0..n * k).map(|_| rng.f32()).collect();
        let fake = |v: &[f32]| -> Vec<f32> {
            let amax = v.iter().fold(0f32, |a, b| a.max(b.abs()));
            v.iter()
                .map(|&e| rne(e * (127.0 / amax)) * (amax / 127.0))
                .collect()
        };
        let xq: Vec<f32> = x.chunks(k).flat_map(fake).collect();
        let wq: Vec<f32> = w.chunks(k).flat_map(fake).collect();
        let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let q = QLinear::quantize(&wt, None).unwrap();
        let got = q.forward_slice(&x, m);
        for r in 0..m {
            for c in 0..n {
                let want: f64 = (0..k)
                    .map(|i| xq[r * k + i] as f64 * wq[c * k + i] as f64)
                    .sum();
                let g = got[r * n + c] as f64;
                assert!(
                    (g - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{r},{c}: {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn rne_rounds_ties_to_even() {
        for v in [
            0.5f32, 1.5, 2.5, -0.5, -1.5, 126.5, -126.5, 0.49999997, 3.7, -3.2, 0.0,
        ] {
            // Signed zeros may differ; the value is converted to an integer anyway.
            assert_eq!(rne(v), v.round_ties_even(), "{v}");
        }
    }

    #[test]
    fn forward_shapes_strides_and_errors() {
        let mut rng = Rng(3);
        let w = random(&mut rng, (10, 8));
        let q = QLinear::quantize(&w, None).unwrap();
        let x = random(&mut rng, (6, 8)).reshape((2, 3, 8)).unwrap();
        let y = q.forward(&x).unwrap();
        assert_eq!(y.dims(), &[2, 3, 10]);
        // A transposed (non-contiguous) input gives the same rows.
        let xt = x.transpose(0, 1).unwrap();
        let yt = q.forward(&xt).unwrap().transpose(0, 1).unwrap();
        let a: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = yt
            .contiguous()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(a, b);
        assert!(q.forward(&random(&mut rng, (2, 7))).is_err());
        assert!(q.forward(&x.to_dtype(DType::F64).unwrap()).is_err());
        assert!(QLinear::quantize(&random(&mut rng, (0, 4)), None).is_err());
        let bad_bias = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        assert!(QLinear::quantize(&w, Some(&bad_bias)).is_err());
        // All-zero input rows give exactly the bias.
        let b = Tensor::arange(0f32, 10.0, &Device::Cpu).unwrap();
        let qb = QLinear::quantize(&w, Some(&b)).unwrap();
        let z = Tensor::zeros((1, 8), DType::F32, &Device::Cpu).unwrap();
        let y: Vec<f32> = qb
            .forward(&z)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(y, (0..10).map(|v| v as f32).collect::<Vec<_>>());
    }
}
