//! Beam search with the bookkeeping of transformers 5.x `_beam_search` (vectorized beam
//! search, no `BeamScorer`), per source:
//!
//! - scores: log_softmax of the logits, then the processors, plus the beam's running score;
//! - the top `max(2, 1 + n_eos) * K` candidates over all `K * vocab` continuations;
//! - a candidate "hits" when its token is an EOS or the length reaches `max_length`;
//! - running beams: the top K candidates after adding -1e9 to the hits;
//! - finished hypotheses: only hits among the top K candidates may enter, scored
//!   `sum_logprobs / generated_len ** length_penalty` (generated_len counts the new token,
//!   not the decoder start), merged with the K finished so far, best K kept;
//! - a source is done when max_length is reached, when `early_stopping=true` and its K
//!   slots are finished, or when the early-stop heuristic says no running beam can beat the
//!   worst finished one. transformers keeps a done source in the batch until the whole batch
//!   stops, but nothing can change its finished set any more, so we drop its rows instead.
//!
//! All float arithmetic is f32 in the same order as transformers' tensor ops (including the
//! -1e9 penalties), so that ties and near-ties resolve the same way.

use candle_core::Tensor;
use rayon::prelude::*;

use super::processors::{log_softmax_shift, Scratch};
use super::select::{self, Selector};
use super::{ranks_above, with_host_logits, EarlyStopping, GenerateError, Resolved};
use crate::model::DecoderState;

const NEG_1E9: f32 = -1.0e9;

/// Per-source beam state. Token buffers are `K * max_length`, one slot per hypothesis, the
/// decoder start token included; running hypotheses all have the current length.
struct Item {
    src: usize,
    run_tok: Vec<u32>,
    run_score: Vec<f32>,
    fin_tok: Vec<u32>,
    fin_len: Vec<usize>,
    fin_score: Vec<f32>,
    fin_done: Vec<bool>,
    /// transformers' `is_early_stop_heuristic_unsatisfied` (sticky once false).
    unsatisfied: bool,
    /// Nothing can change this source's finished hypotheses any more.
    done: bool,
    // Per-step scratch, kept so that a step allocates nothing.
    top: Vec<(f32, usize)>,
    cands: Vec<Cand>,
    sel: Vec<(f32, usize)>,
    merged: Vec<(f32, usize)>,
    did_finish: Vec<bool>,
    scratch: Scratch,
    // Double buffers for the next step (swapped, never reallocated).
    run_tok_next: Vec<u32>,
    run_score_next: Vec<f32>,
    fin_tok_next: Vec<u32>,
    fin_len_next: Vec<usize>,
    fin_score_next: Vec<f32>,
    fin_done_next: Vec<bool>,
}

impl Item {
    fn new(src: usize, k: usize, max_len: usize, start: u32, n_keep: usize) -> Self {
        let mut run_tok = vec![0u32; k * max_len];
        for b in 0..k {
            run_tok[b * max_len] = start;
        }
        let mut run_score = vec![NEG_1E9; k];
        // Only the first beam is live at the start, so the K copies don't pick the same tokens.
        run_score[0] = 0.0;
        Item {
            src,
            fin_tok: run_tok.clone(),
            fin_len: vec![1; k],
            fin_score: vec![NEG_1E9; k],
            fin_done: vec![false; k],
            unsatisfied: true,
            done: false,
            top: Vec::with_capacity(n_keep + 1),
            cands: Vec::with_capacity(n_keep),
            sel: Vec::with_capacity(k + 1),
            merged: Vec::with_capacity(k + 1),
            did_finish: Vec::with_capacity(n_keep),
            scratch: Scratch::default(),
            run_tok_next: run_tok.clone(),
            run_score_next: run_score.clone(),
            fin_tok_next: run_tok.clone(),
            fin_len_next: vec![1; k],
            fin_score_next: vec![NEG_1E9; k],
            fin_done_next: vec![false; k],
            run_tok,
            run_score,
        }
    }
}

#[derive(Clone, Copy)]
struct Cand {
    value: f32,
    beam: usize,
    token: u32,
    hit: bool,
}

/// Keeps `top` as the `cap` best `(value, index)` pairs pushed so far, best first; on equal
/// values the one pushed first ranks first.
#[inline]
fn push_top(top: &mut Vec<(f32, usize)>, cap: usize, v: f32, idx: usize) {
    if top.len() == cap {
        match top.last() {
            Some(&(last, _)) if !ranks_above(v, last) => return,
            None => return,
            _ => {}
        }
        top.pop();
    }
    let pos = top
        .iter()
        .position(|&(x, _)| ranks_above(v, x))
        .unwrap_or(top.len());
    top.insert(pos, (v, idx));
}

/// Step-invariant parameters of one search.
struct Params<'a> {
    k: usize,
    ml: usize,
    vocab: usize,
    n_keep: usize,
    es: EarlyStopping,
    eos: &'a [u32],
    procs: &'a super::processors::Processors,
}

/// Per-step values shared by all sources.
struct StepCtx {
    cur_len: usize,
    max_reached: bool,
    /// `generated_len ** length_penalty` of a hypothesis ending with this step's token.
    denom: f32,
    /// Same for the length the early-stop heuristic assumes for the best running beam.
    hyp_denom: f32,
}

pub(crate) fn run(
    state: &mut dyn DecoderState,
    n_sources: usize,
    r: &Resolved,
    vocab: usize,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    let p = Params::new(r, vocab)?;
    let mut search = Search::new(&p, n_sources, r.decoder_start);
    state.reserve_rows(n_sources * p.k);
    while !search.active.is_empty() {
        let logits = state.step(&search.feed)?;
        search.score(logits, r.length_penalty)?;
        if search.advance() {
            state.select_rows(&search.parents)?;
        }
    }
    Ok(search.results)
}

impl<'a> Params<'a> {
    fn new(r: &'a Resolved, vocab: usize) -> Result<Self, GenerateError> {
        let k = r.num_beams;
        let n_keep = 2usize.max(1 + r.eos.len()) * k;
        if n_keep > k * vocab {
            return Err(GenerateError::Config(format!(
                "beam search keeps {n_keep} candidates per step but there are only {} \
                 (num_beams {k} x vocabulary {vocab})",
                k * vocab
            )));
        }
        Ok(Params {
            k,
            ml: r.max_length,
            vocab,
            n_keep,
            es: r.early_stopping,
            eos: &r.eos,
            procs: &r.processors,
        })
    }
}

/// The search's state between steps, and its buffers (reused every step).
struct Search<'p, 'a> {
    p: &'p Params<'a>,
    /// Sources still searching.
    active: Vec<Item>,
    results: Vec<Vec<u32>>,
    /// The next step's token per state row, and each row's parent row.
    feed: Vec<u32>,
    parents: Vec<u32>,
    /// The first step runs one row per source: its K beams are still identical (same start
    /// token, same state), so the row's log-probs are copied to the K beams on the host and
    /// the state is expanded to K rows by the first reorder (as CTranslate2 does; the
    /// candidates are the same as stepping K identical rows).
    expanded: bool,
    cur_len: usize,
    lp_buf: Vec<f32>,
    selector: Option<Selector>,
    row_scores: Vec<f32>,
    cand_vals: Vec<f32>,
    cand_toks: Vec<u32>,
}

impl<'p, 'a> Search<'p, 'a> {
    fn new(p: &'p Params<'a>, n_sources: usize, start: u32) -> Self {
        Search {
            p,
            active: (0..n_sources)
                .map(|s| Item::new(s, p.k, p.ml, start, p.n_keep))
                .collect(),
            results: vec![Vec::new(); n_sources],
            feed: vec![start; n_sources],
            parents: Vec::with_capacity(n_sources * p.k),
            expanded: p.k == 1,
            cur_len: 1,
            lp_buf: Vec::new(),
            selector: None,
            row_scores: Vec::new(),
            cand_vals: Vec::new(),
            cand_toks: Vec::new(),
        }
    }

    /// State rows of this step.
    fn rows(&self) -> usize {
        if self.expanded {
            self.active.len() * self.p.k
        } else {
            self.active.len()
        }
    }

    /// Score one step's logits: every active source picks its next beams.
    fn score(&mut self, logits: Tensor, lp: f64) -> Result<(), GenerateError> {
        let p = self.p;
        let on_device = self.device_candidates(&logits)?;
        // CPU, processors that only mask tokens: candidates straight from the raw logits.
        let fused_mask = if !on_device && logits.device().is_cpu() {
            p.procs.uniform_mask(self.cur_len)
        } else {
            None
        };
        let ctx = step_ctx(self.cur_len, p, lp);
        if let Some(mask) = &fused_mask {
            let (rows, expanded) = (self.rows(), self.expanded);
            let per = if expanded { p.k * p.vocab } else { p.vocab };
            let active = &mut self.active;
            with_host_logits(&logits, rows, p.vocab, |data| {
                active
                    .par_iter_mut()
                    .zip(data.par_chunks_exact(per))
                    .for_each(|(item, raw)| {
                        top_from_logits(item, raw, expanded, mask, p);
                        step_rest(item, p, &ctx);
                    })
            })?;
        } else if on_device {
            drop(logits);
            let per = p.k * p.n_keep;
            self.active
                .par_iter_mut()
                .zip(self.cand_vals.par_chunks_exact(per))
                .zip(self.cand_toks.par_chunks_exact(per))
                .for_each(|((item, vals), toks)| {
                    top_from_candidates(item, vals, toks, p);
                    step_rest(item, p, &ctx);
                });
        } else {
            self.log_probs_to_host(logits)?;
            self.active
                .par_iter_mut()
                .zip(self.lp_buf.par_chunks_exact_mut(p.k * p.vocab))
                .for_each(|(item, scores)| step_item(item, scores, p, &ctx));
        }
        Ok(())
    }

    /// On an accelerator (expanded steps, uniform processors): only each row's best
    /// n_keep candidates come back (see select.rs), into `cand_vals`/`cand_toks`.
    fn device_candidates(&mut self, logits: &Tensor) -> Result<bool, GenerateError> {
        if !self.expanded {
            return Ok(false);
        }
        let Some(sel) = select::selector(&mut self.selector, logits, self.p.vocab)? else {
            return Ok(false);
        };
        let Some(mask) = self.p.procs.uniform_mask(self.cur_len) else {
            return Ok(false);
        };
        self.row_scores.clear();
        let scores = self
            .active
            .iter()
            .flat_map(|it| it.run_score.iter().copied());
        self.row_scores.extend(scores);
        let lsm = log_softmax_dev(logits)?;
        match sel.beam_top(&lsm, &mask, &self.row_scores, self.p.n_keep)? {
            Some((v, t)) => {
                (self.cand_vals, self.cand_toks) = (v, t);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The step's log-probs into `lp_buf`, `k` rows per source (before the expansion, a
    /// source's one row copied to its `k` beams).
    fn log_probs_to_host(&mut self, logits: Tensor) -> Result<(), GenerateError> {
        let (k, vocab, rows) = (self.p.k, self.p.vocab, self.rows());
        let lp_buf = &mut self.lp_buf;
        lp_buf.resize(self.active.len() * k * vocab, 0.0);
        if logits.device().is_cpu() {
            // The one copy of the step's logits: log_softmax straight into the host buffer.
            with_host_logits(&logits, rows, vocab, |data| {
                log_softmax_rows(data, &mut lp_buf[..rows * vocab], vocab)
            })?;
        } else {
            // On an accelerator, normalize there and bring back the result only.
            let lsm = log_softmax_dev(&logits)?;
            with_host_logits(&lsm, rows, vocab, |data| {
                lp_buf[..rows * vocab].copy_from_slice(data)
            })?;
        }
        drop(logits);
        if !self.expanded {
            // row s -> rows s*k .. s*k+k, from the back so no unread row is overwritten
            for s in (0..rows).rev() {
                for b in (0..k).rev() {
                    let dst = (s * k + b) * vocab;
                    if dst != s * vocab {
                        lp_buf.copy_within(s * vocab..(s + 1) * vocab, dst);
                    }
                }
            }
        }
        Ok(())
    }

    /// Finished sources leave with their result; the rest's chosen beams become the next
    /// step's `feed` and `parents`. Returns whether a next step runs.
    fn advance(&mut self) -> bool {
        let k = self.p.k;
        self.parents.clear();
        self.feed.clear();
        for (ii, item) in self.active.iter().enumerate() {
            if item.done {
                let len = item.fin_len[0];
                self.results[item.src] = item.fin_tok[1..len].to_vec();
            } else {
                for &(_, ci) in &item.sel {
                    let c = item.cands[ci];
                    // before the expansion, source ii has one state row (all beams equal)
                    let parent = if self.expanded { ii * k + c.beam } else { ii };
                    self.parents.push(parent as u32);
                    self.feed.push(c.token);
                }
            }
        }
        self.active.retain(|item| !item.done);
        self.cur_len += 1;
        let more = !self.active.is_empty();
        if more {
            self.expanded = true;
        }
        more
    }
}

fn step_ctx(cur_len: usize, p: &Params, lp: f64) -> StepCtx {
    StepCtx {
        cur_len,
        max_reached: cur_len + 1 >= p.ml,
        denom: (cur_len as f64).powf(lp) as f32,
        hyp_denom: {
            let len = if p.es == EarlyStopping::Never && lp > 0.0 {
                p.ml - 1
            } else {
                cur_len
            };
            (len as f64).powf(lp) as f32
        },
    }
}

/// Step a. from the raw logits of one source when the processors only mask tokens (`mask`,
/// sorted): per row the log-softmax shift, then `(x - shift) + beam score`, -inf for masked
/// tokens: the values, candidates and order of the host path (log-softmax rows, processors,
/// scan) without writing the log-probabilities. Before the expansion `raw` is the source's
/// one row, shared by its K (identical) beams.
fn top_from_logits(item: &mut Item, raw: &[f32], expanded: bool, mask: &[u32], p: &Params) {
    let vocab = p.vocab;
    item.top.clear();
    let mut shift = f32::NAN;
    for b in 0..p.k {
        let row = if expanded {
            &raw[b * vocab..(b + 1) * vocab]
        } else {
            &raw[..vocab]
        };
        if expanded || b == 0 {
            shift = log_softmax_shift(row);
        }
        scan_row(
            &mut item.top,
            p.n_keep,
            row,
            shift,
            item.run_score[b],
            mask,
            b * vocab,
        );
    }
}

/// Pushes `(x - shift) + s` of every token of `row` (-inf where `mask` has it) into `top`,
/// indices from `base`, in token order.
fn scan_row(
    top: &mut Vec<(f32, usize)>,
    cap: usize,
    row: &[f32],
    shift: f32,
    s: f32,
    mask: &[u32],
    base: usize,
) {
    let value = |t: usize, x: f32| {
        if mask.binary_search(&(t as u32)).is_ok() {
            f32::NEG_INFINITY
        } else {
            (x - shift) + s
        }
    };
    let mut t = 0;
    while t < row.len() && top.len() < cap {
        push_top(top, cap, value(t, row[t]), base + t);
        t += 1;
    }
    let floor = |top: &[(f32, usize)]| top.last().map_or(f32::NAN, |e| e.0);
    // Blocks of 8: skip those with no value above the list's last entry (most of them).
    // Needs ordered comparisons: no NaN anywhere (a finite shift rules out NaN and inf in
    // the row).
    if shift.is_finite() && !s.is_nan() && !floor(top).is_nan() {
        while t + 8 <= row.len() {
            let f = floor(top);
            let block = &row[t..t + 8];
            if block.iter().fold(false, |a, &x| a | ((x - shift) + s > f)) {
                for (j, &x) in block.iter().enumerate() {
                    push_top(top, cap, value(t + j, x), base + t + j);
                }
            }
            t += 8;
        }
    }
    for (j, &x) in row[t..].iter().enumerate() {
        push_top(top, cap, value(t + j, x), base + t + j);
    }
}

/// Log-softmax of each `vocab`-wide row of `data` into `out`, rows in parallel.
fn log_softmax_rows(data: &[f32], out: &mut [f32], vocab: usize) {
    data.par_chunks_exact(vocab)
        .zip(out.par_chunks_exact_mut(vocab))
        .for_each(|(raw, out)| {
            let shift = log_softmax_shift(raw);
            for (o, &x) in out.iter_mut().zip(raw) {
                *o = x - shift;
            }
        });
}

/// log_softmax over the vocabulary on the logits' device. On the CPU (device selection is
/// forced there only in tests) with the host path's arithmetic, so both paths see the same
/// values.
fn log_softmax_dev(logits: &candle_core::Tensor) -> Result<candle_core::Tensor, GenerateError> {
    if !logits.device().is_cpu() {
        return Ok(candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?);
    }
    let (rows, vocab) = logits.dims2()?;
    let mut out = vec![0f32; rows * vocab];
    with_host_logits(logits, rows, vocab, |data| {
        log_softmax_rows(data, &mut out, vocab)
    })?;
    Ok(candle_core::Tensor::from_vec(
        out,
        (rows, vocab),
        logits.device(),
    )?)
}

/// One beam-search step of one source; `scores` are its K rows of log-probabilities.
fn step_item(item: &mut Item, scores: &mut [f32], p: &Params, ctx: &StepCtx) {
    let (vocab, cur_len, ml) = (p.vocab, ctx.cur_len, p.ml);
    if p.procs.active_at(cur_len) {
        for (b, row) in scores.chunks_exact_mut(vocab).enumerate() {
            let ids = &item.run_tok[b * ml..b * ml + cur_len];
            p.procs.apply(ids, row, &mut item.scratch);
        }
    }

    top_from_scores(item, scores, p);
    step_rest(item, p, ctx);
}

/// Step a. on the host: the top candidates over all beams' continuations.
fn top_from_scores(item: &mut Item, scores: &[f32], p: &Params) {
    let vocab = p.vocab;
    item.top.clear();
    for (b, row) in scores.chunks_exact(vocab).enumerate() {
        let s = item.run_score[b];
        // Fast path: once the list is full, most values are not above its last entry.
        let mut floor = item
            .top
            .last()
            .map(|e| e.0)
            .filter(|_| item.top.len() == p.n_keep);
        for (t, &x) in row.iter().enumerate() {
            let v = x + s;
            if let Some(f) = floor {
                if !ranks_above(v, f) {
                    continue;
                }
            }
            push_top(&mut item.top, p.n_keep, v, b * vocab + t);
            if item.top.len() == p.n_keep {
                floor = item.top.last().map(|e| e.0);
            }
        }
    }
}

/// Step a. from the rows' own top candidates (device selection): each row's best `n_keep`
/// `(value, token)`, ranked value descending, token ascending. Pushed row by row in that
/// order, they rank exactly as the full rows would (the same total order).
fn top_from_candidates(item: &mut Item, vals: &[f32], toks: &[u32], p: &Params) {
    item.top.clear();
    for (b, (vs, ts)) in vals
        .chunks_exact(p.n_keep)
        .zip(toks.chunks_exact(p.n_keep))
        .enumerate()
    {
        for (&v, &t) in vs.iter().zip(ts) {
            push_top(&mut item.top, p.n_keep, v, b * p.vocab + t as usize);
        }
    }
}

/// Steps b. to e. of a beam-search step, from the candidates in `item.top`.
fn step_rest(item: &mut Item, p: &Params, ctx: &StepCtx) {
    let (k, ml, vocab, cur_len) = (p.k, p.ml, p.vocab, ctx.cur_len);
    item.cands.clear();
    for &(value, idx) in &item.top {
        let token = (idx % vocab) as u32;
        item.cands.push(Cand {
            value,
            beam: idx / vocab,
            token,
            hit: ctx.max_reached || p.eos.contains(&token),
        });
    }

    // b. running beams for the next step: hits pushed down by 1e9
    item.sel.clear();
    for (i, c) in item.cands.iter().enumerate() {
        let key = c.value + if c.hit { NEG_1E9 } else { 0.0 };
        push_top(&mut item.sel, k, key, i);
    }

    // c. finished hypotheses: merge the top-K hits into the K best so far
    let full = p.es == EarlyStopping::True && item.fin_done.iter().all(|&d| d);
    item.merged.clear();
    for slot in 0..k {
        push_top(&mut item.merged, k, item.fin_score[slot], slot);
    }
    item.did_finish.clear();
    for (i, c) in item.cands.iter().enumerate() {
        let did = c.hit && i < k;
        item.did_finish.push(did);
        let mut fs = c.value / ctx.denom;
        if full {
            fs += NEG_1E9;
        }
        if !item.unsatisfied {
            fs += NEG_1E9;
        }
        if !did {
            fs += NEG_1E9;
        }
        push_top(&mut item.merged, k, fs, k + i);
    }
    for (j, &(score, idx)) in item.merged.iter().enumerate() {
        let dst = &mut item.fin_tok_next[j * ml..(j + 1) * ml];
        if idx < k {
            let len = item.fin_len[idx];
            dst[..len].copy_from_slice(&item.fin_tok[idx * ml..idx * ml + len]);
            item.fin_len_next[j] = len;
            item.fin_done_next[j] = item.fin_done[idx];
        } else {
            let c = item.cands[idx - k];
            dst[..cur_len].copy_from_slice(&item.run_tok[c.beam * ml..c.beam * ml + cur_len]);
            dst[cur_len] = c.token;
            item.fin_len_next[j] = cur_len + 1;
            item.fin_done_next[j] = item.did_finish[idx - k];
        }
        item.fin_score_next[j] = score;
    }
    std::mem::swap(&mut item.fin_tok, &mut item.fin_tok_next);
    std::mem::swap(&mut item.fin_len, &mut item.fin_len_next);
    std::mem::swap(&mut item.fin_score, &mut item.fin_score_next);
    std::mem::swap(&mut item.fin_done, &mut item.fin_done_next);

    // d. new running hypotheses
    for (j, &(key, ci)) in item.sel.iter().enumerate() {
        let c = item.cands[ci];
        let dst = &mut item.run_tok_next[j * ml..(j + 1) * ml];
        dst[..cur_len].copy_from_slice(&item.run_tok[c.beam * ml..c.beam * ml + cur_len]);
        dst[cur_len] = c.token;
        item.run_score_next[j] = key;
    }
    std::mem::swap(&mut item.run_tok, &mut item.run_tok_next);
    std::mem::swap(&mut item.run_score, &mut item.run_score_next);

    // e. early-stop heuristic: can the best running beam still beat the worst finished?
    let best = item.run_score[0] / ctx.hyp_denom;
    let worst =
        item.fin_score.iter().copied().fold(
            f32::INFINITY,
            |a, b| if b < a || b.is_nan() { b } else { a },
        );
    let improvable = item
        .fin_done
        .iter()
        .any(|&d| best > if d { worst } else { NEG_1E9 });
    item.unsatisfied &= improvable;

    item.done = ctx.max_reached
        || !item.unsatisfied
        || (p.es == EarlyStopping::True && item.fin_done.iter().all(|&d| d));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused CPU scan against the host path (log-softmax rows, mask, scan) on rows with
    /// many exact ties, masked tokens, -inf, NaN and +inf entries, before and after expansion.
    #[test]
    fn fused_scan_matches_host_path() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let (k, vocab) = (3usize, 203usize);
        for case in 0..40 {
            let procs = crate::generate::processors::Processors {
                vocab_size: vocab,
                eos: vec![2],
                min_length: if case % 2 == 0 { 5 } else { 0 },
                suppress: if case % 3 == 0 { vec![7, 150] } else { vec![] },
                max_length: 10,
                ..Default::default()
            };
            let mask = procs.uniform_mask(1).unwrap();
            let n_keep = 2 * k;
            let p = Params {
                k,
                ml: 10,
                vocab,
                n_keep,
                es: EarlyStopping::True,
                eos: &[2],
                procs: &procs,
            };
            let expanded = case % 4 != 1;
            let rows = if expanded { k } else { 1 };
            let mut raw: Vec<f32> = (0..rows * vocab)
                .map(|_| (next() * 8.0).round() - 4.0) // few distinct values: ties
                .collect();
            match case % 5 {
                1 => raw[17] = f32::NEG_INFINITY,
                2 => raw[vocab / 2] = f32::NAN,
                3 => raw[5] = f32::INFINITY,
                _ => {}
            }
            let mut fused = Item::new(0, k, 10, 0, n_keep);
            let mut host = Item::new(0, k, 10, 0, n_keep);
            if case % 3 == 1 {
                for it in [&mut fused, &mut host] {
                    it.run_score = vec![-1.5, -1.5, -2.25];
                }
            }
            top_from_logits(&mut fused, &raw, expanded, &mask, &p);
            let mut scores = vec![0f32; k * vocab];
            for b in 0..k {
                let r = if expanded { b } else { 0 };
                log_softmax_rows(
                    &raw[r * vocab..(r + 1) * vocab],
                    &mut scores[b * vocab..(b + 1) * vocab],
                    vocab,
                );
                let ids = vec![0u32; 1];
                procs.apply(
                    &ids,
                    &mut scores[b * vocab..(b + 1) * vocab],
                    &mut host.scratch,
                );
            }
            top_from_scores(&mut host, &scores, &p);
            let bits = |it: &Item| -> Vec<(u32, usize)> {
                it.top.iter().map(|&(v, i)| (v.to_bits(), i)).collect()
            };
            assert_eq!(bits(&fused), bits(&host), "case {case}");
        }
    }

    #[test]
    fn push_top_keeps_best_first_and_first_on_ties() {
        let mut top = Vec::new();
        for (i, v) in [1.0, 5.0, 3.0, 5.0, 0.0, 4.0, 3.0].iter().enumerate() {
            push_top(&mut top, 4, *v, i);
        }
        assert_eq!(top, vec![(5.0, 1), (5.0, 3), (4.0, 5), (3.0, 2)]);
        let mut top = Vec::new();
        push_top(&mut top, 2, f32::NEG_INFINITY, 0);
        push_top(&mut top, 2, f32::NAN, 1);
        push_top(&mut top, 2, 1.0, 2);
        assert_eq!(top.len(), 2);
        assert!(top[0].0.is_nan());
        assert_eq!(top[1], (1.0, 2));
    }
}
