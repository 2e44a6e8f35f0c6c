//! Candidate selection on the accelerator. On a GPU, bringing a step's full scores to the host
//! costs more than the decoder step itself (batch 64 x 53.7k f32 = 13.7 MB per step for greedy,
//! 4x that for beam 4; measured on a datacenter GPU (benches/RESULTS.md): 8.5 ms/step greedy,
//! 56 ms/step beam 4, most of it the copy and the host scan). When every active processor is
//! a uniform token mask (min length, suppressed or single-token bad words: the same tokens for every row, since all rows
//! of a search have the same length), the mask is added on the device and only the
//! candidates come back: the argmax for greedy, the top `n` per row for beam search.
//!
//! Exactness: candidates are ranked by (value descending, index ascending), the host's order,
//! so the host ranks the union of the rows' top `n` exactly as it would rank the full rows.
//! Anything the host would resolve differently (NaN, fewer than `n` finite scores in a row)
//! makes these functions return `None` and the caller takes the host path for that step.

use std::cell::Cell;

use candle_core::{DType, Device, Tensor, D};

thread_local! {
    /// Tests: take the device path on the CPU too, to compare it with the host path.
    static ON_CPU: Cell<bool> = const { Cell::new(false) };
}

/// The search's selector (made on first use) when `logits` are on a device where
/// candidates are selected: any accelerator; the CPU only when a test forces it.
pub(crate) fn selector<'a>(
    slot: &'a mut Option<Selector>,
    logits: &Tensor,
    vocab: usize,
) -> candle_core::Result<Option<&'a mut Selector>> {
    let device = logits.device();
    if device.is_cpu() && !ON_CPU.with(Cell::get) {
        return Ok(None);
    }
    if slot.is_none() {
        *slot = Some(Selector::new(device, vocab)?);
    }
    Ok(slot.as_mut())
}

#[cfg(test)]
pub(crate) fn force_on_cpu(on: bool) {
    ON_CPU.with(|c| c.set(on));
}

/// Device-side selection state of one search: the mask row, rebuilt only when the mask
/// changes (once or twice per search), and the index row.
pub(crate) struct Selector {
    device: Device,
    vocab: usize,
    mask: Option<(Vec<u32>, Tensor)>,
    arange: Tensor,
}

impl Selector {
    pub(crate) fn new(device: &Device, vocab: usize) -> candle_core::Result<Self> {
        Ok(Selector {
            device: device.clone(),
            vocab,
            mask: None,
            arange: Tensor::arange(0u32, vocab as u32, device)?.unsqueeze(0)?,
        })
    }

    /// The `[1, vocab]` row with -inf at `tokens`, 0 elsewhere (`None`: no tokens).
    fn mask_row(&mut self, tokens: &[u32]) -> candle_core::Result<Option<Tensor>> {
        if tokens.is_empty() {
            return Ok(None);
        }
        let stale = !matches!(&self.mask, Some((t, _)) if t == tokens);
        if stale {
            let mut row = vec![0f32; self.vocab];
            for &t in tokens {
                row[t as usize] = f32::NEG_INFINITY;
            }
            let bias = Tensor::from_vec(row, (1, self.vocab), &self.device)?;
            self.mask = Some((tokens.to_vec(), bias));
        }
        Ok(self.mask.as_ref().map(|(_, b)| b.clone()))
    }

    /// `scores` with -inf at `tokens` (every row).
    fn masked(&mut self, scores: &Tensor, tokens: &[u32]) -> candle_core::Result<Tensor> {
        match self.mask_row(tokens)? {
            Some(bias) => scores.broadcast_add(&bias),
            None => Ok(scores.clone()),
        }
    }

    /// The selection in one kernel ([`crate::kernels::cuda::topk`]): `Some` of what the candle
    /// path below would give, i.e. per row the `n` best values and tokens, or `None` when a
    /// row holds NaN/+inf (the host decides). `Ok(None)`: the kernel does not apply (not a
    /// GPU, or `n` too large).
    #[allow(clippy::type_complexity)]
    fn kernel_top(
        &mut self,
        scores: &Tensor,
        mask: &[u32],
        add: Option<&Tensor>,
        n: usize,
    ) -> candle_core::Result<Option<Option<(Vec<f32>, Vec<u32>)>>> {
        if self.device.is_cpu() || !crate::kernels::cuda::enabled() {
            return Ok(None);
        }
        let mask = self.mask_row(mask)?;
        let Some(out) = crate::kernels::cuda::topk(scores, mask.as_ref(), add, n)? else {
            return Ok(None);
        };
        let rows = out.len() / (2 * n + 1);
        let (mut vals, mut ids) = (Vec::with_capacity(rows * n), Vec::with_capacity(rows * n));
        for row in out.chunks_exact(2 * n + 1) {
            if row[2 * n] != 0 {
                return Ok(Some(None));
            }
            vals.extend(row[..n].iter().map(|&b| f32::from_bits(b)));
            ids.extend_from_slice(&row[n..2 * n]);
        }
        Ok(Some(Some((vals, ids))))
    }

    /// Index of each row's maximum `max`, the first one on ties, as `[rows, 1]` u32.
    fn first_argmax(&self, s: &Tensor, max: &Tensor) -> candle_core::Result<Tensor> {
        let rows = s.dim(0)?;
        let shape = (rows, self.vocab);
        let none = Tensor::full(self.vocab as u32, shape, &self.device)?;
        s.broadcast_eq(max)?
            .where_cond(&self.arange.broadcast_as(shape)?, &none)?
            .min_keepdim(D::Minus1)
    }

    /// Whether any row of `s` holds a NaN (the device's max does not rank NaN as the host
    /// does): per-row sums, one block per row (a single whole-tensor reduction ran on one
    /// block: 8 ms for 256 x 53.7k on a datacenter GPU). A row with both infinities also reads
    /// as NaN: the host path then decides, exactly.
    fn has_nan(s: &Tensor) -> candle_core::Result<bool> {
        let sums = s.sum_keepdim(D::Minus1)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(sums.iter().any(|v| v.is_nan()))
    }

    /// Greedy: the argmax of each row of `logits` (f32 `[rows, vocab]`) after the mask,
    /// first index on ties. `None`: the scores hold NaN (the host decides).
    pub(crate) fn greedy(
        &mut self,
        logits: &Tensor,
        mask: &[u32],
    ) -> candle_core::Result<Option<Vec<u32>>> {
        let logits = logits.to_dtype(DType::F32)?;
        let ids = match self.kernel_top(&logits, mask, None, 1)? {
            Some(Some((_, ids))) => ids,
            Some(None) => return Ok(None),
            None => {
                let s = self.masked(&logits, mask)?;
                if Self::has_nan(&s)? {
                    return Ok(None);
                }
                let max = s.max_keepdim(D::Minus1)?;
                self.first_argmax(&s, &max)?
                    .flatten_all()?
                    .to_vec1::<u32>()?
            }
        };
        Ok(ids
            .iter()
            .all(|&i| (i as usize) < self.vocab)
            .then_some(ids))
    }

    /// Beam search: per row of `log_probs` (f32 `[rows, vocab]`), after the mask and adding
    /// the row's running score, the `n` best `(value, token)` ranked by value descending,
    /// token ascending on ties, as `rows * n` values and tokens. `None` when a row has NaN or
    /// fewer than `n` finite values (the host handles those ties).
    pub(crate) fn beam_top(
        &mut self,
        log_probs: &Tensor,
        mask: &[u32],
        row_scores: &[f32],
        n: usize,
    ) -> candle_core::Result<Option<(Vec<f32>, Vec<u32>)>> {
        let rows = row_scores.len();
        let log_probs = log_probs.to_dtype(DType::F32)?;
        let run = Tensor::from_slice(row_scores, (rows, 1), &self.device)?;
        let (vals, ids) = match self.kernel_top(&log_probs, mask, Some(&run), n)? {
            Some(Some(top)) => top,
            Some(None) => return Ok(None),
            None => match self.candle_top(&log_probs, mask, &run, n)? {
                Some(top) => top,
                None => return Ok(None),
            },
        };
        let exact =
            vals.iter().all(|v| v.is_finite()) && ids.iter().all(|&i| (i as usize) < self.vocab);
        Ok(exact.then_some((vals, ids)))
    }

    /// [`Selector::beam_top`] through candle ops: `n` rounds of max / first argmax / knock
    /// out. `None`: a row holds NaN.
    fn candle_top(
        &mut self,
        log_probs: &Tensor,
        mask: &[u32],
        run: &Tensor,
        n: usize,
    ) -> candle_core::Result<Option<(Vec<f32>, Vec<u32>)>> {
        let shape = (run.dim(0)?, self.vocab);
        let s = self.masked(log_probs, mask)?;
        let mut cur = s.broadcast_add(run)?;
        if Self::has_nan(&cur)? {
            return Ok(None);
        }
        let ninf = Tensor::full(f32::NEG_INFINITY, shape, &self.device)?;
        let arange = self.arange.broadcast_as(shape)?;
        let (mut vals, mut ids) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let max = cur.max_keepdim(D::Minus1)?;
            let idx = self.first_argmax(&cur, &max)?;
            if i + 1 < n {
                cur = arange.broadcast_eq(&idx)?.where_cond(&ninf, &cur)?;
            }
            vals.push(max);
            ids.push(idx);
        }
        let vals = Tensor::cat(&vals, 1)?.flatten_all()?.to_vec1::<f32>()?;
        let ids = Tensor::cat(&ids, 1)?.flatten_all()?.to_vec1::<u32>()?;
        Ok(Some((vals, ids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_top_n_follow_the_host_order() {
        let dev = Device::Cpu;
        let rows = [
            vec![0.5f32, 2.0, 2.0, -1.0, 2.0, 0.0],
            vec![f32::NEG_INFINITY, 1.0, 3.0, 3.0, 0.5, 3.0],
        ];
        let flat: Vec<f32> = rows.concat();
        let t = Tensor::from_vec(flat, (2, 6), &dev).unwrap();
        let mut sel = Selector::new(&dev, 6).unwrap();
        assert_eq!(sel.greedy(&t, &[]).unwrap(), Some(vec![1, 2]));
        assert_eq!(sel.greedy(&t, &[1, 2]).unwrap(), Some(vec![4, 3]));
        let (v, i) = sel.beam_top(&t, &[3], &[0.0, 1.0], 3).unwrap().unwrap();
        assert_eq!(i, vec![1, 2, 4, 2, 5, 1]);
        assert_eq!(v, vec![2.0, 2.0, 2.0, 4.0, 4.0, 2.0]);
        // row 1 has only 4 finite values after masking two: the host decides
        assert!(sel.beam_top(&t, &[2, 3], &[0.0, 0.0], 5).unwrap().is_none());
        let nan = Tensor::from_vec(vec![1.0f32, f32::NAN, 0.0], (1, 3), &dev).unwrap();
        let mut sel = Selector::new(&dev, 3).unwrap();
        assert_eq!(sel.greedy(&nan, &[]).unwrap(), None);
    }
}
