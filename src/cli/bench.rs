//! `tomtat bench`: the standard generation workloads on one model, as a table and JSON.
//!
//! Workload (the reference "W1" shape by default): `batch` sources of exactly `src_len`
//! tokens (seeded random non-special ids, then EOS), each decoded to exactly `new_tokens`
//! tokens (min = max new tokens, no forced BOS/EOS, no n-gram blocking or repetition penalty,
//! length penalty 1, no early stopping), so every run does the same work whatever the weights,
//! and the same work as `scripts/bench_compare.py` and `scripts/gpu_bench_hf.py` ask of
//! transformers and CTranslate2. For each thread count and beam size:
//! one warm-up and `runs` timed full `generate` calls; the encoder is timed alone on the same
//! batch so that the decoder's per-step cost can be derived.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use candle_core::Device;
use clap::Args;
use serde::Serialize;

use super::generate::{load, Quantize};
use super::{exit, Global};
use crate::generate::{generate_resolved, pad_batch, EarlyStopping, GenerationConfig, Resolved};
use crate::model::Seq2SeqModel;
use crate::testkit::random_model::{
    self as random, RandomSpec, Shape, SplitMix64, Variant as Arch,
};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
tomtat bench --shape opus-mt-vi-en --threads-list 1,2 --runs 3\n  \
tomtat bench --shape tiny-marian --batch 2 --src-len 5 --new-tokens 4 --runs 1 --json b.json\n  \
tomtat bench --model tests/fixtures/models/marian --beams 1,4\n  \
tomtat bench --model tests/fixtures/models/marian --quantize q8 --threads-list 1\n\n\
Shapes: tiny-marian, tiny-bart, tiny-mbart, tiny-t5, tiny-t5v11, opus-mt-vi-en, \
distilbart-cnn-12-6, bart-large-cnn, t5-small, flan-t5-base (random weights, written to a \
temporary directory). Defaults: 32 sources x 30 tokens, 30 new tokens; 8 x 512 and 60 new \
for the BART summarizer shapes. Columns: median wall time of a full generate(), generated \
tokens/s, encoder ms (encoder alone on the batch), decoder ms/step = (generate - encoder) / \
new tokens, peak RSS of the process so far. The rows are also printed as JSON on the last \
stdout line (prefixed `json: `) and, with --json, written to FILE.")]
pub struct BenchArgs {
    /// Model directory or Hub name (run on token ids: no tokenizer needed).
    #[arg(
        long,
        value_name = "DIR|NAME",
        conflicts_with = "shape",
        required_unless_present = "shape"
    )]
    pub model: Option<String>,
    /// Bench a random-weight model of this shape instead (see below).
    #[arg(long, value_name = "SHAPE", value_parser = parse_shape)]
    pub shape: Option<BenchShape>,
    /// Sources per generate() call.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,
    /// Tokens per source, EOS included.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    pub src_len: Option<u32>,
    /// Generated tokens per source (exactly).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub new_tokens: Option<u32>,
    /// Beam sizes to bench (comma-separated).
    #[arg(long, value_name = "K,..", value_delimiter = ',', default_value = "1,4",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub beams: Vec<u32>,
    /// Thread counts to bench (comma-separated; default: 1 and all cores).
    #[arg(long, value_name = "N,..", value_delimiter = ',',
          value_parser = clap::value_parser!(u32).range(1..))]
    pub threads_list: Vec<u32>,
    /// Timed runs per configuration (after one warm-up run); the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Also write the rows as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Weight quantization of the model's projections.
    #[arg(long, value_enum, default_value = "none")]
    pub quantize: Quantize,
    /// Seed of the source ids (and of the random weights with --shape).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Source token ids from FILE instead of random ones: JSON, either a list of id lists
    /// or an object whose "ids" is one (scripts/bench_compare.py's bench_inputs.json).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["batch", "src_len"])]
    pub inputs: Option<PathBuf>,
    #[command(flatten)]
    pub dev: crate::device::DeviceArgs,
}

/// A `--shape` value: an architecture and a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchShape {
    pub arch: Arch,
    pub shape: Shape,
}

impl BenchShape {
    fn name(&self) -> String {
        match self.shape {
            Shape::Tiny => format!("tiny-{}", self.arch),
            s => s.name().to_string(),
        }
    }
}

fn parse_shape(s: &str) -> Result<BenchShape, String> {
    if let Some(arch) = s.strip_prefix("tiny-") {
        let arch =
            Arch::parse(arch).ok_or_else(|| format!("unknown architecture {arch:?} in {s:?}"))?;
        return Ok(BenchShape {
            arch,
            shape: Shape::Tiny,
        });
    }
    let shape = Shape::parse(s).ok_or_else(|| format!("unknown shape {s:?}"))?;
    let arch = shape
        .arch()
        .ok_or_else(|| "tiny needs an architecture: tiny-marian, tiny-bart, ...".to_string())?;
    Ok(BenchShape { arch, shape })
}

/// The matrix kernel the model's projections run on.
fn kernel_name(device: &candle_core::Device, dtype: candle_core::DType, q: Quantize) -> String {
    use crate::kernels::{gemm, int8};
    if !device.is_cpu() || dtype != candle_core::DType::F32 {
        return "candle".to_string();
    }
    match q {
        Quantize::Q8 => format!("int8 {}", int8::Kernel::detect()),
        Quantize::None if crate::knobs::knobs().no_pack => "candle matmul".to_string(),
        Quantize::None => format!("f32 {}", gemm::kernel_name()),
    }
}

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub model: String,
    /// `none` (f32) or `q8`.
    pub quantize: String,
    pub threads: usize,
    pub beams: usize,
    pub batch: usize,
    pub src_len: usize,
    pub new_tokens: usize,
    pub runs: usize,
    /// Median wall time of a full generate() call, seconds.
    pub median_s: f64,
    /// Every timed run, seconds.
    pub runs_s: Vec<f64>,
    /// Generated tokens (batch * new_tokens) per second of the median run.
    pub tokens_per_s: f64,
    /// Median encoder time alone on the batch, ms.
    pub encoder_ms: f64,
    /// (generate - encoder) / new_tokens, ms.
    pub decoder_ms_per_step: f64,
    /// Peak resident set size of the process up to the end of this row (Linux), MB.
    pub peak_rss_mb: Option<f64>,
    /// `cpu` or `cuda:N`, and the model dtype (`f32`, `f16`, `bf16`).
    pub device: String,
    pub dtype: String,
    /// The matrix kernel the projections ran on (`AVX-512 VNNI`, `AVX-VNNI`, `AVX2`,
    /// `scalar` for q8; the f32 GEMM's name; `candle` on a GPU or in half precision).
    pub kernel: String,
}

pub fn run(args: BenchArgs, global: Global) -> u8 {
    match run_inner(&args, global) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FATAL
        }
    }
}

/// Removes the temporary model directory when the bench ends (also on errors).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_inner(args: &BenchArgs, global: Global) -> anyhow::Result<()> {
    let device = crate::device::parse_device(&args.dev.device)?;
    let plan = Plan::from_args(args, &device);
    let (name, dir, _tmp) = model_dir(args, global)?;
    let loaded = load(
        &dir.to_string_lossy(),
        &args.dev,
        args.quantize,
        global.quiet,
        false,
    )?;
    let sources = bench_sources(args, &plan, loaded.model.vocab_size(), &loaded.gen)?;
    let kernel = kernel_name(&device, loaded.dtype, args.quantize);
    if !global.quiet {
        eprintln!(
            "bench: kernels: {kernel} ({})",
            crate::kernels::cpu::describe()
        );
    }
    let template = BenchRow {
        model: name,
        quantize: match args.quantize {
            Quantize::None => "none",
            Quantize::Q8 => "q8",
        }
        .to_string(),
        threads: 0,
        beams: 0,
        batch: sources.len(),
        src_len: sources.iter().map(Vec::len).max().unwrap_or(0),
        new_tokens: plan.new_tokens,
        runs: plan.runs,
        median_s: 0.0,
        runs_s: Vec::new(),
        tokens_per_s: 0.0,
        encoder_ms: 0.0,
        decoder_ms_per_step: 0.0,
        peak_rss_mb: None,
        device: args.dev.device.trim().to_string(),
        dtype: crate::device::dtype_name(loaded.dtype).to_string(),
        kernel,
    };
    let rows = measure(
        &loaded,
        &sources,
        &plan,
        &args.beams,
        &device,
        &template,
        global,
    )?;
    println!("{}", render_table(&rows));
    let json = serde_json::to_string(&rows).context("serializing rows")?;
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("json: {json}");
    Ok(())
}

/// The workload and the configurations to time, from the flags and the shape's defaults.
struct Plan {
    batch: usize,
    src_len: usize,
    new_tokens: usize,
    threads_list: Vec<usize>,
    runs: usize,
}

impl Plan {
    fn from_args(args: &BenchArgs, device: &Device) -> Plan {
        // summarization shapes default to S8 (8 x 512 -> 60), the rest to W1 (32 x 30 -> 30)
        let summarizer = matches!(
            args.shape.map(|s| s.shape),
            Some(Shape::DistilbartCnn12_6 | Shape::BartLargeCnn)
        );
        let (d_batch, d_src, d_new) = if summarizer {
            (8, 512, 60)
        } else {
            (32, 30, 30)
        };
        let threads_list: Vec<usize> = if args.threads_list.is_empty() {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            // on a GPU the host threads only run the search bookkeeping: all cores
            if n > 1 && device.is_cpu() {
                vec![1, n]
            } else {
                vec![1]
            }
        } else {
            args.threads_list.iter().map(|&n| n as usize).collect()
        };
        Plan {
            batch: args.batch.map_or(d_batch, |n| n as usize),
            src_len: args.src_len.map_or(d_src, |n| n as usize),
            new_tokens: args.new_tokens.map_or(d_new, |n| n as usize),
            threads_list,
            runs: args.runs as usize,
        }
    }
}

/// The model to bench: `--model`, or a random model of `--shape` written to a temporary
/// directory (removed when the returned guard drops).
fn model_dir(
    args: &BenchArgs,
    global: Global,
) -> anyhow::Result<(String, PathBuf, Option<TempDir>)> {
    match (&args.shape, &args.model) {
        (Some(shape), _) => {
            let dir = std::env::temp_dir().join(format!(
                "tomtat-bench-{}-{}",
                std::process::id(),
                shape.name()
            ));
            let guard = TempDir(dir.clone());
            let mut spec = RandomSpec::new(shape.arch, shape.shape);
            spec.seed = args.seed;
            let t = Instant::now();
            random::write_random_model(&spec, &dir)
                .with_context(|| format!("writing a random {} model", shape.name()))?;
            if !global.quiet {
                eprintln!(
                    "bench: random {} model written in {:.1} s",
                    shape.name(),
                    t.elapsed().as_secs_f64()
                );
            }
            Ok((shape.name(), dir, Some(guard)))
        }
        (None, Some(model)) => Ok((model.clone(), PathBuf::from(model), None)),
        (None, None) => bail!("give --model or --shape"),
    }
}

/// The source ids: `--inputs`, or seeded random ids of the planned batch and length.
fn bench_sources(
    args: &BenchArgs,
    plan: &Plan,
    vocab: usize,
    base: &GenerationConfig,
) -> anyhow::Result<Vec<Vec<u32>>> {
    match &args.inputs {
        Some(path) => {
            read_inputs(path, vocab).with_context(|| format!("--inputs {}", path.display()))
        }
        None => {
            let greedy = forced_config(base, 1, plan.new_tokens, vocab)?;
            make_sources(
                &greedy,
                base.bos_token_id,
                vocab,
                plan.batch,
                plan.src_len,
                args.seed,
            )
        }
    }
}

/// Time every (threads, beams) configuration: one row each, filled in from `template`.
fn measure(
    loaded: &crate::pipeline::engine::LoadedModel,
    sources: &[Vec<u32>],
    plan: &Plan,
    beams_list: &[u32],
    device: &Device,
    template: &BenchRow,
    global: Global,
) -> anyhow::Result<Vec<BenchRow>> {
    let (model, base) = (loaded.model.as_ref(), &loaded.gen);
    let (runs, new_tokens) = (plan.runs, plan.new_tokens);
    let greedy = forced_config(base, 1, new_tokens, model.vocab_size())?;
    let mut rows = Vec::new();
    for &threads in &plan.threads_list {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("building a thread pool")?;
        // candle sizes its matmul parallelism from RAYON_NUM_THREADS (not from the pool it
        // runs in); set it between runs, while no compute thread reads it.
        crate::knobs::set_candle_threads(threads);
        let encoder_s = pool.install(|| time_encoder(model, sources, greedy.pad, runs, device))?;
        for &beams in beams_list {
            let r = forced_config(base, beams as usize, new_tokens, model.vocab_size())?;
            let runs_s =
                pool.install(|| time_generate(model, sources, &r, new_tokens, runs, device))?;
            let median_s = median(runs_s.clone());
            let tokens = (sources.len() * new_tokens) as f64;
            let row = BenchRow {
                threads,
                beams: beams as usize,
                median_s,
                runs_s,
                tokens_per_s: if median_s > 0.0 {
                    tokens / median_s
                } else {
                    0.0
                },
                encoder_ms: encoder_s * 1e3,
                decoder_ms_per_step: (median_s - encoder_s).max(0.0) * 1e3 / new_tokens as f64,
                peak_rss_mb: crate::pipeline::report::peak_rss_mb(),
                ..template.clone()
            };
            if !global.quiet {
                eprintln!(
                    "bench: threads {threads}, beams {beams}: {:.3} s",
                    row.median_s
                );
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Source ids from a JSON file: `[[id, ..], ..]` or `{"ids": [[id, ..], ..], ..}`.
fn read_inputs(path: &Path, vocab: usize) -> anyhow::Result<Vec<Vec<u32>>> {
    let text = std::fs::read_to_string(path)?;
    let v: serde_json::Value = serde_json::from_str(&text).context("not JSON")?;
    let list = v.get("ids").unwrap_or(&v);
    let ids: Vec<Vec<u32>> =
        serde_json::from_value(list.clone()).context("expected a list of token id lists")?;
    if ids.is_empty() {
        bail!("no sources");
    }
    for (i, s) in ids.iter().enumerate() {
        if s.is_empty() {
            bail!("source {i} is empty");
        }
        if let Some(&bad) = s.iter().find(|&&t| t as usize >= vocab) {
            bail!("source {i}: token id {bad} is out of the vocabulary (size {vocab})");
        }
    }
    Ok(ids)
}

/// `batch` sources of `src_len - 1` seeded random non-special ids followed by EOS.
fn make_sources(
    r: &Resolved,
    bos: Option<u32>,
    vocab: usize,
    batch: usize,
    src_len: usize,
    seed: u64,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let eos = *r
        .eos
        .first()
        .ok_or_else(|| anyhow!("the model's generation config has no eos_token_id"))?;
    // The low ids are special in every family here (<s>/<pad>/</s>/<unk> in BART,
    // </s>/<unk> in Marian, <pad>/</s>/<unk> in T5); the others come from the config.
    let mut special: Vec<u32> = vec![0, 1, 2, 3, r.pad, r.decoder_start];
    special.extend(&r.eos);
    special.extend(bos);
    let usable = (0..vocab as u32).filter(|id| !special.contains(id)).count();
    if usable == 0 {
        bail!("vocabulary of {vocab} ids has no non-special token");
    }
    let mut rng = SplitMix64::new(seed ^ 0xbe4c_0000);
    let mut sources = Vec::with_capacity(batch);
    for _ in 0..batch {
        let mut s = Vec::with_capacity(src_len);
        while s.len() < src_len - 1 {
            let id = (rng.next_u64() % vocab as u64) as u32;
            if !special.contains(&id) {
                s.push(id);
            }
        }
        s.push(eos);
        sources.push(s);
    }
    Ok(sources)
}

/// The model's config with the output length forced to exactly `new_tokens`.
fn forced_config(
    base: &GenerationConfig,
    beams: usize,
    new_tokens: usize,
    vocab: usize,
) -> anyhow::Result<Resolved> {
    let mut cfg = base.clone();
    cfg.num_beams = Some(beams);
    cfg.min_new_tokens = Some(new_tokens);
    cfg.max_new_tokens = Some(new_tokens);
    cfg.min_length = None;
    cfg.max_length = None;
    cfg.forced_bos_token_id = None;
    cfg.forced_eos_token_id = None;
    // distilbart-cnn's config asks for no_repeat_ngram_size 3: the other engines' runs don't
    cfg.no_repeat_ngram_size = None;
    cfg.repetition_penalty = None;
    cfg.length_penalty = Some(1.0);
    cfg.early_stopping = Some(EarlyStopping::Heuristic);
    cfg.num_return_sequences = None;
    let r = cfg.resolve(vocab)?;
    // resolve() caps max_length at the model's positions: the workload must still fit.
    if r.max_length < new_tokens + 1 {
        bail!(
            "{new_tokens} new tokens do not fit the model's decoder length ({})",
            r.max_length
        );
    }
    Ok(r)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Median seconds of `model.encode` on the padded batch (after one warm-up).
fn time_encoder(
    model: &dyn Seq2SeqModel,
    sources: &[Vec<u32>],
    pad: u32,
    runs: usize,
    device: &Device,
) -> anyhow::Result<f64> {
    let (ids, mask) = pad_batch(sources, pad, device)?;
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        let t = Instant::now();
        let enc = model.encode(&ids, &mask)?;
        // Wait for the result (a no-op on CPU, where candle computes eagerly; GPU kernels
        // run asynchronously).
        device.synchronize()?;
        drop(enc);
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(median(times))
}

/// Seconds of each timed full generate() (after one warm-up); checks the output lengths.
fn time_generate(
    model: &dyn Seq2SeqModel,
    sources: &[Vec<u32>],
    r: &Resolved,
    new_tokens: usize,
    runs: usize,
    device: &Device,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        let t = Instant::now();
        let out = generate_resolved(model, sources, r, device)?;
        let secs = t.elapsed().as_secs_f64();
        if let Some((k, o)) = out.iter().enumerate().find(|(_, o)| o.len() != new_tokens) {
            bail!(
                "source {k}: generated {} tokens, expected exactly {new_tokens}",
                o.len()
            );
        }
        if i > 0 {
            times.push(secs);
        }
    }
    Ok(times)
}

/// Markdown table of the rows.
pub fn render_table(rows: &[BenchRow]) -> String {
    let mut s = String::from(
        "| model | quantize | threads | beams | batch x src -> new | median s | tokens/s \
         | encoder ms | decoder ms/step | peak RSS MB | kernel |\n\
         |---|---|---:|---:|---|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let rss = r.peak_rss_mb.map_or("-".to_string(), |m| format!("{m:.0}"));
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} x {} -> {} | {:.4} | {:.1} | {:.2} | {:.3} | {} | {} |\n",
            r.model,
            r.quantize,
            r.threads,
            r.beams,
            r.batch,
            r.src_len,
            r.new_tokens,
            r.median_s,
            r.tokens_per_s,
            r.encoder_ms,
            r.decoder_ms_per_step,
            rss,
            r.kernel
        ));
    }
    s.pop();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shapes() {
        assert_eq!(
            parse_shape("tiny-marian"),
            Ok(BenchShape {
                arch: Arch::Marian,
                shape: Shape::Tiny
            })
        );
        assert_eq!(
            parse_shape("opus-mt-vi-en").map(|s| s.arch),
            Ok(Arch::Marian)
        );
        assert_eq!(parse_shape("flan-t5-base").map(|s| s.arch), Ok(Arch::T5v11));
        assert!(parse_shape("tiny").is_err());
        assert!(parse_shape("tiny-gpt2").is_err());
        assert!(parse_shape("huge").is_err());
        assert_eq!(
            parse_shape("tiny-t5").map(|s| s.name()),
            Ok("tiny-t5".into())
        );
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn sources_have_exact_length_and_end_in_eos() {
        let cfg = GenerationConfig {
            eos_token_id: Some(crate::generate::TokenIds::One(0)),
            pad_token_id: Some(9),
            decoder_start_token_id: Some(9),
            ..Default::default()
        };
        let r = forced_config(&cfg, 1, 4, 10).unwrap();
        let s = make_sources(&r, None, 10, 3, 6, 1).unwrap();
        assert_eq!(s.len(), 3);
        for src in &s {
            assert_eq!(src.len(), 6);
            assert_eq!(src[5], 0);
            assert!(src[..5].iter().all(|&id| (4..9).contains(&id)));
        }
        assert_eq!(s, make_sources(&r, None, 10, 3, 6, 1).unwrap());
        assert_ne!(s, make_sources(&r, None, 10, 3, 6, 2).unwrap());
    }
}
