//! The product: articles -> sentences -> English translation -> English brief.
//!
//! Work goes in job batches of articles (bounded memory, records written in input order as
//! each batch completes). Inside a batch, translation runs over ALL sentences of all articles
//! at once (length-sorted, token-budget batches), then summarization runs over all chunks of
//! all articles (map-reduce for articles longer than the summarizer's window).
//!
//! Model work goes through the [`TextGenerator`] trait, so the orchestration here is tested
//! with a mock generator and runs the real models through [`engine::Engine`].

pub mod engine;
pub mod report;
pub mod summarize;
pub mod translate;

use serde_json::{json, Map, Value};

use crate::batch::BatchLimits;
use crate::io::Document;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Tokenize(String),
}

/// Lengths asked of one generate call (new tokens, after the decoder start token).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lengths {
    pub min_new_tokens: Option<usize>,
    pub max_new_tokens: Option<usize>,
}

/// Where a model came from, for the output records.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub repo: Option<String>,
    pub revision: Option<String>,
}

/// Text in, text out seq2seq generation: what the pipeline needs of a model.
pub trait TextGenerator: Sync {
    /// Source ids of each text, with the model's task prefix and special tokens.
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, PipelineError>;
    /// Most source tokens (prefix and special tokens included) the model takes.
    fn max_source_tokens(&self) -> usize;
    /// Generate for one batch of sources; returns (text, generated token count) per source.
    fn generate(
        &self,
        sources: &[Vec<u32>],
        lengths: Lengths,
    ) -> Result<Vec<(String, usize)>, PipelineError>;
    fn info(&self) -> ModelInfo;
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stages {
    Translate,
    Summarize,
    Both,
}

/// With both stages: translate then summarize the English, or summarize the Vietnamese and
/// translate only the brief.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    TranslateFirst,
    SummarizeFirst,
    /// Both orders on the same articles: records from translate-first (plus the other
    /// order's brief), the run report with each order's cost.
    Compare,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub stages: Stages,
    pub order: Order,
    pub limits: BatchLimits,
    /// Parallel model workers (each runs whole batches).
    pub workers: usize,
    /// Compute threads of each worker when `workers > 1` (0: share the global pool).
    pub worker_threads: usize,
    /// Brief length in words, `(min, max)`.
    pub summary_words: Option<(usize, usize)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stages: Stages::Both,
            order: Order::TranslateFirst,
            limits: BatchLimits::default(),
            workers: 1,
            worker_threads: 0,
            summary_words: None,
        }
    }
}

/// One sentence of the source with its translation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SentenceOut {
    pub paragraph: usize,
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub translation: String,
}

/// Per-article result (turned into the JSONL record by [`ArticleResult::to_record`]).
#[derive(Debug, Clone, Default)]
pub struct ArticleResult {
    pub sentences: Vec<SentenceOut>,
    pub translation: Option<String>,
    pub title_translation: Option<String>,
    pub summary: Option<String>,
    /// With summarize-first: the brief in the source language, before translation.
    pub summary_source: Option<String>,
    /// With `--order compare`: the summarize-first brief (English).
    pub summary_summarize_first: Option<String>,
    pub warnings: Vec<String>,
    pub timings_ms: Map<String, Value>,
    pub tokens: Map<String, Value>,
}

impl ArticleResult {
    pub fn to_record(&self, doc: &Document, models: &Value) -> Value {
        let mut rec = Map::new();
        rec.insert("id".into(), Value::String(doc.id.clone()));
        for (k, v) in &doc.extra {
            rec.insert(k.clone(), v.clone());
        }
        if let Some(t) = &self.title_translation {
            rec.insert("title_translation".into(), Value::String(t.clone()));
        }
        if !self.sentences.is_empty() {
            rec.insert("sentences".into(), json!(self.sentences));
        }
        if let Some(t) = &self.translation {
            rec.insert("translation".into(), Value::String(t.clone()));
        }
        if let Some(s) = &self.summary {
            rec.insert("summary".into(), Value::String(s.clone()));
        }
        if let Some(s) = &self.summary_source {
            rec.insert("summary_source".into(), Value::String(s.clone()));
        }
        if let Some(s) = &self.summary_summarize_first {
            rec.insert("summary_summarize_first".into(), Value::String(s.clone()));
        }
        rec.insert("models".into(), models.clone());
        rec.insert("timings".into(), Value::Object(self.timings_ms.clone()));
        rec.insert("tokens".into(), Value::Object(self.tokens.clone()));
        let warnings: Vec<&String> = doc.warnings.iter().chain(&self.warnings).collect();
        rec.insert("warnings".into(), json!(warnings));
        Value::Object(rec)
    }
}

/// Run the stages over one job batch of documents. Returns one result per document, in
/// order; a document-level failure (e.g. a model error on its batch) is an `Err` for that
/// document only.
pub fn process_batch(
    docs: &[Document],
    opts: &Options,
    translator: Option<&dyn TextGenerator>,
    summarizer: Option<&dyn TextGenerator>,
    stats: &mut report::Stats,
) -> Vec<Result<ArticleResult, String>> {
    let mut results: Vec<Result<ArticleResult, String>> =
        docs.iter().map(|_| Ok(ArticleResult::default())).collect();
    if opts.stages == Stages::Both && opts.order == Order::SummarizeFirst {
        summarize_first(docs, opts, translator, summarizer, &mut results, stats);
        return results;
    }
    // English text per document for the summarizer: the translation, or (summarize-only on
    // English input) the text itself.
    let mut english: Vec<Option<String>> = vec![None; docs.len()];
    match (opts.stages, translator) {
        (Stages::Translate | Stages::Both, Some(tr)) => {
            translate::translate_docs(docs, tr, opts, &mut results, stats);
            for (i, r) in results.iter().enumerate() {
                if let Ok(r) = r {
                    english[i] = r.translation.clone();
                }
            }
        }
        _ => {
            for (i, d) in docs.iter().enumerate() {
                english[i] = Some(d.text.clone());
            }
        }
    }
    if matches!(opts.stages, Stages::Summarize | Stages::Both) {
        if let Some(sm) = summarizer {
            summarize::summarize_docs(&english, sm, opts, &mut results, stats);
        }
    }
    results
}

/// `--order compare`: the translate-first job as usual, then summarize-first on the same
/// documents with the Vietnamese summarizer `vi_summarizer`; its stage costs go into
/// `stats` under "summarize-first: ..." names and its brief into each record.
pub fn process_batch_compare(
    docs: &[Document],
    opts: &Options,
    translator: &dyn TextGenerator,
    summarizer: &dyn TextGenerator,
    vi_summarizer: &dyn TextGenerator,
    stats: &mut report::Stats,
) -> Vec<Result<ArticleResult, String>> {
    let tf_opts = Options {
        order: Order::TranslateFirst,
        stages: Stages::Both,
        ..opts.clone()
    };
    let mut results = process_batch(docs, &tf_opts, Some(translator), Some(summarizer), stats);
    let mut sf: Vec<Result<ArticleResult, String>> =
        docs.iter().map(|_| Ok(ArticleResult::default())).collect();
    let mut sf_stats = report::Stats::default();
    summarize_first(
        docs,
        opts,
        Some(translator),
        Some(vi_summarizer),
        &mut sf,
        &mut sf_stats,
    );
    stats.merge_prefixed(&sf_stats, "summarize-first: ");
    for (r, alt) in results.iter_mut().zip(sf) {
        if let Ok(r) = r {
            match alt {
                Ok(a) => r.summary_summarize_first = a.summary,
                Err(e) => r.warnings.push(format!("summarize-first failed: {e}")),
            }
        }
    }
    results
}

/// Summarize the Vietnamese text, then translate only the briefs.
fn summarize_first(
    docs: &[Document],
    opts: &Options,
    translator: Option<&dyn TextGenerator>,
    summarizer: Option<&dyn TextGenerator>,
    results: &mut [Result<ArticleResult, String>],
    stats: &mut report::Stats,
) {
    let (Some(tr), Some(sm)) = (translator, summarizer) else {
        return;
    };
    let vi: Vec<Option<String>> = docs.iter().map(|d| Some(d.text.clone())).collect();
    summarize::summarize_docs(&vi, sm, opts, results, stats);
    // Translate the briefs as small documents of their own.
    let briefs: Vec<Document> = docs
        .iter()
        .zip(results.iter())
        .map(|(d, r)| Document {
            id: d.id.clone(),
            text: r
                .as_ref()
                .ok()
                .and_then(|r| r.summary.clone())
                .unwrap_or_default(),
            extra: d.extra.clone(),
            warnings: Vec::new(),
        })
        .collect();
    let mut translated: Vec<Result<ArticleResult, String>> = results
        .iter()
        .zip(&briefs)
        .map(|(r, b)| match r {
            Ok(_) if !b.text.trim().is_empty() => Ok(ArticleResult::default()),
            Ok(_) => Err("the Vietnamese summary is empty".to_string()),
            Err(e) => Err(e.clone()),
        })
        .collect();
    translate::translate_docs(&briefs, tr, opts, &mut translated, stats);
    for (r, t) in results.iter_mut().zip(translated) {
        let Ok(res) = r else { continue };
        match t {
            Ok(t) => {
                res.summary_source = res.summary.take();
                res.summary = t.translation;
                res.title_translation = t.title_translation;
                res.warnings.extend(t.warnings);
                for (k, v) in t.tokens {
                    res.tokens.insert(k, v);
                }
                for (k, v) in t.timings_ms {
                    res.timings_ms.insert(k, v);
                }
            }
            Err(e) => *r = Err(e),
        }
    }
}

/// Stable 64-bit FNV-1a hash of an id: the same on every machine and every run.
pub fn id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The shard of an id for `--shard I/N`: the same id lands in the same shard everywhere.
pub fn shard_of(id: &str, n: usize) -> usize {
    (id_hash(id) % n.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_ids() {
        let ids: Vec<String> = (0..1000).map(|i| format!("doc{i}")).collect();
        let mut counts = [0usize; 3];
        for id in &ids {
            counts[shard_of(id, 3)] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 1000);
        assert!(counts.iter().all(|&c| c > 250), "{counts:?}");
        assert_eq!(shard_of("doc1", 3), shard_of("doc1", 3));
    }
}
