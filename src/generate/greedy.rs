//! Greedy search (transformers' `_sample` with `do_sample=False`): processors on the raw
//! logits, then argmax (no softmax: it cannot change the argmax). A row is done at EOS or at
//! `max_length`; done rows leave the decoder batch.

use rayon::prelude::*;

use super::processors::Scratch;
use super::select::{self, Selector};
use super::{argmax, with_host_logits, GenerateError, Resolved};
use crate::model::DecoderState;

pub(crate) fn run(
    state: &mut dyn DecoderState,
    n_sources: usize,
    r: &Resolved,
    vocab: usize,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    let procs = &r.processors;
    let mut seqs: Vec<Vec<u32>> = (0..n_sources)
        .map(|_| {
            let mut v = Vec::with_capacity(r.max_length);
            v.push(r.decoder_start);
            v
        })
        .collect();
    // Row i of the decoder is source active[i].
    let mut active: Vec<usize> = (0..n_sources).collect();
    let mut feed: Vec<u32> = vec![r.decoder_start; n_sources];
    let mut chosen: Vec<u32> = Vec::with_capacity(n_sources);
    let mut keep: Vec<u32> = Vec::with_capacity(n_sources);
    let mut selector: Option<Selector> = None;

    while !active.is_empty() {
        let logits = state.step(&feed)?;
        // all rows have the same length: the processors of row 0 are everyone's
        let cur_len = seqs[active[0]].len();
        chosen.clear();
        if let Some(sel) = select::selector(&mut selector, &logits, vocab)? {
            if let Some(mask) = procs.uniform_mask(cur_len) {
                if let Some(ids) = sel.greedy(&logits, &mask)? {
                    chosen = ids;
                }
            }
        }
        if chosen.len() != active.len() {
            with_host_logits(&logits, active.len(), vocab, |data| {
                active
                    .par_iter()
                    .zip(data.par_chunks_exact(vocab))
                    .map_init(
                        || (Vec::new(), Scratch::default()),
                        |(row_buf, scratch), (&src, raw)| {
                            let ids = &seqs[src];
                            if procs.active_at(ids.len()) {
                                row_buf.clear();
                                row_buf.extend_from_slice(raw);
                                procs.apply(ids, row_buf, scratch);
                                argmax(row_buf)
                            } else {
                                argmax(raw)
                            }
                        },
                    )
                    .collect_into_vec(&mut chosen);
            })?;
        }
        drop(logits);

        keep.clear();
        feed.clear();
        let mut next_active = Vec::with_capacity(active.len());
        for (row, (&src, &tok)) in active.iter().zip(&chosen).enumerate() {
            let seq = &mut seqs[src];
            seq.push(tok);
            let done = r.eos.contains(&tok) || seq.len() >= r.max_length;
            if !done {
                keep.push(row as u32);
                feed.push(tok);
                next_active.push(src);
            }
        }
        if next_active.is_empty() {
            break;
        }
        if next_active.len() < active.len() {
            state.select_rows(&keep)?;
        }
        active = next_active;
    }
    Ok(seqs.into_iter().map(|mut s| s.split_off(1)).collect())
}
