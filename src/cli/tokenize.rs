//! `tomtat tokenize`: text lines on stdin -> one JSON record of token ids (and pieces) per
//! line on stdout, in order. A debugging and parity tool for the tokenizer stage.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::{exit, Global};
use crate::tokenize::Tokenizer;

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
echo 'Xin chào thế giới' | tomtat tokenize --model models/opus-mt-vi-en\n\n\
Output, one line per input line: {\"ids\": [...], \"pieces\": [...]}. The ids include the \
model's special tokens (e.g. </s>).")]
pub struct TokenizeArgs {
    /// A local directory with the tokenizer files (tokenizer.json, Marian source.spm /
    /// target.spm / vocab.json, spiece.model, sentencepiece.bpe.model, vocab.json +
    /// merges.txt, or a *.model), or a model name: built-in, owner/name[@rev] (downloaded
    /// into the Hugging Face cache unless offline) or a manifest .toml.
    #[arg(long, value_name = "DIR|NAME")]
    pub model: PathBuf,
    /// Write only {"ids": [...]} per line.
    #[arg(long)]
    pub ids_only: bool,
}

#[derive(Serialize)]
struct Record<'a> {
    ids: &'a [u32],
    #[serde(skip_serializing_if = "Option::is_none")]
    pieces: Option<Vec<String>>,
}

/// Lines encoded per parallel batch (keeps memory flat on long inputs).
const BATCH: usize = 4096;

pub fn run(args: TokenizeArgs, g: Global) -> u8 {
    match run_inner(&args, g) {
        Ok(()) => exit::OK,
        Err(e) => {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return exit::OK;
            }
            eprintln!("error: {e:#}");
            exit::FATAL
        }
    }
}

fn run_inner(args: &TokenizeArgs, g: Global) -> Result<()> {
    // A directory is used as it is (it may hold only tokenizer files); anything else is
    // resolved like every other --model.
    let dir = if args.model.is_dir() {
        args.model.clone()
    } else {
        let mut opts = crate::hub::HubOptions::from_env();
        opts.progress = !g.quiet;
        let spec = args.model.to_string_lossy();
        crate::hub::resolve(&spec, &opts)
            .with_context(|| format!("--model {spec}"))?
            .1
            .root
    };
    let tok = Tokenizer::from_dir(&dir)?;
    tracing::info!(
        kind = tok.kind(),
        vocab_size = tok.vocab_size(),
        "loaded tokenizer from {}",
        args.model.display()
    );
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut lines = stdin.lines();
    let mut line_no = 0usize;
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        for line in lines.by_ref().take(BATCH) {
            line_no += 1;
            batch.push(line.with_context(|| format!("reading stdin line {line_no}"))?);
        }
        if batch.is_empty() {
            break;
        }
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let encoded = tok.encode_batch(&refs)?;
        for ids in &encoded {
            let rec = Record {
                ids,
                pieces: (!args.ids_only).then(|| tok.pieces(ids)),
            };
            serde_json::to_writer(&mut out, &rec)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}
