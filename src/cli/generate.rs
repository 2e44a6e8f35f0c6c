//! `tomtat generate`: run a seq2seq model's greedy / beam search over stdin lines.
//!
//! One source per input line (with `--ids`: space-separated token ids, used as they are);
//! one JSON record per input line on stdout, in input order. Lines are decoded in batches
//! (in input order, up to `--batch-size` sources or a token budget per `generate()` call).

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use candle_core::Device;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{exit, Global};
use crate::generate::{generate_resolved, Resolved};
use crate::model::Seq2SeqModel;

/// Source tokens per generate() call, beams not counted: bounds the encoder batch.
const TOKEN_BUDGET: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Quantize {
    None,
    Q8,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
echo '37 12 5 0' | tomtat generate --model tests/fixtures/models/marian --ids --beams 4\n  \
tomtat generate --model models/opus-mt-vi-en --ids --max-new-tokens 64 < ids.txt\n\n\
Output: one JSON record per input line, in order: {\"line\": N, \"ids\": [...]} (generated \
ids after the decoder start token, EOS included when generated), or {\"line\": N, \
\"error\": \"...\"}. Defaults come from the model's generation_config.json / config.json, then its manifest \
(built-in names, .toml files), as in `tomtat run`.")]
pub struct GenerateArgs {
    /// Model directory (config.json, model.safetensors, generation_config.json).
    #[arg(long, value_name = "DIR|NAME")]
    pub model: String,
    /// Input lines are space-separated source token ids, used as they are (no special
    /// tokens added).
    #[arg(long)]
    pub ids: bool,
    /// Beam size (1 = greedy). Default: the model's num_beams.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub beams: Option<u32>,
    /// Minimum number of generated tokens (EOS is masked before).
    #[arg(long, value_name = "N")]
    pub min_new_tokens: Option<usize>,
    /// Maximum number of generated tokens.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_new_tokens: Option<u32>,
    /// Weight quantization.
    #[arg(long, value_enum, default_value = "none")]
    pub quantize: Quantize,
    /// Most sources per generate() call.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    #[command(flatten)]
    pub dev: crate::device::DeviceArgs,
}

/// How `generate` and `bench` load `spec` (one loader with `run`: manifests and their
/// generation defaults apply the same way).
pub(crate) fn load(
    spec: &str,
    dev: &crate::device::DeviceArgs,
    quantize: Quantize,
    quiet: bool,
    need_tokenizer: bool,
) -> anyhow::Result<crate::pipeline::engine::LoadedModel> {
    let opts = crate::pipeline::engine::EngineOptions {
        device: dev.device.clone(),
        dtype: dev.dtype,
        quantize: quantize == Quantize::Q8,
        quiet,
        ..Default::default()
    };
    crate::pipeline::engine::load_model(spec, &opts, need_tokenizer)
        .with_context(|| format!("--model {spec}"))
}

pub fn run(args: GenerateArgs, global: Global) -> u8 {
    match run_inner(&args, global) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FATAL
        }
    }
}

/// Outcome of one input line.
enum LineResult {
    Pending(Vec<u32>),
    Done(Vec<u32>),
    Failed(String),
}

fn run_inner(args: &GenerateArgs, global: Global) -> anyhow::Result<u8> {
    let loaded = load(
        &args.model,
        &args.dev,
        args.quantize,
        global.quiet,
        !args.ids,
    )?;
    // Text input goes through the model's own tokenizer and prefix (T5's "summarize: ",
    // BART CNN's " "), as in `tomtat run`; --ids bypasses both.
    let summarizer = loaded
        .manifest
        .as_ref()
        .is_some_and(|m| m.task != crate::hub::Task::TranslateViEn);
    let prefix = loaded.prefix(summarizer);
    let (model, device, mut cfg) = (loaded.model, loaded.device, loaded.gen);
    let tokenizer = if args.ids { None } else { loaded.tokenizer };
    apply_overrides(args, &mut cfg);
    let resolved = cfg.resolve(model.vocab_size())?;

    let mut lines = read_lines(tokenizer.as_ref(), model.vocab_size(), &prefix)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let batcher = Batcher {
        model: model.as_ref(),
        resolved: &resolved,
        device: &device,
        tokenizer: tokenizer.as_ref(),
        batch_size: args.batch_size as usize,
    };
    let (gen_time, n_tokens) = batcher.decode_and_print(&mut out, &mut lines)?;
    out.flush().context("writing stdout")?;

    let failed = lines
        .iter()
        .filter(|l| matches!(l, LineResult::Failed(_)))
        .count();
    if !global.quiet {
        let secs = gen_time.as_secs_f64();
        let rate = if secs > 0.0 {
            n_tokens as f64 / secs
        } else {
            0.0
        };
        eprintln!("generate: {n_tokens} tokens in {secs:.3} s ({rate:.1} tok/s)");
    }
    Ok(if failed > 0 {
        exit::SOME_FAILED
    } else {
        exit::OK
    })
}

/// The command line's `--beams`, `--min-new-tokens` and `--max-new-tokens` over the
/// model's generation defaults.
fn apply_overrides(args: &GenerateArgs, cfg: &mut crate::generate::GenerationConfig) {
    if let Some(k) = args.beams {
        cfg.num_beams = Some(k as usize);
    }
    if let Some(n) = args.min_new_tokens {
        cfg.min_new_tokens = Some(n);
    }
    if let Some(n) = args.max_new_tokens {
        cfg.max_new_tokens = Some(n as usize);
    }
}

/// Every stdin line parsed into source ids (through `tokenizer` with `prefix`, or as ids
/// below `vocab` without one); a line that does not parse is recorded as failed.
fn read_lines(
    tokenizer: Option<&crate::tokenize::Tokenizer>,
    vocab: usize,
    prefix: &str,
) -> anyhow::Result<Vec<LineResult>> {
    let mut lines: Vec<LineResult> = Vec::new();
    let stdin = std::io::stdin();
    for (i, line) in stdin.lock().split(b'\n').enumerate() {
        let line = line.context("reading stdin")?;
        let parsed = match tokenizer {
            None => parse_ids_line(&line, vocab),
            Some(tok) => parse_text_line(&line, tok, prefix),
        };
        lines.push(match parsed {
            Ok(ids) => LineResult::Pending(ids),
            Err(e) => LineResult::Failed(format!("line {}: {e}", i + 1)),
        });
    }
    Ok(lines)
}

/// What decoding the lines in batches needs: the model, its resolved parameters, and the
/// tokenizer that turns output ids into text (none with `--ids`).
struct Batcher<'a> {
    model: &'a dyn Seq2SeqModel,
    resolved: &'a Resolved,
    device: &'a Device,
    tokenizer: Option<&'a crate::tokenize::Tokenizer>,
    batch_size: usize,
}

impl Batcher<'_> {
    /// Decodes the pending lines in input order, in batches of up to `batch_size` sources
    /// and [`TOKEN_BUDGET`] source tokens, printing each line's record as soon as it and
    /// all lines before it are final. Returns the generation time and generated tokens.
    fn decode_and_print(
        &self,
        out: &mut impl Write,
        lines: &mut [LineResult],
    ) -> anyhow::Result<(Duration, usize)> {
        let mut printed = 0usize;
        let mut gen_time = Duration::ZERO;
        let mut n_tokens = 0usize;
        let mut batch: Vec<usize> = Vec::new();
        let mut batch_tokens = 0usize;
        let mut i = 0usize;
        while i <= lines.len() {
            let pending_len = match lines.get(i) {
                Some(LineResult::Pending(ids)) => Some(ids.len()),
                _ => None,
            };
            let flush = match pending_len {
                Some(len) => {
                    !batch.is_empty()
                        && (batch.len() >= self.batch_size || batch_tokens + len > TOKEN_BUDGET)
                }
                None => i == lines.len() && !batch.is_empty(),
            };
            if flush {
                gen_time += run_batch(self.model, self.resolved, self.device, lines, &batch);
                batch.clear();
                batch_tokens = 0;
                // Everything before the next pending line is final: print it in order.
                printed = print_ready(out, lines, printed, i, &mut n_tokens, self.tokenizer)?;
            }
            if let Some(len) = pending_len {
                batch.push(i);
                batch_tokens += len;
            }
            i += 1;
        }
        print_ready(
            out,
            lines,
            printed,
            lines.len(),
            &mut n_tokens,
            self.tokenizer,
        )?;
        Ok((gen_time, n_tokens))
    }
}

/// Decodes the lines `batch` (all pending) together; if the batch fails, each line alone,
/// so that one bad line does not take the others down. Returns the generation time.
fn run_batch(
    model: &dyn Seq2SeqModel,
    r: &Resolved,
    device: &Device,
    lines: &mut [LineResult],
    batch: &[usize],
) -> Duration {
    let sources: Vec<Vec<u32>> = batch
        .iter()
        .map(|&i| match &lines[i] {
            LineResult::Pending(ids) => ids.clone(),
            _ => Vec::new(),
        })
        .collect();
    let start = Instant::now();
    let result = generate_resolved(model, &sources, r, device);
    let mut elapsed = start.elapsed();
    match result {
        Ok(outs) => {
            for (&i, ids) in batch.iter().zip(outs) {
                lines[i] = LineResult::Done(ids);
            }
        }
        Err(batch_err) => {
            tracing::warn!(
                "batch of {} lines failed ({batch_err}); retrying one by one",
                batch.len()
            );
            for (&i, src) in batch.iter().zip(sources) {
                let start = Instant::now();
                let one = generate_resolved(model, std::slice::from_ref(&src), r, device);
                elapsed += start.elapsed();
                lines[i] = match one {
                    Ok(mut v) => LineResult::Done(v.pop().unwrap_or_default()),
                    Err(e) => LineResult::Failed(format!("line {}: {e}", i + 1)),
                };
            }
        }
    }
    elapsed
}

/// Prints the records of lines `from..to` (all final) and returns `to`.
fn print_ready(
    out: &mut impl Write,
    lines: &[LineResult],
    from: usize,
    to: usize,
    n_tokens: &mut usize,
    tokenizer: Option<&crate::tokenize::Tokenizer>,
) -> anyhow::Result<usize> {
    for (i, line) in lines.iter().enumerate().take(to).skip(from) {
        let record = match line {
            LineResult::Done(ids) => {
                *n_tokens += ids.len();
                match tokenizer.map(|t| t.decode(ids, true)) {
                    None => json!({"line": i + 1, "ids": ids}),
                    Some(Ok(text)) => json!({"line": i + 1, "ids": ids, "text": text}),
                    Some(Err(e)) => json!({"line": i + 1, "ids": ids, "error": e.to_string()}),
                }
            }
            LineResult::Failed(msg) => {
                eprintln!("error: {msg}");
                json!({"line": i + 1, "error": msg})
            }
            LineResult::Pending(_) => return Err(anyhow!("internal: line {} not decoded", i + 1)),
        };
        writeln!(out, "{record}").context("writing stdout")?;
    }
    Ok(to.max(from))
}

fn parse_text_line(
    line: &[u8],
    tok: &crate::tokenize::Tokenizer,
    prefix: &str,
) -> Result<Vec<u32>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not valid UTF-8".to_string())?;
    let text = crate::text::normalize(text.strip_suffix('\r').unwrap_or(text));
    if text.trim().is_empty() {
        return Err("empty line (no text)".into());
    }
    tok.encode(&format!("{prefix}{text}"))
        .map_err(|e| e.to_string())
}

fn parse_ids_line(line: &[u8], vocab: usize) -> Result<Vec<u32>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not valid UTF-8".to_string())?;
    let text = text.strip_suffix('\r').unwrap_or(text);
    let mut ids = Vec::new();
    for tok in text.split_whitespace() {
        let id: u32 = tok
            .parse()
            .map_err(|_| format!("{tok:?} is not a token id"))?;
        if id as usize >= vocab {
            return Err(format!(
                "token id {id} is outside the vocabulary (size {vocab})"
            ));
        }
        ids.push(id);
    }
    if ids.is_empty() {
        return Err("empty line (no source tokens)".into());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_id_lines() {
        assert_eq!(parse_ids_line(b"3 4  5\r", 10), Ok(vec![3, 4, 5]));
        assert!(parse_ids_line(b"", 10).is_err());
        assert!(parse_ids_line(b"   ", 10).is_err());
        assert!(parse_ids_line(b"3 x", 10).is_err());
        assert!(parse_ids_line(b"3 -1", 10).is_err());
        assert!(parse_ids_line(b"3 10", 10).is_err());
        assert!(parse_ids_line(&[0xff, b'3'], 10).is_err());
    }
}
