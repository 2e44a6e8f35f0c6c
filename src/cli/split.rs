//! `tomtat split`: paragraphs and sentences with character offsets.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde_json::{json, Map, Value};

use super::{exit, Global};
use crate::io::{self, Document, InputError, JsonlWriter, ReadOptions};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
tomtat split article.txt\n  \
tomtat split articles/ --output sentences.jsonl\n  \
echo 'Ông Nguyễn Văn T. đến TP.HCM lúc 10h30. Trời mưa.' | tomtat split - --format lines\n\n\
Each record: {\"id\", ...passthrough fields, \"paragraphs\": [[{\"text\", \"start\", \"end\"}, ...], ...]}\n\
where start/end are character (Unicode code point) offsets into the NFC-normalized article text.")]
pub struct SplitArgs {
    /// Input files, directories or - for stdin.
    #[arg(value_name = "INPUT", default_value = "-")]
    pub inputs: Vec<String>,
    /// Write records here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// jsonl: one record per article; lines: one sentence a line.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Refuse articles larger than this many bytes (never truncated).
    #[arg(long, value_name = "BYTES", default_value_t = io::DEFAULT_MAX_ARTICLE_BYTES)]
    pub max_article_bytes: usize,
    /// JSONL field (a string, or an array of sentence strings) or CSV column with the text.
    #[arg(long, value_name = "NAME", default_value = "text")]
    pub text_field: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Jsonl,
    Lines,
}

/// Documents are split in parallel in chunks of this many, written in input order.
const CHUNK: usize = 256;

pub fn run(args: SplitArgs, g: Global) -> u8 {
    let mut writer = match JsonlWriter::create(args.output.as_deref(), false) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", display(&args.output));
            return exit::FATAL;
        }
    };
    let opts = ReadOptions {
        max_article_bytes: args.max_article_bytes,
        text_field: args.text_field.clone(),
    };
    let mut docs = io::documents(&args.inputs, opts);
    let mut failed = 0usize;
    loop {
        let chunk: Vec<Result<Document, InputError>> = docs.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        if !g.quiet {
            for w in chunk.iter().flatten().flat_map(|d| &d.warnings) {
                eprintln!("warning: {w}");
            }
        }
        let outs: Vec<Result<Vec<String>, InputError>> = chunk
            .into_par_iter()
            .map(|d| d.map(|d| render(&d, args.format)))
            .collect();
        for out in outs {
            match out {
                Ok(lines) => {
                    for l in lines {
                        if let Err(e) = writer.write_line(&l) {
                            eprintln!("error: cannot write {}: {e}", display(&args.output));
                            return exit::FATAL;
                        }
                    }
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("error: {e}");
                }
            }
        }
    }
    if let Err(e) = writer.flush() {
        eprintln!("error: cannot write {}: {e}", display(&args.output));
        return exit::FATAL;
    }
    if failed > 0 {
        eprintln!("split: {failed} document(s) failed");
        exit::SOME_FAILED
    } else {
        exit::OK
    }
}

fn display(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<stdout>".into())
}

/// One document's output lines.
fn render(doc: &Document, format: Format) -> Vec<String> {
    let paragraphs = crate::text::split_paragraphs(&doc.text);
    // Char offsets -> byte offsets once per document, to slice the sentence texts.
    let byte_at: Vec<usize> = doc
        .text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(doc.text.len()))
        .collect();
    let text_of = |s: &crate::text::Span| &doc.text[byte_at[s.start]..byte_at[s.end]];
    match format {
        Format::Lines => paragraphs
            .iter()
            .flatten()
            .map(|s| text_of(s).to_string())
            .collect(),
        Format::Jsonl => {
            let paras: Vec<Value> = paragraphs
                .iter()
                .map(|p| {
                    Value::Array(
                        p.iter()
                            .map(|s| json!({"text": text_of(s), "start": s.start, "end": s.end}))
                            .collect(),
                    )
                })
                .collect();
            let mut rec = Map::new();
            rec.insert("id".into(), Value::String(doc.id.clone()));
            for (k, v) in &doc.extra {
                rec.insert(k.clone(), v.clone());
            }
            rec.insert("paragraphs".into(), Value::Array(paras));
            vec![Value::Object(rec).to_string()]
        }
    }
}
