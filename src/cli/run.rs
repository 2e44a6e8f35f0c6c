//! `tomtat translate`, `tomtat summarize` and `tomtat run`: the product commands.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};

use super::{exit, Global};
use crate::batch::BatchLimits;
use crate::io::{self, Document, JsonlWriter, ReadOptions};
use crate::pipeline::engine::{Engine, EngineOptions};
use crate::pipeline::{self, report::Stats, Options, Order, Stages, TextGenerator};

/// Built-in default models (names of manifests in `models/`).
pub const DEFAULT_TRANSLATOR: &str = "opus-mt-vi-en";
pub const DEFAULT_SUMMARIZER: &str = "distilbart-cnn-12-6";
pub const DEFAULT_VI_SUMMARIZER: &str = "vit5-base-vietnews-summarization";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Input files, directories or - for stdin (.txt, .jsonl {"id","text",...}, .csv/.tsv).
    #[arg(value_name = "INPUT", default_value = "-")]
    pub inputs: Vec<String>,
    /// Write JSONL records here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write one Markdown brief per article into this directory.
    #[arg(long, value_name = "DIR")]
    pub markdown: Option<PathBuf>,
    /// vi->en model: a built-in name (tomtat models list), owner/name[@rev], a manifest
    /// .toml, or a local directory in the Hub's layout.
    #[arg(long, value_name = "NAME|DIR")]
    pub translator: Option<String>,
    /// Summarizer: English (translate-first) or Vietnamese (summarize-first).
    #[arg(long, value_name = "NAME|DIR")]
    pub summarizer: Option<String>,
    /// cpu, or cuda[:N] (needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights/activations: auto = f32 on CPU; on CUDA f16, bf16 for T5-family models.
    /// On CUDA the batch limits are also shrunk to what fits in free GPU memory.
    #[arg(long, value_enum, default_value_t = crate::device::DTypeArg::Auto)]
    pub dtype: crate::device::DTypeArg,
    /// Weight quantization of both models: q8 = int8 projections on CPU (about 2x faster;
    /// outputs differ slightly from f32).
    #[arg(long, value_enum, default_value = "none")]
    pub quantize: super::generate::Quantize,
    /// translate-first: translate the article, summarize the English; summarize-first:
    /// summarize in Vietnamese and translate only the brief (much cheaper on long articles).
    #[arg(long, value_enum, default_value_t = OrderArg::TranslateFirst)]
    pub order: OrderArg,
    /// Vietnamese summarizer of `--order compare` (NAME|DIR; default vit5).
    #[arg(long, value_name = "NAME|DIR")]
    pub vi_summarizer: Option<String>,
    /// Most padded source tokens per model batch.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_batch_tokens: usize,
    /// Most sentences/chunks per model batch.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_batch_rows: usize,
    /// Model workers running batches side by side (they share the weights). Default: one
    /// single-threaded worker per compute thread (measured faster than one worker using
    /// all threads: README, Performance). Threads per worker = --threads / workers.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Articles per job batch: translation batches over all their sentences; records are
    /// written as each job batch completes.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub batch_articles: usize,
    /// Beam size for both models (1 = greedy, fastest); default: each model's own.
    #[arg(long, value_name = "K")]
    pub beams: Option<usize>,
    /// Brief length in words, e.g. 40-80.
    #[arg(long, value_name = "MIN-MAX", value_parser = parse_range)]
    pub summary_words: Option<(usize, usize)>,
    /// Skip articles already in --output and append the rest.
    #[arg(long)]
    pub resume: bool,
    /// Process only shard I of N (0-based), chosen by a stable hash of the article id.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Use only the local Hugging Face cache (also: HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Refuse articles larger than this many bytes (never truncated).
    #[arg(long, value_name = "BYTES", default_value_t = io::DEFAULT_MAX_ARTICLE_BYTES)]
    pub max_article_bytes: usize,
    /// JSONL field (a string, or an array of sentence strings) or CSV column with the text.
    #[arg(long, value_name = "NAME", default_value = "text")]
    pub text_field: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderArg {
    TranslateFirst,
    SummarizeFirst,
    /// Run both orders on the same articles and report each one's cost (records come from
    /// translate-first and carry the other brief as `summary_summarize_first`).
    Compare,
}

fn parse_range(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once('-').ok_or("expected MIN-MAX, e.g. 40-80")?;
    let (a, b): (usize, usize) = (
        a.trim().parse().map_err(|_| "MIN is not a number")?,
        b.trim().parse().map_err(|_| "MAX is not a number")?,
    );
    if a > b || b == 0 {
        return Err("need 0 <= MIN <= MAX and MAX > 0".into());
    }
    Ok((a, b))
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| "I is not a number")?,
        n.trim().parse().map_err(|_| "N is not a number")?,
    );
    if n == 0 || i >= n {
        return Err("need 0 <= I < N".into());
    }
    Ok((i, n))
}

/// Ids already in an output file; a trailing partial line (a killed run) is cut off so
/// appending continues a well-formed file.
fn resume_ids(path: &Path) -> std::io::Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return Ok(ids);
    };
    let mut good_len = 0u64;
    let mut reader = BufReader::new(&mut f);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let complete = line.ends_with(b"\n");
        let id = serde_json::from_slice::<Value>(&line)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string));
        match (complete, id) {
            (true, Some(id)) => {
                ids.insert(id);
                good_len += n as u64;
            }
            _ => break,
        }
    }
    drop(reader);
    if f.metadata()?.len() != good_len {
        f.set_len(good_len)?;
        f.seek(SeekFrom::End(0))?;
    }
    Ok(ids)
}

/// A file name for an id's Markdown brief. Ids that are already safe keep their name; any
/// other (characters replaced, a leading dot, over 100 characters) gets the id's hash as a
/// suffix, so two ids never share a file ("a/b" and "a_b" would otherwise both be "a_b").
fn safe_file_name(id: &str) -> String {
    const MAX_CHARS: usize = 100;
    let s: String = id
        .chars()
        .take(MAX_CHARS)
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s == id && !s.is_empty() && !s.starts_with('.') {
        s
    } else {
        format!("_{s}-{:016x}", pipeline::id_hash(id))
    }
}

fn write_markdown(dir: &Path, doc: &Document, r: &pipeline::ArticleResult) -> std::io::Result<()> {
    let title = r
        .title_translation
        .clone()
        .unwrap_or_else(|| doc.id.clone());
    let mut md = format!("# {title}\n\n");
    if let Some(s) = &r.summary {
        md.push_str(&format!("## Brief\n\n{s}\n\n"));
    }
    if let Some(t) = &r.translation {
        md.push_str(&format!("## Translation\n\n{t}\n"));
    }
    md.push_str(&format!("\n---\nid: `{}`\n", doc.id));
    std::fs::write(dir.join(format!("{}.md", safe_file_name(&doc.id))), md)
}

pub fn run(args: RunArgs, stages: Stages, g: Global) -> u8 {
    match run_inner(&args, stages, &g) {
        Ok(stats) => {
            if !g.quiet {
                eprint!("{}", stats.render());
                eprintln!("report: {}", stats.to_json());
            }
            if stats.failed > 0 {
                exit::SOME_FAILED
            } else {
                exit::OK
            }
        }
        // the message was printed where the failure was met
        Err(code) => code,
    }
}

/// A fatal error: its message is printed, the exit code returned.
fn fatal(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    exit::FATAL
}

fn run_inner(args: &RunArgs, stages: Stages, g: &Global) -> Result<Stats, u8> {
    let (mut opts, engine_opts) = plan(args, stages, g);
    let engines = Engines::load(args, &opts, &engine_opts)?;
    engines.fit_limits(&mut opts, g.quiet);
    let mut out = Output::open(args)?;
    let mut stats = Stats::default();
    let docs = read_documents(args, g.quiet, &mut stats);
    run_jobs(
        &docs,
        args.batch_articles,
        &opts,
        &engines,
        &mut out,
        &mut stats,
        g.quiet,
    )?;
    out.writer
        .flush()
        .map_err(|e| fatal(format!("cannot write output: {e}")))?;
    Ok(stats)
}

/// Pipeline and engine options from the flags; sets the per-worker thread count.
fn plan(args: &RunArgs, stages: Stages, g: &Global) -> (Options, EngineOptions) {
    let threads = g
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let workers = args.workers.unwrap_or(threads).max(1);
    let worker_threads = (threads / workers).max(1);
    if workers > 1 {
        // candle's element-wise kernels size their own pool from this variable when first
        // used (nothing has touched candle yet): one per worker thread, not all cores each.
        crate::knobs::set_candle_threads(worker_threads);
    }
    let opts = Options {
        stages,
        order: match args.order {
            OrderArg::TranslateFirst => Order::TranslateFirst,
            OrderArg::SummarizeFirst => Order::SummarizeFirst,
            OrderArg::Compare => Order::Compare,
        },
        limits: BatchLimits {
            max_tokens: args.max_batch_tokens.max(1),
            max_rows: args.max_batch_rows.max(1),
        },
        workers,
        worker_threads,
        summary_words: args.summary_words,
    };
    let engine_opts = EngineOptions {
        device: args.device.clone(),
        dtype: args.dtype,
        quantize: args.quantize == super::generate::Quantize::Q8,
        offline: args.offline
            || std::env::var("HF_HUB_OFFLINE")
                .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        quiet: g.quiet,
        threads: g.threads,
        workers: opts.workers,
        beams: args.beams,
    };
    (opts, engine_opts)
}

/// The models a run needs (by stages and order), and their record of names and revisions.
struct Engines {
    translator: Option<Engine>,
    summarizer: Option<Engine>,
    /// `--order compare`: the Vietnamese summarizer of the summarize-first order.
    vi_summarizer: Option<Engine>,
    models: Value,
}

impl Engines {
    fn load(args: &RunArgs, opts: &Options, engine_opts: &EngineOptions) -> Result<Self, u8> {
        let both = opts.stages == Stages::Both;
        let load = |spec: Option<&String>, default: &str, role: &str| -> Result<Engine, u8> {
            let spec = spec.map(String::as_str).unwrap_or(default);
            Engine::load(spec, role, engine_opts)
                .map_err(|e| fatal(format!("loading the {role} '{spec}': {e}")))
        };
        let translator = matches!(opts.stages, Stages::Translate | Stages::Both)
            .then(|| load(args.translator.as_ref(), DEFAULT_TRANSLATOR, "translator"))
            .transpose()?;
        let sm_default = if opts.order == Order::SummarizeFirst && both {
            DEFAULT_VI_SUMMARIZER
        } else {
            DEFAULT_SUMMARIZER
        };
        let summarizer = matches!(opts.stages, Stages::Summarize | Stages::Both)
            .then(|| load(args.summarizer.as_ref(), sm_default, "summarizer"))
            .transpose()?;
        let vi_summarizer = (opts.order == Order::Compare && both)
            .then(|| {
                load(
                    args.vi_summarizer.as_ref(),
                    DEFAULT_VI_SUMMARIZER,
                    "Vietnamese summarizer",
                )
            })
            .transpose()?;
        let mut models = Map::new();
        for (role, e) in [
            ("translator", &translator),
            ("summarizer", &summarizer),
            ("vi_summarizer", &vi_summarizer),
        ] {
            if let Some(e) = e {
                models.insert(role.into(), json!(e.info()));
            }
        }
        Ok(Engines {
            translator,
            summarizer,
            vi_summarizer,
            models: Value::Object(models),
        })
    }

    /// GPU: batches that fit in free device memory (the token budget is the knob).
    fn fit_limits(&self, opts: &mut Options, quiet: bool) {
        for e in self.translator.iter().chain(self.summarizer.iter()) {
            let fitted = e.fit_limits(opts.limits);
            let changed = (fitted.max_tokens, fitted.max_rows)
                != (opts.limits.max_tokens, opts.limits.max_rows);
            if changed && !quiet {
                eprintln!(
                    "note: batch limits {} tokens / {} rows -> {} / {} to fit GPU memory",
                    opts.limits.max_tokens,
                    opts.limits.max_rows,
                    fitted.max_tokens,
                    fitted.max_rows
                );
            }
            opts.limits = fitted;
        }
    }
}

/// Where records go: the JSONL writer (appending on `--resume`), the ids already done, and
/// the Markdown directory.
struct Output {
    writer: JsonlWriter,
    done: HashSet<String>,
    markdown: Option<PathBuf>,
}

impl Output {
    fn open(args: &RunArgs) -> Result<Self, u8> {
        let done: HashSet<String> = match (&args.output, args.resume) {
            (Some(p), true) => resume_ids(p)
                .map_err(|e| fatal(format!("--resume: cannot read {}: {e}", p.display())))?,
            (None, true) => return Err(fatal("--resume needs --output FILE")),
            _ => HashSet::new(),
        };
        let writer = JsonlWriter::create(args.output.as_deref(), args.resume)
            .map_err(|e| fatal(format!("cannot write output: {e}")))?;
        if let Some(dir) = &args.markdown {
            std::fs::create_dir_all(dir)
                .map_err(|e| fatal(format!("cannot create {}: {e}", dir.display())))?;
        }
        Ok(Output {
            writer,
            done,
            markdown: args.markdown.clone(),
        })
    }
}

/// Every input document of this shard (read first: articles are small, and the progress bar
/// needs the total); unreadable ones are reported and counted as failed.
fn read_documents(args: &RunArgs, quiet: bool, stats: &mut Stats) -> Vec<Document> {
    let mut docs: Vec<Document> = Vec::new();
    for d in io::documents(
        &args.inputs,
        ReadOptions {
            max_article_bytes: args.max_article_bytes,
            text_field: args.text_field.clone(),
        },
    ) {
        match d {
            Ok(d) => {
                if !quiet {
                    for w in &d.warnings {
                        eprintln!("warning: {w}");
                    }
                }
                if let Some((i, n)) = args.shard {
                    if pipeline::shard_of(&d.id, n) != i {
                        continue;
                    }
                }
                docs.push(d);
            }
            Err(e) => {
                stats.failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    docs
}

/// Runs the job batches of `--batch-articles` documents and writes their records.
fn run_jobs(
    docs: &[Document],
    batch_articles: usize,
    opts: &Options,
    engines: &Engines,
    out: &mut Output,
    stats: &mut Stats,
    quiet: bool,
) -> Result<(), u8> {
    let bar = ProgressBar::new(docs.len() as u64);
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} articles, {msg} (ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let tr = engines.translator.as_ref().map(|e| e as &dyn TextGenerator);
    let sm = engines.summarizer.as_ref().map(|e| e as &dyn TextGenerator);
    let done = &out.done;
    // Job batches are cut over the whole input, done or not, and a batch with anything left
    // to do is run whole: the model batches (and so the floating-point results) of a
    // resumed run are exactly those of an uninterrupted one. Only new records are written.
    let n_done = docs.iter().filter(|d| done.contains(&d.id)).count();
    stats.skipped = n_done;
    bar.set_length((docs.len() - n_done) as u64);
    for chunk in docs.chunks(batch_articles.max(1)) {
        let todo = chunk.iter().filter(|d| !done.contains(&d.id)).count();
        if todo == 0 {
            continue;
        }
        let results = match (tr, sm, engines.vi_summarizer.as_ref()) {
            (Some(t), Some(s), Some(v)) => {
                pipeline::process_batch_compare(chunk, opts, t, s, v, stats)
            }
            _ => pipeline::process_batch(chunk, opts, tr, sm, stats),
        };
        for (doc, r) in chunk.iter().zip(results) {
            if done.contains(&doc.id) {
                continue;
            }
            match r {
                Ok(r) => {
                    stats.articles += 1;
                    out.writer
                        .write(&r.to_record(doc, &engines.models))
                        .map_err(|e| fatal(format!("cannot write output: {e}")))?;
                    if let Some(dir) = &out.markdown {
                        if let Err(e) = write_markdown(dir, doc, &r) {
                            eprintln!("error: {}: cannot write Markdown: {e}", doc.id);
                            stats.failed += 1;
                        }
                    }
                }
                Err(e) => {
                    stats.failed += 1;
                    bar.suspend(|| eprintln!("error: {}: {e}", doc.id));
                }
            }
        }
        bar.inc(todo as u64);
        bar.set_message(format!("{} sentences", stats.sentences));
    }
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_cuts_a_partial_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        std::fs::write(&p, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\",\"tra").unwrap();
        let ids = resume_ids(&p).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"id\":\"a\"}\n{\"id\":\"b\"}\n"
        );
    }

    #[test]
    fn ranges_and_shards_parse() {
        assert_eq!(parse_range("40-80"), Ok((40, 80)));
        assert!(parse_range("80-40").is_err());
        assert_eq!(parse_shard("2/3"), Ok((2, 3)));
        assert!(parse_shard("3/3").is_err());
        assert_eq!(safe_file_name("vn-001_a.b"), "vn-001_a.b");
        assert_eq!(safe_file_name("Hà_Nội"), "Hà_Nội");
        let (a, b) = (safe_file_name("a/b"), safe_file_name("a_b"));
        assert!(a.starts_with("_a_b-") && b == "a_b", "{a} {b}");
        let odd = safe_file_name("../x y");
        assert!(odd.starts_with("_.._x_y-") && !odd.contains('/'), "{odd}");
        assert!(safe_file_name("").starts_with("_-"));
        let long = safe_file_name(&"x".repeat(300));
        assert!(long.len() < 130 && long != safe_file_name(&"x".repeat(301)));
    }
}
