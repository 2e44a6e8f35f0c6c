//! Decoder-step attention on the CPU (f32) over host buffers, with a self-attention cache that
//! beam search reorders without copying.
//!
//! Why: through candle, each step's attention was a batched matmul over a strided view of the
//! cache, a softmax and a head merge, and every beam reorder gathered the filled cache into a
//! fresh buffer (6 layers x K/V x rows x positions x d_model): 7% of an opus-mt beam-4 step,
//! plus page faults on the new buffers. Here the cache is written once per position and never
//! moved: `slots` holds, per row and position, which slot of that position holds the row's
//! ancestor's keys and values; a reorder copies that small table only.

use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::simd::{axpy, dot, softmax_in_place};

/// Additive mask value, as transformers' eager attention (`torch.finfo(float32).min`): finite,
/// so a row with every key masked gets uniform weights instead of NaN.
pub const MASK_VALUE: f32 = f32::MIN;

/// Buffers of finished decoders' caches, kept for the model's next search. Why: a fresh
/// cache is first touched page by page on every search, and in a VM that hands freed memory
/// back to the host each of those pages is faulted in and cleared again: 2-3% of an opus-mt
/// beam-4 search. Holds at most one cache's buffers (the largest seen), which are also what
/// the next search of that size needs at its peak.
#[derive(Debug, Default)]
pub struct CachePool(Mutex<Vec<Vec<f32>>>);

impl CachePool {
    /// A buffer of at least `len` floats: the shortest kept one that is long enough (its
    /// contents are stale: callers read only what they wrote), else a new zeroed one.
    fn take(&self, len: usize) -> Vec<f32> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let fit = (0..kept.len())
            .filter(|&i| kept[i].len() >= len)
            .min_by_key(|&i| kept[i].len());
        match fit {
            Some(i) => kept.swap_remove(i),
            None => vec![0.0; len],
        }
    }

    /// Keep `bufs`, then the `keep` longest of everything kept.
    fn give(&self, bufs: impl IntoIterator<Item = Vec<f32>>, keep: usize) {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.extend(bufs.into_iter().filter(|b| !b.is_empty()));
        if kept.len() > keep {
            kept.sort_by_key(|b| std::cmp::Reverse(b.len()));
            kept.truncate(keep);
        }
    }
}

/// Self-attention K/V of every decoder layer, position-major `[max_len][cap][d]`: the rows of
/// step `t` are written to slots `0..rows` of position `t`. Buffers come from the model's
/// [`CachePool`] at the first write (so `reserve` can still size them) and go back on drop.
pub struct HostCache {
    max_len: usize,
    d: usize,
    cap: usize,
    layers: usize,
    /// Per layer: keys, values; each at least `max_len * cap * d` long (empty until the
    /// first write).
    kv: Vec<(Vec<f32>, Vec<f32>)>,
    /// `[rows][max_len]`: slot of position `t` for row `r` (valid for `t < pos`).
    slots: Vec<u32>,
    slots_next: Vec<u32>,
    pool: Arc<CachePool>,
}

impl Drop for HostCache {
    fn drop(&mut self) {
        let bufs = std::mem::take(&mut self.kv)
            .into_iter()
            .flat_map(|(k, v)| [k, v]);
        self.pool.give(bufs, 2 * self.layers);
    }
}

impl HostCache {
    pub fn new(layers: usize, max_len: usize, d: usize, rows: usize, pool: Arc<CachePool>) -> Self {
        Self {
            max_len,
            d,
            cap: rows.max(1),
            layers,
            kv: Vec::new(),
            slots: vec![0; rows * max_len],
            slots_next: Vec::new(),
            pool,
        }
    }

    /// Room for `rows` rows from the start (before anything is written, i.e. before the
    /// buffers exist; later the rows still grow on demand in [`Self::select_rows`]).
    pub fn reserve(&mut self, rows: usize) {
        if self.kv.is_empty() {
            self.cap = self.cap.max(rows);
        }
    }

    /// Stores the keys and values (`[rows, d]`) of the rows' token at `pos`.
    pub fn write(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        if self.kv.is_empty() {
            let len = self.max_len * self.cap * self.d;
            self.kv = (0..self.layers)
                .map(|_| (self.pool.take(len), self.pool.take(len)))
                .collect();
        }
        let rows = k.len() / self.d;
        debug_assert!(rows <= self.cap && v.len() == k.len());
        let at = pos * self.cap * self.d;
        let (kc, vc) = &mut self.kv[layer];
        kc[at..at + k.len()].copy_from_slice(k);
        vc[at..at + v.len()].copy_from_slice(v);
        if layer == 0 {
            for r in 0..rows {
                self.slots[r * self.max_len + pos] = r as u32;
            }
        }
    }

    /// Rows `parents[i]` become rows `i`, for the `pos` positions filled so far.
    pub fn select_rows(&mut self, parents: &[u32], pos: usize) {
        let n = parents.len();
        if n > self.cap {
            // More rows than slots (beam search expanding its first step's rows without a
            // reserve): widen every filled position, keeping each slot's index.
            let (old, cap, d) = (self.cap, n, self.d);
            let (pool, keep, len) = (&self.pool, 2 * self.layers, self.max_len * cap * d);
            let widen = |buf: Vec<f32>| {
                let mut wide = pool.take(len);
                for t in 0..pos {
                    wide[t * cap * d..(t * cap + old) * d]
                        .copy_from_slice(&buf[t * old * d..(t + 1) * old * d]);
                }
                pool.give([buf], keep);
                wide
            };
            self.kv = std::mem::take(&mut self.kv)
                .into_iter()
                .map(|(k, v)| (widen(k), widen(v)))
                .collect();
            self.cap = cap;
        }
        let ml = self.max_len;
        self.slots_next.resize(n * ml, 0);
        for (i, &p) in parents.iter().enumerate() {
            let p = p as usize;
            self.slots_next[i * ml..i * ml + pos]
                .copy_from_slice(&self.slots[p * ml..p * ml + pos]);
        }
        std::mem::swap(&mut self.slots, &mut self.slots_next);
    }

    /// Self-attention of the rows' queries `q` (`[rows, d]`, scaling folded into the weights)
    /// over positions `0..=pos`, into `out` (`[rows, d]`, heads merged). `bias`: T5's
    /// relative bias, `[heads][pos + 1]`.
    pub fn attend(
        &self,
        layer: usize,
        pos: usize,
        heads: usize,
        q: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (d, cap, ml) = (self.d, self.cap, self.max_len);
        let hd = d / heads;
        let (kc, vc) = &self.kv[layer];
        let n = pos + 1;
        q.par_chunks_exact(d)
            .zip(out.par_chunks_exact_mut(d))
            .enumerate()
            .for_each_init(
                || vec![0f32; n],
                |scores, (r, (qr, or))| {
                    let slots = &self.slots[r * ml..r * ml + n];
                    let at = |t: usize| (t * cap + slots[t] as usize) * d;
                    let src = Keys {
                        key: |t, h| &kc[at(t) + h * hd..at(t) + (h + 1) * hd],
                        value: |t, h| &vc[at(t) + h * hd..at(t) + (h + 1) * hd],
                        bias: |t, h| bias.map_or(0.0, |b| b[h * n + t]),
                    };
                    attend_row_fast(qr, or, heads, scores, src)
                },
            );
    }
}

/// Where one query row reads its keys and values (by position and head) and the additive
/// bias of each score.
struct Keys<K, V, B> {
    key: K,
    value: V,
    bias: B,
}

trait RowKeys<'a> {
    fn key(&self, t: usize, h: usize) -> &'a [f32];
    fn value(&self, t: usize, h: usize) -> &'a [f32];
    fn bias(&self, t: usize, h: usize) -> f32;
}

impl<'a, K, V, B> RowKeys<'a> for Keys<K, V, B>
where
    K: Fn(usize, usize) -> &'a [f32],
    V: Fn(usize, usize) -> &'a [f32],
    B: Fn(usize, usize) -> f32,
{
    #[inline(always)]
    fn key(&self, t: usize, h: usize) -> &'a [f32] {
        (self.key)(t, h)
    }
    #[inline(always)]
    fn value(&self, t: usize, h: usize) -> &'a [f32] {
        (self.value)(t, h)
    }
    #[inline(always)]
    fn bias(&self, t: usize, h: usize) -> f32 {
        (self.bias)(t, h)
    }
}

/// [`attend_row`] compiled for AVX2+FMA where the CPU has them (its helpers then vectorize
/// 8-wide: same operations, same results).
#[inline(always)]
fn attend_row_fast<'a>(
    q: &[f32],
    out: &mut [f32],
    heads: usize,
    s: &mut [f32],
    src: impl RowKeys<'a>,
) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx2() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<'a>(
            q: &[f32],
            out: &mut [f32],
            heads: usize,
            s: &mut [f32],
            src: impl RowKeys<'a>,
        ) {
            use super::simd::avx2;
            let (dot, axpy) = (
                // SAFETY: this function only runs where AVX2 and FMA were detected.
                |a: &[f32], b: &[f32]| unsafe { avx2::dot(a, b) },
                // SAFETY: as above.
                |p: f32, x: &[f32], y: &mut [f32]| unsafe { avx2::axpy(p, x, y) },
            );
            attend_row(q, out, heads, s, src, dot, axpy)
        }
        // SAFETY: AVX2 and FMA are present (checked once).
        return unsafe { avx2(q, out, heads, s, src) };
    }
    attend_row(q, out, heads, s, src, dot, axpy)
}

/// One query row over `scores.len()` keys, head by head: scores (+ bias), softmax, weighted
/// sum of the values into `out` (heads merged).
#[inline(always)]
fn attend_row<'a>(
    q: &[f32],
    out: &mut [f32],
    heads: usize,
    scores: &mut [f32],
    src: impl RowKeys<'a>,
    dot: impl Fn(&[f32], &[f32]) -> f32,
    axpy: impl Fn(f32, &[f32], &mut [f32]),
) {
    let hd = q.len() / heads;
    for h in 0..heads {
        let qh = &q[h * hd..(h + 1) * hd];
        for (t, s) in scores.iter_mut().enumerate() {
            *s = dot(qh, src.key(t, h)) + src.bias(t, h);
        }
        softmax_in_place(scores);
        let oh = &mut out[h * hd..(h + 1) * hd];
        oh.fill(0.0);
        for (t, &p) in scores.iter().enumerate() {
            axpy(p, src.value(t, h), oh);
        }
    }
}

/// Cross-attention of the rows' queries `q` (`[rows, d]`) over their sources' keys and values
/// (`[sources, heads, s, hd]`, contiguous), row `r` reading source `row_src[r]`; `mask`:
/// `[sources, s]`, nonzero = real token (padding gets transformers' additive minimum).
#[allow(clippy::too_many_arguments)]
pub fn cross_attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[u8]>,
    row_src: &[u32],
    heads: usize,
    s: usize,
    out: &mut [f32],
) {
    let d = q.len() / row_src.len().max(1);
    let hd = d / heads;
    q.par_chunks_exact(d)
        .zip(out.par_chunks_exact_mut(d))
        .zip(row_src.par_iter())
        .for_each_init(
            || vec![0f32; s],
            |scores, ((qr, or), &src)| {
                let src = src as usize;
                let at = |t: usize, h: usize| ((src * heads + h) * s + t) * hd;
                let keys = Keys {
                    key: |t, h| &k[at(t, h)..at(t, h) + hd],
                    value: |t, h| &v[at(t, h)..at(t, h) + hd],
                    bias: |t, _| match mask {
                        Some(m) if m[src * s + t] == 0 => MASK_VALUE,
                        _ => 0.0,
                    },
                };
                attend_row_fast(qr, or, heads, scores, keys)
            },
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: attention of one row over an explicit list of keys/values.
    fn reference(q: &[f32], keys: &[&[f32]], vals: &[&[f32]], heads: usize) -> Vec<f32> {
        let d = q.len();
        let hd = d / heads;
        let mut out = vec![0f32; d];
        for h in 0..heads {
            let r = h * hd..(h + 1) * hd;
            let mut s: Vec<f64> = keys
                .iter()
                .map(|k| {
                    q[r.clone()]
                        .iter()
                        .zip(&k[r.clone()])
                        .map(|(a, b)| (a * b) as f64)
                        .sum()
                })
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            s.iter_mut().for_each(|x| *x = (*x - m).exp());
            let z: f64 = s.iter().sum();
            for (p, v) in s.iter().zip(vals) {
                for j in r.clone() {
                    out[j] += (p / z * v[j] as f64) as f32;
                }
            }
        }
        out
    }

    fn fill(seed: u64, n: usize) -> Vec<f32> {
        crate::kernels::simd::test_values(seed, n, 1.0)
    }

    /// Rows reordered (with duplicates), widened and shrunk over several steps attend to their
    /// own ancestors' keys: checked against a per-row history kept explicitly.
    #[test]
    fn reorders_follow_ancestors() {
        // one pool: later runs get the earlier runs' buffers, stale contents and all
        let pool = Arc::new(CachePool::default());
        for reserve in [false, true, false, true] {
            reorders_follow_ancestors_once(reserve, &pool);
            // the dropped cache's keys and values (widened or reserved: 5 rows)
            let kept = pool.0.lock().unwrap();
            assert_eq!(kept.len(), 2);
            assert!(kept.iter().all(|b| b.len() >= 6 * 5 * 16));
        }
    }

    #[test]
    fn pool_keeps_one_cache_preferring_the_largest() {
        let pool = CachePool::default();
        pool.give([vec![0.0; 10], vec![0.0; 30]], 2);
        pool.give([vec![0.0; 20], vec![]], 2);
        assert_eq!(pool.take(15).len(), 20);
        assert_eq!(pool.take(15).len(), 30);
        // nothing long enough kept: a new buffer
        assert_eq!(pool.take(15).len(), 15);
    }

    fn reorders_follow_ancestors_once(reserve: bool, pool: &Arc<CachePool>) {
        let (heads, d, ml) = (2, 16, 6);
        let mut cache = HostCache::new(1, ml, d, 2, pool.clone());
        if reserve {
            cache.reserve(5);
        }
        // history[r] = the (k, v) rows of row r's ancestors, position by position
        let mut hist: Vec<Vec<(Vec<f32>, Vec<f32>)>> = vec![vec![]; 2];
        let plan: [&[u32]; 4] = [&[0, 0, 1, 1, 1], &[4, 3, 2, 1, 0], &[1, 1, 0], &[2]];
        for (pos, step_parents) in plan.iter().enumerate() {
            let rows = hist.len();
            let k = fill(pos as u64 * 7 + 1, rows * d);
            let v = fill(pos as u64 * 7 + 2, rows * d);
            let q = fill(pos as u64 * 7 + 3, rows * d);
            cache.write(0, pos, &k, &v);
            for r in 0..rows {
                hist[r].push((
                    k[r * d..(r + 1) * d].to_vec(),
                    v[r * d..(r + 1) * d].to_vec(),
                ));
            }
            let mut out = vec![0f32; rows * d];
            cache.attend(0, pos, heads, &q, None, &mut out);
            for r in 0..rows {
                let keys: Vec<&[f32]> = hist[r].iter().map(|(k, _)| k.as_slice()).collect();
                let vals: Vec<&[f32]> = hist[r].iter().map(|(_, v)| v.as_slice()).collect();
                let want = reference(&q[r * d..(r + 1) * d], &keys, &vals, heads);
                for (a, b) in out[r * d..(r + 1) * d].iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "pos {pos} row {r}: {a} vs {b}");
                }
            }
            cache.select_rows(step_parents, pos + 1);
            hist = step_parents
                .iter()
                .map(|&p| hist[p as usize].clone())
                .collect();
        }
    }

    #[test]
    fn cross_attention_masks_padding_and_reads_each_rows_source() {
        let (heads, hd, s) = (2, 4, 3);
        let d = heads * hd;
        let k = fill(11, 2 * heads * s * hd);
        let v = fill(12, 2 * heads * s * hd);
        let q = fill(13, 3 * d);
        let mask = [1u8, 1, 0, 1, 1, 1];
        let row_src = [1u32, 0, 1];
        let mut out = vec![0f32; 3 * d];
        cross_attend(&q, &k, &v, Some(&mask), &row_src, heads, s, &mut out);
        for (r, &src) in row_src.iter().enumerate() {
            let src = src as usize;
            let n = if src == 0 { 2 } else { 3 };
            // [heads, s, hd] -> per position [d]
            let row = |buf: &[f32], t: usize| -> Vec<f32> {
                (0..heads)
                    .flat_map(|h| {
                        let b = ((src * heads + h) * s + t) * hd;
                        buf[b..b + hd].to_vec()
                    })
                    .collect()
            };
            let keys: Vec<Vec<f32>> = (0..n).map(|t| row(&k, t)).collect();
            let vals: Vec<Vec<f32>> = (0..n).map(|t| row(&v, t)).collect();
            let kr: Vec<&[f32]> = keys.iter().map(|x| x.as_slice()).collect();
            let vr: Vec<&[f32]> = vals.iter().map(|x| x.as_slice()).collect();
            let want = reference(&q[r * d..(r + 1) * d], &kr, &vr, heads);
            for (a, b) in out[r * d..(r + 1) * d].iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "row {r}: {a} vs {b}");
            }
        }
    }
}
