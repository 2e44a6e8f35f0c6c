//! Command-line front end over the library. Each subcommand lives in its own file with its
//! clap `Args` struct and a `run` function returning the process exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod generate;
pub mod models;
pub mod random_model;
pub mod run;
pub mod split;
pub mod tokenize;

/// Exit codes shared by every command.
pub mod exit {
    /// Everything done.
    pub const OK: u8 = 0;
    /// Some documents failed (each reported on stderr); the others were written.
    pub const SOME_FAILED: u8 = 1;
    /// Usage, model or setup error: nothing useful could be done.
    pub const FATAL: u8 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "tomtat",
    version,
    about = "Vietnamese news articles in, English articles and briefs out",
    long_about = "tomtat (\"tóm tắt\", Vietnamese for summary) reads a batch of Vietnamese \
news articles, splits them into sentences, translates them to English and writes an English \
brief of each, with open seq2seq models from the Hugging Face Hub, on CPU or GPU.",
    after_help = "Examples:\n  \
tomtat split articles/ --format lines\n  \
cat news.jsonl | tomtat split - --output sentences.jsonl\n\n\
Inputs everywhere: a .txt file (one article, id = file stem), a .jsonl file ({\"id\", \
\"text\", ...} a line), a .csv/.tsv file with a header row (a row an article: the text column, \
id if present), a directory of those, or - for stdin (JSONL or plain text)."
)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr; no progress bars or run report.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Compute threads (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Translate and summarize: Vietnamese articles in, English articles and briefs out.
    Run(run::RunArgs),
    /// Translate articles to English (sentence by sentence, paragraphs kept).
    Translate(run::RunArgs),
    /// Summarize articles into briefs (English input, or Vietnamese with a Vietnamese model).
    Summarize(run::RunArgs),
    /// Split articles into paragraphs and sentences (with character offsets).
    Split(split::SplitArgs),
    /// Write a random-weight model of a real shape in the Hub file layout (for tests/benches).
    #[command(name = "random-model")]
    RandomModel(random_model::RandomModelArgs),
    /// Tokenize stdin lines with a model's tokenizer: JSONL of ids (and pieces) out.
    Tokenize(tokenize::TokenizeArgs),
    /// List, inspect and download models (Hugging Face Hub, cache, offline mode).
    Models(models::ModelsArgs),
    /// Run a seq2seq model's greedy / beam search on token ids from stdin (JSON Lines out).
    Generate(generate::GenerateArgs),
    /// Benchmark generation on a model or a random model of a real shape (table + JSON).
    Bench(bench::BenchArgs),
}

/// Global options every command may look at.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub verbose: u8,
    pub quiet: bool,
    pub threads: Option<usize>,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::FATAL
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let global = Global {
        verbose: cli.verbose,
        quiet: cli.quiet,
        threads: cli.threads,
    };
    init_logging(global);
    if let Some(n) = global.threads {
        // candle's element-wise CPU kernels run on its own spinning thread pool, sized from
        // RAYON_NUM_THREADS when first used: without this, `--threads 1` still kept a second
        // core busy spinning. Set before any candle call, while the process has one thread.
        crate::knobs::set_candle_threads(n);
        // our GEMM kernels and data-parallel stages use the global rayon pool
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let code: u8 = match cli.command {
        Command::Run(a) => run::run(a, crate::pipeline::Stages::Both, global),
        Command::Translate(a) => run::run(a, crate::pipeline::Stages::Translate, global),
        Command::Summarize(a) => run::run(a, crate::pipeline::Stages::Summarize, global),
        Command::Split(a) => split::run(a, global),
        Command::RandomModel(a) => random_model::run(a, global),
        Command::Tokenize(a) => tokenize::run(a, global),
        Command::Models(a) => models::run(a, global),
        Command::Generate(args) => generate::run(args, global),
        Command::Bench(a) => bench::run(a, global),
    };
    ExitCode::from(code)
}

fn init_logging(g: Global) {
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = crate::knobs::knobs()
        .log
        .as_deref()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
