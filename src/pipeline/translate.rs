//! Translation over all sentences of a job batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::json;

use super::{report::Stats, ArticleResult, Lengths, Options, SentenceOut, TextGenerator};
use crate::batch::length_sorted_batches;
use crate::io::Document;

/// Translations rarely run past twice the source length; the cap keeps a model that never
/// emits EOS from running to its 512-token maximum on every sentence. Hitting it is reported.
fn max_new_for(src_len: usize) -> usize {
    2 * src_len + 16
}

/// Pieces of a text that fit the window (text and ids each), and how it was cut.
pub(crate) type Pieces = (Vec<(String, Vec<u32>)>, Option<&'static str>);

/// Output of one unit: (text, generated tokens), or the error of its batch.
pub(crate) type UnitOutput = Result<(String, usize), String>;

/// A piece of text to run through the model, and where its output goes.
pub(crate) struct Unit {
    /// Index of the owning document.
    pub doc: usize,
    /// Index of the owning sentence within the document ([`TITLE`] for the title).
    pub sent: usize,
    pub ids: Vec<u32>,
}

/// [`Unit::sent`] of a document's title.
const TITLE: usize = usize::MAX;

/// How warnings name the text of [`Unit::sent`]: "sentence N" or "the title".
fn text_name(sent: usize) -> String {
    if sent == TITLE {
        "the title".to_string()
    } else {
        format!("sentence {sent}")
    }
}

/// Split `text` into pieces whose encodings fit `max_tokens`, cutting at clause boundaries
/// (`,` `;` `:` and dashes) nearest the middle, then at spaces, then anywhere. Returns the
/// pieces with their ids and how the cut was made (`None` when no cut was needed).
pub(crate) fn split_to_fit(
    text: &str,
    model: &dyn TextGenerator,
    max_tokens: usize,
) -> Result<Pieces, super::PipelineError> {
    let mut out = Vec::new();
    let mut how: Option<&'static str> = None;
    let mut stack = vec![text.trim().to_string()];
    while let Some(t) = stack.pop() {
        let ids = model.encode(&[t.as_str()])?.pop().unwrap_or_default();
        let chars: Vec<(usize, char)> = t.char_indices().collect();
        if ids.len() <= max_tokens || chars.len() < 2 {
            out.push((t, ids));
            continue;
        }
        let mid = chars.len() / 2;
        let nearest = |pred: &dyn Fn(usize) -> bool| -> Option<usize> {
            (1..chars.len())
                .filter(|&i| pred(i))
                .min_by_key(|&i| i.abs_diff(mid))
        };
        // Cut after a clause mark that is followed by a space.
        let clause = nearest(&|i| {
            matches!(chars[i - 1].1, ',' | ';' | ':' | '–' | '—') && chars[i].1.is_whitespace()
        });
        let (cut, kind) = match clause {
            Some(i) => (i, "clause-split"),
            None => match nearest(&|i| chars[i].1.is_whitespace()) {
                Some(i) => (i, "word-split"),
                None => (mid, "char-split"),
            },
        };
        how = Some(match (how, kind) {
            (Some("char-split"), _) | (_, "char-split") => "char-split",
            (Some("word-split"), _) | (_, "word-split") => "word-split",
            _ => "clause-split",
        });
        let b = chars[cut].0;
        let (left, right) = (t[..b].trim().to_string(), t[b..].trim().to_string());
        // Right first on the stack so the left half comes out first.
        for part in [right, left] {
            if !part.is_empty() {
                stack.push(part);
            }
        }
    }
    Ok((out, how))
}

/// Run `units` through the model in length-sorted token-budget batches on `opts.workers`
/// workers. Returns per unit its output (text, generated tokens) or the batch's error.
pub(crate) fn run_units(
    units: &[Unit],
    model: &dyn TextGenerator,
    opts: &Options,
    lengths_for: &(dyn Fn(&[&Unit]) -> Lengths + Sync),
) -> Vec<UnitOutput> {
    let lens: Vec<usize> = units.iter().map(|u| u.ids.len()).collect();
    let batches = length_sorted_batches(&lens, opts.limits);
    let results: Mutex<Vec<Option<UnitOutput>>> =
        Mutex::new((0..units.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let workers = opts.workers.clamp(1, batches.len().max(1));
    // Several workers: each gets its own small rayon pool (one thread by default), so its
    // matrix products run single-threaded side by side instead of all workers splitting
    // every product over one shared pool (measured faster here: see README, Performance).
    let local_pool = || {
        (workers > 1 && opts.worker_threads > 0)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(opts.worker_threads)
                    .build()
                    .ok()
            })
            .flatten()
    };
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let pool = local_pool();
                let work = || loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(b) else { break };
                    let members: Vec<&Unit> = batch.iter().map(|&i| &units[i]).collect();
                    let sources: Vec<Vec<u32>> = members.iter().map(|u| u.ids.clone()).collect();
                    let out = model.generate(&sources, lengths_for(&members));
                    let mut res = results.lock().unwrap_or_else(|e| e.into_inner());
                    match out {
                        Ok(outs) if outs.len() == batch.len() => {
                            for (&i, o) in batch.iter().zip(outs) {
                                res[i] = Some(Ok(o));
                            }
                        }
                        Ok(outs) => {
                            let msg = format!(
                                "model returned {} outputs for {} sources",
                                outs.len(),
                                batch.len()
                            );
                            for &i in batch {
                                res[i] = Some(Err(msg.clone()));
                            }
                        }
                        Err(e) => {
                            for &i in batch {
                                res[i] = Some(Err(e.to_string()));
                            }
                        }
                    }
                };
                match &pool {
                    Some(p) => p.install(work),
                    None => work(),
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("batch was not run".into())))
        .collect()
}

struct DocSentences {
    /// (paragraph, start, end, text) per sentence.
    sentences: Vec<(usize, usize, usize, String)>,
    title: Option<String>,
}

/// Translations put back per document: sentence pieces in order, title pieces, and source
/// and generated token counts.
struct Placed {
    pieces: Vec<Vec<Vec<String>>>,
    titles: Vec<Vec<String>>,
    tok_in: Vec<usize>,
    tok_out: Vec<usize>,
    /// Source tokens of the whole batch (at least 1), to share out batch-level times.
    total_in: usize,
}

/// Stage times shared out to the documents of the batch.
struct StageTimes {
    split_ms: f64,
    tok_ms: f64,
    gen_s: f64,
}

pub fn translate_docs(
    docs: &[Document],
    model: &dyn TextGenerator,
    opts: &Options,
    results: &mut [Result<ArticleResult, String>],
    stats: &mut Stats,
) {
    let t0 = Instant::now();
    // 1. Split every document (CPU, parallel).
    let split: Vec<DocSentences> = docs.par_iter().map(split_document).collect();
    let split_ms = t0.elapsed().as_secs_f64() * 1e3;

    // 2. Tokenize; cut sentences longer than the model's window at clause boundaries.
    let t1 = Instant::now();
    let units = translation_units(&split, model, results);
    let tok_ms = t1.elapsed().as_secs_f64() * 1e3;

    // 3. Translate every unit of the job batch.
    let t2 = Instant::now();
    let outs = run_units(&units, model, opts, &|members: &[&Unit]| Lengths {
        min_new_tokens: None,
        max_new_tokens: Some(max_new_for(
            members.iter().map(|u| u.ids.len()).max().unwrap_or(1),
        )),
    });
    let gen_s = t2.elapsed().as_secs_f64();

    // 4. Put translations back in place (units of one sentence are consecutive, in order).
    let placed = place_translations(&split, docs.len(), &units, outs, results);
    stats.add_stage(
        "translate",
        placed.tok_in.iter().sum(),
        placed.tok_out.iter().sum(),
        gen_s,
    );
    stats.sentences += split.iter().map(|d| d.sentences.len()).sum::<usize>();
    let times = StageTimes {
        split_ms,
        tok_ms,
        gen_s,
    };
    for (di, ds) in split.iter().enumerate() {
        let Ok(r) = &mut results[di] else { continue };
        fill_translation(r, di, ds, &placed, &times, docs.len());
    }
}

/// A document's sentences (with paragraph and char span) and its normalized title.
fn split_document(d: &Document) -> DocSentences {
    let byte_at: Vec<usize> = d
        .text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(d.text.len()))
        .collect();
    let mut sentences = Vec::new();
    for (p, para) in crate::text::split_paragraphs(&d.text).iter().enumerate() {
        for s in para {
            let text = d.text[byte_at[s.start]..byte_at[s.end]].to_string();
            sentences.push((p, s.start, s.end, text));
        }
    }
    let title = d
        .extra
        .get("title")
        .and_then(|v| v.as_str())
        .map(|t| crate::text::normalize(t.trim()).into_owned())
        .filter(|t| !t.is_empty());
    DocSentences { sentences, title }
}

/// Tokenized units of every document still ok: one per sentence and title, or several
/// where a text is longer than the window (warned). A tokenizer error fails its document.
fn translation_units(
    split: &[DocSentences],
    model: &dyn TextGenerator,
    results: &mut [Result<ArticleResult, String>],
) -> Vec<Unit> {
    let window = model.max_source_tokens();
    let mut units: Vec<Unit> = Vec::new();
    for (di, ds) in split.iter().enumerate() {
        if results[di].is_err() {
            continue;
        }
        let mut texts: Vec<(usize, &str)> = ds
            .sentences
            .iter()
            .enumerate()
            .map(|(si, s)| (si, s.3.as_str()))
            .collect();
        if let Some(t) = &ds.title {
            texts.push((TITLE, t.as_str()));
        }
        let plain: Vec<&str> = texts.iter().map(|t| t.1).collect();
        let encoded = match model.encode(&plain) {
            Ok(e) => e,
            Err(e) => {
                results[di] = Err(format!("tokenizing for translation: {e}"));
                continue;
            }
        };
        for ((si, text), ids) in texts.into_iter().zip(encoded) {
            if ids.len() <= window {
                units.push(Unit {
                    doc: di,
                    sent: si,
                    ids,
                });
                continue;
            }
            push_split_units(
                &mut units,
                (di, si),
                text,
                ids.len(),
                model,
                window,
                results,
            );
        }
    }
    units
}

/// The units of text `si` of document `di` (`n_ids` tokens, over `window`): its pieces cut
/// by [`split_to_fit`], with a warning saying how; a tokenizer error fails the document.
fn push_split_units(
    units: &mut Vec<Unit>,
    (di, si): (usize, usize),
    text: &str,
    n_ids: usize,
    model: &dyn TextGenerator,
    window: usize,
    results: &mut [Result<ArticleResult, String>],
) {
    match split_to_fit(text, model, window) {
        Ok((pieces, how)) => {
            if let (Ok(r), Some(how)) = (&mut results[di], how) {
                r.warnings.push(format!(
                    "{how}: {} ({n_ids} tokens, window {window}) translated in {} pieces",
                    text_name(si),
                    pieces.len()
                ));
            }
            for (_, ids) in pieces {
                units.push(Unit {
                    doc: di,
                    sent: si,
                    ids,
                });
            }
        }
        Err(e) => results[di] = Err(format!("tokenizing for translation: {e}")),
    }
}

/// Sorts the unit outputs into their documents' sentences and titles, counting tokens and
/// warning where a piece hit the length cap; a failed unit fails its document.
fn place_translations(
    split: &[DocSentences],
    n_docs: usize,
    units: &[Unit],
    outs: Vec<UnitOutput>,
    results: &mut [Result<ArticleResult, String>],
) -> Placed {
    let mut placed = Placed {
        pieces: split
            .iter()
            .map(|d| vec![Vec::new(); d.sentences.len()])
            .collect(),
        titles: vec![Vec::new(); n_docs],
        tok_in: vec![0usize; n_docs],
        tok_out: vec![0usize; n_docs],
        total_in: 0,
    };
    for (u, out) in units.iter().zip(outs) {
        match out {
            Ok((text, n)) => {
                placed.tok_in[u.doc] += u.ids.len();
                placed.tok_out[u.doc] += n;
                if n >= max_new_for(u.ids.len()) {
                    if let Ok(r) = &mut results[u.doc] {
                        r.warnings.push(format!(
                            "length-cap: a piece of {} hit the {n}-token translation cap",
                            text_name(u.sent)
                        ));
                    }
                }
                if u.sent == TITLE {
                    placed.titles[u.doc].push(text);
                } else {
                    placed.pieces[u.doc][u.sent].push(text);
                }
            }
            Err(e) => {
                if results[u.doc].is_ok() {
                    results[u.doc] = Err(format!("translation failed: {e}"));
                }
            }
        }
    }
    placed.total_in = placed.tok_in.iter().sum::<usize>().max(1);
    placed
}

/// Fills document `di`'s result: sentences with their translations, the paragraph-joined
/// translation, the title's, and its share of the stage times and its token counts.
fn fill_translation(
    r: &mut ArticleResult,
    di: usize,
    ds: &DocSentences,
    placed: &Placed,
    times: &StageTimes,
    n_docs: usize,
) {
    let mut paragraphs: Vec<Vec<String>> = Vec::new();
    for ((p, start, end, text), tr) in ds.sentences.iter().zip(&placed.pieces[di]) {
        let translation = tr.join(" ");
        if paragraphs.len() <= *p {
            paragraphs.resize(p + 1, Vec::new());
        }
        paragraphs[*p].push(translation.clone());
        r.sentences.push(SentenceOut {
            paragraph: *p,
            text: text.clone(),
            start: *start,
            end: *end,
            translation,
        });
    }
    r.translation = Some(
        paragraphs
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| p.join(" "))
            .collect::<Vec<_>>()
            .join("\n\n"),
    );
    if !placed.titles[di].is_empty() {
        r.title_translation = Some(placed.titles[di].join(" "));
    }
    // Batch-level times are shared out by source tokens.
    let share = placed.tok_in[di] as f64 / placed.total_in as f64;
    r.timings_ms.insert(
        "split".into(),
        json!(round(times.split_ms / n_docs.max(1) as f64)),
    );
    r.timings_ms.insert(
        "translate".into(),
        json!(round((times.tok_ms + times.gen_s * 1e3) * share)),
    );
    r.tokens
        .insert("translate_in".into(), json!(placed.tok_in[di]));
    r.tokens
        .insert("translate_out".into(), json!(placed.tok_out[di]));
}

pub(crate) fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::super::{process_batch, report::Stats, Options, Stages};
    use super::*;
    use crate::batch::BatchLimits;
    use crate::testkit::pipeline_mock::Mock;
    use serde_json::Map;

    fn doc(id: &str, text: &str) -> Document {
        Document {
            id: id.into(),
            text: text.into(),
            extra: Map::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn every_sentence_translated_once_paragraphs_kept() {
        let docs = vec![
            doc("a", "Một hai ba. Bốn năm.\n\nSáu bảy tám chín."),
            doc("b", "Mười."),
        ];
        let m = Mock::new(50, None);
        let opts = Options {
            stages: Stages::Translate,
            limits: BatchLimits {
                max_tokens: 8,
                max_rows: 4,
            },
            workers: 2,
            ..Options::default()
        };
        let mut stats = Stats::default();
        let res = process_batch(&docs, &opts, Some(&m), None, &mut stats);
        let a = res[0].as_ref().unwrap();
        assert_eq!(a.sentences.len(), 3);
        assert_eq!(
            a.translation.as_deref(),
            Some("EN:Một EN:hai EN:ba. EN:Bốn EN:năm.\n\nEN:Sáu EN:bảy EN:tám EN:chín.")
        );
        assert_eq!(
            res[1].as_ref().unwrap().translation.as_deref(),
            Some("EN:Mười.")
        );
        // Several batches were cut by the 8-token budget.
        assert!(m.calls.lock().unwrap().len() >= 2);
    }

    /// A length-cap warning names the sentence, or "the title" (not the title's internal
    /// index).
    #[test]
    fn length_cap_warnings_name_sentence_or_title() {
        let mut d = doc("t", "Một hai. Ba bốn.");
        d.extra.insert("title".into(), "Tiêu đề".into());
        let mut m = Mock::new(50, None);
        m.inflate = 1000;
        let opts = Options {
            stages: Stages::Translate,
            ..Options::default()
        };
        let mut stats = Stats::default();
        let res = process_batch(&[d], &opts, Some(&m), None, &mut stats);
        let w = &res[0].as_ref().unwrap().warnings;
        let caps: Vec<&String> = w.iter().filter(|x| x.starts_with("length-cap")).collect();
        assert_eq!(caps.len(), 3, "{w:?}");
        assert!(
            caps.iter().any(|x| x.contains("a piece of the title ")),
            "{w:?}"
        );
        assert!(
            caps.iter().any(|x| x.contains("a piece of sentence 1 ")),
            "{w:?}"
        );
        assert!(
            !w.iter().any(|x| x.contains(&usize::MAX.to_string())),
            "{w:?}"
        );
    }

    #[test]
    fn long_sentences_are_cut_at_clauses_and_rejoined() {
        let text = "một hai ba bốn, năm sáu bảy tám, chín mười một.";
        let m = Mock::new(6, None);
        let (pieces, how) = split_to_fit(text, &m, 6).unwrap();
        assert_eq!(how, Some("clause-split"));
        assert!(pieces.iter().all(|(_, ids)| ids.len() <= 6));
        let joined: Vec<String> = pieces.into_iter().map(|p| p.0).collect();
        assert_eq!(joined.join(" "), text);
        let mut stats = Stats::default();
        let opts = Options {
            stages: Stages::Translate,
            ..Options::default()
        };
        let res = process_batch(&[doc("x", text)], &opts, Some(&m), None, &mut stats);
        let r = res[0].as_ref().unwrap();
        assert!(
            r.warnings[0].starts_with("clause-split"),
            "{:?}",
            r.warnings
        );
        // Every source word made it into the translation exactly once.
        assert_eq!(
            r.translation.as_ref().unwrap().matches("EN:").count(),
            text.split_whitespace().count()
        );
    }
}
