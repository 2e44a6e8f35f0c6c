//! Summarization without truncation: sentence-boundary chunks that fit the model's window,
//! summarized batched across articles, partial summaries summarized again (map-reduce) until
//! one brief remains.

use std::time::Instant;

use serde_json::json;

use super::translate::{round, run_units, split_to_fit, Unit, UnitOutput};
use super::{report::Stats, ArticleResult, Lengths, Options, TextGenerator};

/// Reduce rounds before giving up on an article (each round at least halves the text).
const MAX_ROUNDS: usize = 12;

/// English tokens per word, to turn `--summary-words` into token counts.
const TOKENS_PER_WORD: f64 = 1.35;

/// Cut `text` into chunks of whole sentences whose encodings fit `window`.
/// Returns the chunks and whether any sentence had to be cut itself.
fn chunk(
    text: &str,
    model: &dyn TextGenerator,
    window: usize,
) -> Result<(Vec<Vec<u32>>, bool), String> {
    let mut sentences: Vec<String> = Vec::new();
    for para in text.split('\n').filter(|p| !p.trim().is_empty()) {
        for r in crate::text::split_sentences(para) {
            let s = para[r].trim();
            if !s.is_empty() {
                sentences.push(s.to_string());
            }
        }
    }
    if sentences.is_empty() {
        return Err("nothing to summarize (no sentences)".into());
    }
    let refs: Vec<&str> = sentences.iter().map(|s| s.as_str()).collect();
    let enc = model.encode(&refs).map_err(|e| e.to_string())?;
    // Prefix and special tokens are paid once per chunk.
    let overhead = model
        .encode(&[""])
        .map_err(|e| e.to_string())?
        .pop()
        .map_or(0, |v| v.len());
    let mut cut_sentence = false;
    let mut chunks: Vec<Vec<u32>> = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut cur_len = overhead;
    let flush = |cur: &mut Vec<&str>, chunks: &mut Vec<Vec<u32>>| -> Result<(), String> {
        if cur.is_empty() {
            return Ok(());
        }
        let joined = cur.join(" ");
        let ids = model
            .encode(&[joined.as_str()])
            .map_err(|e| e.to_string())?
            .pop()
            .unwrap_or_default();
        if ids.len() <= window {
            chunks.push(ids);
        } else {
            // Token counts of a join can exceed the sum of its parts: re-cut this chunk.
            let (pieces, _) = split_to_fit(&joined, model, window).map_err(|e| e.to_string())?;
            chunks.extend(pieces.into_iter().map(|p| p.1));
        }
        cur.clear();
        Ok(())
    };
    for (s, ids) in refs.iter().zip(&enc) {
        let n = ids.len().saturating_sub(overhead);
        if overhead + n > window {
            flush(&mut cur, &mut chunks)?;
            cur_len = overhead;
            let (pieces, _) = split_to_fit(s, model, window).map_err(|e| e.to_string())?;
            cut_sentence = true;
            chunks.extend(pieces.into_iter().map(|p| p.1));
            continue;
        }
        if cur_len + n > window {
            flush(&mut cur, &mut chunks)?;
            cur_len = overhead;
        }
        cur.push(s);
        cur_len += n;
    }
    flush(&mut cur, &mut chunks)?;
    Ok((chunks, cut_sentence))
}

/// Per-document progress of the map-reduce rounds of [`summarize_docs`].
struct Progress {
    /// Text still to be summarized per document.
    pending: Vec<Option<String>>,
    /// Rounds done.
    rounds: Vec<usize>,
    /// Chunks of the first round (the article itself).
    first_chunks: Vec<usize>,
    tok_in: Vec<usize>,
    tok_out: Vec<usize>,
}

/// One round's work: every chunk as a unit, and each document's number of chunks.
struct Round {
    units: Vec<Unit>,
    n_chunks: Vec<usize>,
}

pub fn summarize_docs(
    english: &[Option<String>],
    model: &dyn TextGenerator,
    opts: &Options,
    results: &mut [Result<ArticleResult, String>],
    stats: &mut Stats,
) {
    let window = model.max_source_tokens();
    let t0 = Instant::now();
    let n = english.len();
    let mut progress = Progress {
        pending: english.to_vec(),
        rounds: vec![0usize; n],
        first_chunks: vec![0usize; n],
        tok_in: vec![0usize; n],
        tok_out: vec![0usize; n],
    };
    let final_lengths = opts.summary_words.map(|(lo, hi)| Lengths {
        min_new_tokens: Some((lo as f64 * TOKENS_PER_WORD).ceil() as usize),
        max_new_tokens: Some((hi as f64 * TOKENS_PER_WORD).ceil() as usize),
    });
    loop {
        let round = progress.chunk_pending(model, window, results);
        if round.units.is_empty() {
            break;
        }
        let outs = run_round(&round, model, opts, window, final_lengths);
        progress.collect(&round, outs, results);
    }
    let secs = t0.elapsed().as_secs_f64();
    progress.report(english, secs, results, stats);
}

impl Progress {
    /// Takes every pending text of a document still ok and cuts it into chunks (the
    /// round's units); fails documents past [`MAX_ROUNDS`] or whose text cannot be chunked.
    fn chunk_pending(
        &mut self,
        model: &dyn TextGenerator,
        window: usize,
        results: &mut [Result<ArticleResult, String>],
    ) -> Round {
        let mut units: Vec<Unit> = Vec::new();
        let mut n_chunks = vec![0usize; self.pending.len()];
        for (di, text) in self.pending.iter_mut().enumerate() {
            let Some(t) = text.take() else { continue };
            if results[di].is_err() {
                continue;
            }
            if self.rounds[di] >= MAX_ROUNDS {
                results[di] = Err(format!("summary did not converge in {MAX_ROUNDS} rounds"));
                continue;
            }
            match chunk(&t, model, window) {
                Ok((chunks, cut)) => {
                    if self.rounds[di] == 0 {
                        self.first_chunks[di] = chunks.len();
                        if cut {
                            if let Ok(r) = &mut results[di] {
                                r.warnings.push("summary-sentence-split: a sentence longer than the summarizer's window was cut".into());
                            }
                        }
                    }
                    n_chunks[di] = chunks.len();
                    for ids in chunks {
                        units.push(Unit {
                            doc: di,
                            sent: 0,
                            ids,
                        });
                    }
                }
                Err(e) => results[di] = Err(format!("summarizing: {e}")),
            }
        }
        Round { units, n_chunks }
    }

    /// Counts the round's tokens and turns its outputs into each document's final summary
    /// (text in one chunk) or next round's text (partial summaries joined); a failed unit
    /// fails its document.
    fn collect(
        &mut self,
        round: &Round,
        outs: Vec<UnitOutput>,
        results: &mut [Result<ArticleResult, String>],
    ) {
        let mut partial: Vec<Vec<String>> = vec![Vec::new(); self.pending.len()];
        for (u, out) in round.units.iter().zip(outs) {
            match out {
                Ok((text, n)) => {
                    self.tok_in[u.doc] += u.ids.len();
                    self.tok_out[u.doc] += n;
                    partial[u.doc].push(text);
                }
                Err(e) => {
                    if results[u.doc].is_ok() {
                        results[u.doc] = Err(format!("summarization failed: {e}"));
                    }
                }
            }
        }
        for (di, parts) in partial.into_iter().enumerate() {
            if parts.is_empty() || results[di].is_err() {
                continue;
            }
            self.rounds[di] += 1;
            if round.n_chunks[di] == 1 {
                if let Ok(r) = &mut results[di] {
                    r.summary = Some(parts.join(" ").trim().to_string());
                }
            } else {
                self.pending[di] = Some(parts.join(" "));
            }
        }
    }

    /// Stage statistics, and per summarized document its chunking warning, its share of
    /// the stage time (by source tokens) and its token counts.
    fn report(
        &self,
        english: &[Option<String>],
        secs: f64,
        results: &mut [Result<ArticleResult, String>],
        stats: &mut Stats,
    ) {
        let (tok_in, tok_out) = (&self.tok_in, &self.tok_out);
        stats.add_stage("summarize", tok_in.iter().sum(), tok_out.iter().sum(), secs);
        let total_in = tok_in.iter().sum::<usize>().max(1);
        for (di, r) in results.iter_mut().enumerate() {
            let Ok(r) = r else { continue };
            if english[di].is_none() {
                continue;
            }
            if self.first_chunks[di] > 1 {
                r.warnings.push(format!(
                    "chunked: {} chunks, {} map-reduce rounds",
                    self.first_chunks[di], self.rounds[di]
                ));
            }
            r.timings_ms.insert(
                "summarize".into(),
                json!(round(secs * 1e3 * tok_in[di] as f64 / total_in as f64)),
            );
            r.tokens.insert("summarize_in".into(), json!(tok_in[di]));
            r.tokens.insert("summarize_out".into(), json!(tok_out[di]));
        }
    }
}

/// Runs one round's units, returning an output per unit in order.
///
/// A document whose text is one chunk gets its final summary in this round (lengths from
/// `final_lengths`). Partial summaries of a document in n chunks get at most window / 2n
/// tokens each (at least 16), so the joined partials fit in about half a window and every
/// round shrinks the text geometrically, whatever the model writes.
fn run_round(
    round: &Round,
    model: &dyn TextGenerator,
    opts: &Options,
    window: usize,
    final_lengths: Option<Lengths>,
) -> Vec<UnitOutput> {
    let (units, n_chunks) = (&round.units, &round.n_chunks);
    let (finals, partials): (Vec<usize>, Vec<usize>) =
        (0..units.len()).partition(|&i| n_chunks[units[i].doc] == 1);
    let mut outs: Vec<Option<UnitOutput>> = (0..units.len()).map(|_| None).collect();
    for (group, is_final) in [(finals, true), (partials, false)] {
        if group.is_empty() {
            continue;
        }
        let members: Vec<Unit> = group
            .iter()
            .map(|&i| Unit {
                doc: units[i].doc,
                sent: units[i].sent,
                ids: units[i].ids.clone(),
            })
            .collect();
        let res = run_units(&members, model, opts, &|batch: &[&Unit]| {
            if is_final {
                final_lengths.unwrap_or_default()
            } else {
                let cap = batch
                    .iter()
                    .map(|u| (window / (2 * n_chunks[u.doc].max(1))).max(16))
                    .min()
                    .unwrap_or(16);
                Lengths {
                    min_new_tokens: None,
                    max_new_tokens: Some(cap),
                }
            }
        });
        for (&i, r) in group.iter().zip(res) {
            outs[i] = Some(r);
        }
    }
    outs.into_iter()
        .map(|o| o.unwrap_or_else(|| Err("not run".into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{process_batch, report::Stats, Options, Stages};
    use crate::io::Document;
    use crate::testkit::pipeline_mock::Mock;
    use serde_json::Map;

    #[test]
    fn long_articles_are_map_reduced_within_the_window() {
        // 40 sentences of 6 words: ~280 tokens against a 30-token window.
        let text: String = (0..40)
            .map(|i| format!("Câu số {i} có sáu chữ. "))
            .collect();
        let docs = vec![
            Document {
                id: "long".into(),
                text: text.clone(),
                extra: Map::new(),
                warnings: Vec::new(),
            },
            Document {
                id: "short".into(),
                text: "Ngắn gọn thôi.".into(),
                extra: Map::new(),
                warnings: Vec::new(),
            },
        ];
        let m = Mock::new(30, Some(5));
        let opts = Options {
            stages: Stages::Summarize,
            ..Options::default()
        };
        let mut stats = Stats::default();
        let res = process_batch(&docs, &opts, None, Some(&m), &mut stats);
        let long = res[0].as_ref().unwrap();
        // The mock keeps the first 5 words of each chunk; one brief remains.
        assert_eq!(long.summary.as_deref(), Some("Câu số 0 có sáu"));
        assert!(
            long.warnings.iter().any(|w| w.starts_with("chunked:")),
            "{:?}",
            long.warnings
        );
        assert_eq!(
            res[1].as_ref().unwrap().summary.as_deref(),
            Some("Ngắn gọn thôi.")
        );
    }
}
