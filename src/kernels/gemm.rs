//! f32 GEMM against weights packed once at load: `y[m, n] = x[m, k] · W[n, k]ᵀ + bias`.
//!
//! Why not candle's matmul: at decoder shapes (m = 32..128 rows, the vocabulary projection
//! n = 53k) the general GEMM repacks its operands on every call, which the profile showed as a
//! quarter of a decoding step. Here W is laid out once in panels of [`NR`] output columns,
//! k-major (`panel[kk * NR + j] = W[p * NR + j][kk]`), so the microkernel streams it with
//! aligned vector loads and broadcasts x straight from its rows: no packing per call.
//!
//! Kernels: AVX-512 (8 rows x 32 columns), AVX2+FMA (6 rows x 16 columns, half a panel), and a
//! portable one; chosen once at run time. Every output element is a single k-ordered sum, so
//! the result does not depend on the kernel's blocking or on the thread count.

use std::sync::OnceLock;

/// Output columns per packed panel.
pub const NR: usize = 32;

/// 64-byte aligned storage unit, so panel rows start on a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A `[n, k]` weight (torch `nn.Linear` layout) packed for [`PackedMatrix::matmul`].
#[derive(Clone)]
pub struct PackedMatrix {
    n: usize,
    k: usize,
    /// `n.div_ceil(NR)` panels of `k * NR` floats, zero-padded past `n`.
    data: Vec<Line>,
    /// Bias padded to whole panels (zeros when the layer has none).
    bias: Vec<f32>,
    has_bias: bool,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("has_bias", &self.has_bias)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    fn from_features(f: super::cpu::Features) -> Isa {
        if cfg!(target_arch = "x86_64") && f.avx512 {
            Isa::Avx512
        } else if cfg!(target_arch = "x86_64") && f.avx2_fma {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "AVX-512 (8x32)",
            Isa::Avx2 => "AVX2+FMA (6x16)",
            Isa::Portable => "portable",
        }
    }
}

fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| Isa::from_features(super::cpu::features()))
}

/// The f32 GEMM kernel this process uses.
pub fn kernel_name() -> &'static str {
    isa().name()
}

impl PackedMatrix {
    /// Pack `weight` (`[n, k]` row-major) and an optional `[n]` bias.
    pub fn pack(weight: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weight.len(), n * k, "weight is not [n, k]");
        let panels = n.div_ceil(NR);
        let lines_per_panel = k * NR / 16;
        let mut data = vec![Line([0.0; 16]); panels * lines_per_panel];
        for p in 0..panels {
            let panel = &mut data[p * lines_per_panel..(p + 1) * lines_per_panel];
            let cols = NR.min(n - p * NR);
            for j in 0..cols {
                let row = &weight[(p * NR + j) * k..(p * NR + j + 1) * k];
                for (kk, &w) in row.iter().enumerate() {
                    let flat = kk * NR + j;
                    panel[flat / 16].0[flat % 16] = w;
                }
            }
        }
        let mut padded = vec![0f32; panels * NR];
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias is not [n]");
            padded[..n].copy_from_slice(b);
        }
        Self {
            n,
            k,
            data,
            bias: padded,
            has_bias: bias.is_some(),
        }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn has_bias(&self) -> bool {
        self.has_bias
    }

    /// Row `i` of the original `[n, k]` weight (tied embeddings read their rows here).
    pub fn row(&self, i: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.k];
        self.row_into(i, &mut out);
        out
    }

    /// Copy row `i` (< n) of the original weight into `out` (length k).
    pub fn row_into(&self, i: usize, out: &mut [f32]) {
        let (p, j) = (i / NR, i % NR);
        let base = p * self.k * NR + j;
        for (kk, o) in out.iter_mut().enumerate().take(self.k) {
            let flat = base + kk * NR;
            *o = self.data[flat / 16].0[flat % 16];
        }
    }

    /// Bias as given (length n) if any.
    pub fn bias(&self) -> Option<&[f32]> {
        self.has_bias.then(|| &self.bias[..self.n])
    }

    fn panel_ptr(&self, p: usize) -> *const f32 {
        // SAFETY: p < panels, every panel is k * NR floats
        unsafe { (self.data.as_ptr() as *const f32).add(p * self.k * NR) }
    }

    /// `x` is `[m, k]` row-major; returns `[m, n]` row-major. Runs on the current rayon pool
    /// when it has more than one thread and the product is big enough to share.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        self.matmul_with(isa(), x, m)
    }

    fn matmul_with(&self, isa: Isa, x: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(x.len(), m * self.k, "x is not [m, k]");
        let n = self.n;
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        if m == 0 || n == 0 {
            return out;
        }
        let panels = n.div_ceil(NR);
        let out_ptr = SendPtr(out.as_mut_ptr());
        // Row blocks keep a slice of x in L2 while the panels stream past it; with a long k
        // (the SIMD kernels, which carry partial sums) the slice is a k range, so a block
        // still holds enough rows to reuse each streamed panel block well (a whole-k slice
        // when all of x fits: a second pass would re-read the output).
        let kco = if isa != Isa::Portable && m > row_block(self.k) {
            self.k.min(KCO)
        } else {
            self.k
        };
        let mc = row_block(kco);
        let work = |p0: usize, p1: usize| {
            for r0 in (0..m).step_by(mc) {
                let rows = mc.min(m - r0);
                for ko in (0..self.k).step_by(kco) {
                    let ks = ko..(ko + kco).min(self.k);
                    for p in p0..p1 {
                        // SAFETY: each (row block, panel) writes a disjoint set of output
                        // elements inside the [m, n] allocation; x has m * k elements.
                        unsafe {
                            self.panel(
                                isa,
                                x.as_ptr().add(r0 * self.k),
                                rows,
                                p,
                                ks.clone(),
                                out_ptr.get().add(r0 * n),
                                n,
                            )
                        };
                    }
                }
            }
        };
        let threads = rayon::current_num_threads();
        let flops = m * n * self.k;
        if threads > 1 && flops >= 1 << 22 && panels >= 2 {
            let chunks = (threads * 4).min(panels);
            let per = panels.div_ceil(chunks);
            rayon::scope(|s| {
                for c in 0..chunks {
                    let (p0, p1) = (c * per, ((c + 1) * per).min(panels));
                    if p0 < p1 {
                        s.spawn(move |_| work(p0, p1));
                    }
                }
            });
        } else {
            work(0, panels);
        }
        // SAFETY: every element of [m, n] was written above (first by the k range from 0)
        unsafe { out.set_len(m * n) };
        out
    }

    /// All `rows` rows of `x` (stride k) against panel `p` over the k range `ks`, written
    /// to `c` (stride ldc): a range that starts at 0 overwrites `c`, a later one adds to it,
    /// the one ending at k adds the bias. Only the SIMD kernels take ranges shorter than k.
    ///
    /// # Safety
    /// `x` holds `rows * k` floats, `c` has room for `rows` rows of stride `ldc` covering the
    /// panel's columns.
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel(
        &self,
        isa: Isa,
        x: *const f32,
        rows: usize,
        p: usize,
        ks: std::ops::Range<usize>,
        c: *mut f32,
        ldc: usize,
    ) {
        let cols = NR.min(self.n - p * NR);
        let b = self.panel_ptr(p);
        // The weights of a decoder step do not fit in cache: while this panel is computed,
        // the next one is prefetched, spread evenly over the row tiles and k steps.
        let panel_bytes = k_bytes(ks.len());
        let next = if (p + 1) * NR < self.n {
            (self.panel_ptr(p + 1) as *const u8).add(k_bytes(ks.start))
        } else {
            std::ptr::null()
        };
        let bias = self.bias.as_ptr().add(p * NR);
        let c = c.add(p * NR);
        let k = self.k;
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx2 => {
                // Each row tile runs the whole k range with its sums in registers: the panel
                // comes from L2 once per tile, which measured 2-9% faster on every decoder and
                // encoder shape than k blocks kept in L1 with partial sums round-tripping
                // through the output (whose rows, at power-of-two widths such as 3072, all
                // fall in one L1 set). AVX2 tiles are 6 rows x half a panel (16 registers).
                let (mr_max, width) = if isa == Isa::Avx512 { (8, NR) } else { (6, 16) };
                let parts = cols.div_ceil(width);
                let share = panel_bytes.div_ceil(rows.div_ceil(mr_max) * parts);
                let stride = share.div_ceil(ks.len().max(1));
                let flags = simd_tile::Flags {
                    first: ks.start == 0,
                    last: ks.end == k,
                };
                let mut call = 0;
                for part in 0..parts {
                    let off = part * width;
                    let bb = b.add(ks.start * NR + off);
                    let mut r = 0;
                    while r < rows {
                        // the last two tiles share what is left (9 rows at 8: 5 + 4, not
                        // 8 + 1), so no tile is too thin to hide its loads behind FMAs
                        let left = rows - r;
                        let mr = if left > mr_max && left < 2 * mr_max {
                            left.div_ceil(2)
                        } else {
                            left.min(mr_max)
                        };
                        let pf = simd_tile::Prefetch {
                            base: if next.is_null() {
                                next
                            } else {
                                next.add(call * share)
                            },
                            stride,
                        };
                        let args = (
                            ks.len(),
                            x.add(r * k + ks.start),
                            k,
                            bb,
                            bias.add(off),
                            c.add(r * ldc + off),
                            ldc,
                            (cols - off).min(width),
                            pf,
                            flags,
                        );
                        if isa == Isa::Avx512 {
                            simd_tile::avx512(mr, args)
                        } else {
                            simd_tile::avx2(mr, args)
                        }
                        r += mr;
                        call += 1;
                    }
                }
            }
            _ => {
                debug_assert!(ks == (0..k));
                portable_tile(k, x, rows, b, bias, c, ldc, cols)
            }
        }
    }
}

/// k per row block of the SIMD paths when x does not fit in L2 whole. 1024 measured best
/// against 512 (4-6% slower at k 768..2048, where it split k needlessly), 2048 and whole k
/// (up to 7% slower at k 4096); cutting k into equal ranges instead made no difference.
const KCO: usize = 1024;

/// Bytes of one packed panel.
fn k_bytes(k: usize) -> usize {
    k * NR * std::mem::size_of::<f32>()
}

/// Rows of x per block, so the block (`rows * k` floats) takes half of the core's L2 and the
/// panel streaming past it the rest: a decoder step's x (128 rows at k = 768: 384 KB) then
/// stays one block and each weight panel is read from memory once, not once per block.
/// 512 KiB of L2 is assumed where the size is unknown.
fn row_block(k: usize) -> usize {
    static FLOATS: OnceLock<usize> = OnceLock::new();
    let floats =
        *FLOATS.get_or_init(|| l2_bytes().unwrap_or(512 * 1024) / 2 / std::mem::size_of::<f32>());
    (floats / k.max(1)).clamp(8, 512) / 8 * 8
}

/// The L2 data cache of CPU 0 in bytes (Linux sysfs; read once), `None` where unknown. L2 is
/// per core on the x86 parts this targets, so every worker thread sees the same size.
pub(super) fn l2_bytes() -> Option<usize> {
    static L2: OnceLock<Option<usize>> = OnceLock::new();
    *L2.get_or_init(|| {
        let read = |f: &str| {
            std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu0/cache/index2/{f}"))
        };
        let (level, size) = (read("level").ok()?, read("size").ok()?);
        let size = size.trim();
        let bytes = match size.strip_suffix('K') {
            Some(k) => k.parse::<usize>().ok()? * 1024,
            None => match size.strip_suffix('M') {
                Some(m) => m.parse::<usize>().ok()? * 1024 * 1024,
                None => size.parse().ok()?,
            },
        };
        (level.trim() == "2" && bytes >= 128 * 1024).then(|| bytes.min(4 * 1024 * 1024))
    })
}

/// An output buffer's pointer handed to rayon tasks (the GEMMs of this module and `int8`).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: used only to hand disjoint output regions to rayon tasks inside one scope
unsafe impl Send for SendPtr {}
// SAFETY: as Send: tasks write disjoint regions, none reads another's
unsafe impl Sync for SendPtr {}

impl SendPtr {
    // a method, so closures capture the whole (Send) wrapper, not the raw pointer field
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// # Safety
/// As [`PackedMatrix::panel`].
#[allow(clippy::too_many_arguments)]
unsafe fn portable_tile(
    k: usize,
    x: *const f32,
    rows: usize,
    b: *const f32,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    for r in 0..rows {
        let mut acc = [0f32; NR];
        for kk in 0..k {
            let a = *x.add(r * k + kk);
            let brow = std::slice::from_raw_parts(b.add(kk * NR), NR);
            for (s, &w) in acc.iter_mut().zip(brow) {
                *s = a.mul_add(w, *s);
            }
        }
        for (j, s) in acc.iter().enumerate().take(cols) {
            *c.add(r * ldc + j) = s + *bias.add(j);
        }
    }
}

/// What the SIMD tile kernels share: their arguments and the dispatch on the row count.
#[cfg(target_arch = "x86_64")]
mod simd_tile {
    /// Bytes to prefetch while a tile runs: `stride` bytes per k step from `base` (null: none).
    #[derive(Clone, Copy)]
    pub struct Prefetch {
        pub base: *const u8,
        pub stride: usize,
    }

    /// Which k range a call handles: the first starts from zero, the last adds the bias.
    #[derive(Clone, Copy)]
    pub struct Flags {
        pub first: bool,
        pub last: bool,
    }

    /// (kc, x, x row stride, panel block, bias, c, ldc, cols, prefetch, flags)
    pub type Args = (
        usize,
        *const f32,
        usize,
        *const f32,
        *const f32,
        *mut f32,
        usize,
        usize,
        Prefetch,
        Flags,
    );

    /// # Safety
    /// avx512f available; `mr` <= 8; pointers as in `PackedMatrix::panel`.
    pub unsafe fn avx512(mr: usize, args: Args) {
        use super::avx512::tile;
        match mr {
            8 => tile::<8>(args),
            7 => tile::<7>(args),
            6 => tile::<6>(args),
            5 => tile::<5>(args),
            4 => tile::<4>(args),
            3 => tile::<3>(args),
            2 => tile::<2>(args),
            _ => tile::<1>(args),
        }
    }

    /// # Safety
    /// avx2 and fma available; `mr` <= 6; pointers as in `PackedMatrix::panel`.
    pub unsafe fn avx2(mr: usize, args: Args) {
        use super::avx2::tile;
        match mr {
            6 => tile::<6>(args),
            5 => tile::<5>(args),
            4 => tile::<4>(args),
            3 => tile::<3>(args),
            2 => tile::<2>(args),
            _ => tile::<1>(args),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::simd_tile::Args;
    use std::arch::x86_64::*;

    /// MR rows x 32 columns over `kc` steps of k; `cols` <= 32 are loaded/stored (masked).
    /// Not the first k range: continues from the partial sums in `c`.
    ///
    /// # Safety
    /// avx512f available; pointers as in `PackedMatrix::panel`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile<const MR: usize>(args: Args) {
        let (kc, x, lda, b, bias, c, ldc, cols, pf, flags) = args;
        let m0: __mmask16 = if cols >= 16 {
            0xffff
        } else {
            (1u16 << cols) - 1
        };
        let m1: __mmask16 = if cols >= 32 {
            0xffff
        } else if cols > 16 {
            (1u16 << (cols - 16)) - 1
        } else {
            0
        };
        let mut lo = [_mm512_setzero_ps(); MR];
        let mut hi = [_mm512_setzero_ps(); MR];
        if !flags.first {
            for r in 0..MR {
                let row = c.add(r * ldc);
                lo[r] = _mm512_maskz_loadu_ps(m0, row);
                hi[r] = _mm512_maskz_loadu_ps(m1, row.add(16));
            }
        }
        for kk in 0..kc {
            if !pf.base.is_null() {
                let at = pf.base.add(kk * pf.stride) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(at);
                if pf.stride > 64 {
                    _mm_prefetch::<_MM_HINT_T0>(at.add(64));
                }
            }
            let b0 = _mm512_load_ps(b.add(kk * 32));
            let b1 = _mm512_load_ps(b.add(kk * 32 + 16));
            for r in 0..MR {
                let a = _mm512_set1_ps(*x.add(r * lda + kk));
                lo[r] = _mm512_fmadd_ps(a, b0, lo[r]);
                hi[r] = _mm512_fmadd_ps(a, b1, hi[r]);
            }
        }
        let (bias0, bias1) = if flags.last {
            (_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16)))
        } else {
            (_mm512_setzero_ps(), _mm512_setzero_ps())
        };
        for r in 0..MR {
            let row = c.add(r * ldc);
            _mm512_mask_storeu_ps(row, m0, _mm512_add_ps(lo[r], bias0));
            _mm512_mask_storeu_ps(row.add(16), m1, _mm512_add_ps(hi[r], bias1));
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::simd_tile::Args;
    use std::arch::x86_64::*;

    /// MR rows x 16 columns of a 32-wide panel (panel stride 32) over `kc` steps of k;
    /// `cols` <= 16 are loaded/stored. Not the first range: continues from the partial sums
    /// in `c`.
    ///
    /// # Safety
    /// avx2+fma available; pointers as in `PackedMatrix::panel`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile<const MR: usize>(args: Args) {
        let (kc, x, lda, b, bias, c, ldc, cols, pf, flags) = args;
        let mut lo = [_mm256_setzero_ps(); MR];
        let mut hi = [_mm256_setzero_ps(); MR];
        if !flags.first {
            for r in 0..MR {
                let mut tmp = [0f32; 16];
                std::ptr::copy_nonoverlapping(c.add(r * ldc), tmp.as_mut_ptr(), cols);
                lo[r] = _mm256_loadu_ps(tmp.as_ptr());
                hi[r] = _mm256_loadu_ps(tmp.as_ptr().add(8));
            }
        }
        for kk in 0..kc {
            if !pf.base.is_null() {
                _mm_prefetch::<_MM_HINT_T0>(pf.base.add(kk * pf.stride) as *const i8);
            }
            let b0 = _mm256_load_ps(b.add(kk * 32));
            let b1 = _mm256_load_ps(b.add(kk * 32 + 8));
            for r in 0..MR {
                let a = _mm256_broadcast_ss(&*x.add(r * lda + kk));
                lo[r] = _mm256_fmadd_ps(a, b0, lo[r]);
                hi[r] = _mm256_fmadd_ps(a, b1, hi[r]);
            }
        }
        let (bias0, bias1) = if flags.last {
            (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8)))
        } else {
            (_mm256_setzero_ps(), _mm256_setzero_ps())
        };
        for r in 0..MR {
            let row = c.add(r * ldc);
            if cols == 16 {
                _mm256_storeu_ps(row, _mm256_add_ps(lo[r], bias0));
                _mm256_storeu_ps(row.add(8), _mm256_add_ps(hi[r], bias1));
            } else {
                let mut tmp = [0f32; 16];
                _mm256_storeu_ps(tmp.as_mut_ptr(), _mm256_add_ps(lo[r], bias0));
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), _mm256_add_ps(hi[r], bias1));
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), row, cols);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        m: usize,
        n: usize,
        k: usize,
    ) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |b| b[j] as f64);
                for kk in 0..k {
                    s += x[i * k + kk] as f64 * w[j * k + kk] as f64;
                }
                out[i * n + j] = s;
            }
        }
        out
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_f64_reference_on_odd_shapes() {
        // more rows than one block holds at a k over KCO (the block depends on this
        // machine's L2): k is split into ranges (the SIMD kernels)
        let split_k = KCO + 88;
        let split_m = row_block(split_k) + 40;
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 17, 5),
            (9, 33, 64),
            (33, 70, 31),
            (17, 100, 130),
            (split_m, 70, split_k),
        ] {
            let x = data(m * k, 1);
            let w = data(n * k, 2);
            let b = data(n, 3);
            for bias in [None, Some(b.as_slice())] {
                let p = PackedMatrix::pack(&w, n, k, bias);
                let got = p.matmul(&x, m);
                let want = reference(&x, &w, bias, m, n, k);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                        "{m}x{n}x{k}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_available_kernel_agrees() {
        // the second shape splits k into ranges (partial sums through the output) and ends
        // in partial panels and partial row tiles
        let split_k = KCO + 88;
        for (m, n, k) in [(13, 75, 33), (row_block(split_k) + 7, 45, split_k)] {
            let x = data(m * k, 8);
            let w = data(n * k, 9);
            let b = data(n, 10);
            let p = PackedMatrix::pack(&w, n, k, Some(&b));
            let want = p.matmul_with(Isa::Portable, &x, m);
            // every kernel the CPU itself can run, whatever the environment caps
            let cpu = super::super::cpu::Features::detect();
            let mut isas = vec![];
            if cpu.avx512 {
                isas.push(Isa::Avx512);
            }
            if cpu.avx2_fma {
                isas.push(Isa::Avx2);
            }
            for isa in isas {
                let got = p.matmul_with(isa, &x, m);
                // the same k-ordered fused multiply-adds: the same bits
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{isa:?} {m}x{n}x{k} [{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn portable_kernel_agrees() {
        let (m, n, k) = (7, 45, 20);
        let x = data(m * k, 4);
        let w = data(n * k, 5);
        let p = PackedMatrix::pack(&w, n, k, None);
        let fast = p.matmul(&x, m);
        let mut slow = vec![0f32; m * n];
        for pnl in 0..n.div_ceil(NR) {
            // SAFETY: x, the packed panel and `slow` hold the m x k, k x NR and m x n values
            // the tile reads and writes.
            unsafe {
                portable_tile(
                    k,
                    x.as_ptr(),
                    m,
                    p.panel_ptr(pnl),
                    p.bias.as_ptr().add(pnl * NR),
                    slow.as_mut_ptr().add(pnl * NR),
                    n,
                    NR.min(n - pnl * NR),
                )
            };
        }
        for (a, b) in fast.iter().zip(&slow) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn rows_round_trip_and_threads_agree() {
        let (m, n, k) = (40, 300, 96);
        let w = data(n * k, 6);
        let x = data(m * k, 7);
        let p = PackedMatrix::pack(&w, n, k, None);
        assert_eq!(p.row(37), w[37 * k..38 * k].to_vec());
        let one = p.matmul(&x, m);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let many = pool.install(|| p.matmul(&x, m));
        assert_eq!(one, many);
    }
}
