//! `tomtat random-model`: write a random-weight model of a real shape in the Hub layout.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::{exit, Global};
use crate::testkit::random_model::{self as random, RandomSpec, Shape, Variant};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
tomtat random-model --arch marian --shape tiny --out /tmp/marian-tiny\n  \
tomtat random-model --shape opus-mt-vi-en --tokenizer tok/marian-vi-en --out models/vi-en\n  \
tomtat random-model --arch t5v11 --shape tiny --vocab-size 512 --seed 3 --out /tmp/t5\n\n\
Writes config.json, generation_config.json and model.safetensors (HF names and shapes, f32, \
seeded non-degenerate random init) plus, with --tokenizer, that directory's tokenizer files. \
Vocabulary size and special token ids come from the tokenizer directory's config.json \
(or its vocab.json / tokenizer.json), else from --vocab-size or the shape.")]
pub struct RandomModelArgs {
    /// Architecture; optional for a named shape (implied by it).
    #[arg(long, value_enum)]
    pub arch: Option<ArchArg>,
    /// tiny (~few hundred KB, for tests) or the shape of a real checkpoint.
    #[arg(long, value_enum, default_value_t = ShapeArg::Tiny)]
    pub shape: ShapeArg,
    /// Copy this directory's tokenizer files and take vocab size / special ids from it.
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary size (default: the tokenizer's, else the shape's).
    #[arg(long, value_name = "N")]
    pub vocab_size: Option<usize>,
    /// Seed of the weights: the same seed gives byte-identical files.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchArg {
    Marian,
    Bart,
    Mbart,
    T5,
    T5v11,
}

impl From<ArchArg> for Variant {
    fn from(a: ArchArg) -> Variant {
        match a {
            ArchArg::Marian => Variant::Marian,
            ArchArg::Bart => Variant::Bart,
            ArchArg::Mbart => Variant::Mbart,
            ArchArg::T5 => Variant::T5,
            ArchArg::T5v11 => Variant::T5v11,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShapeArg {
    Tiny,
    #[value(name = "opus-mt-vi-en")]
    OpusMtViEn,
    #[value(name = "distilbart-cnn-12-6")]
    DistilbartCnn12_6,
    #[value(name = "bart-large-cnn")]
    BartLargeCnn,
    #[value(name = "t5-small")]
    T5Small,
    #[value(name = "flan-t5-base")]
    FlanT5Base,
}

impl From<ShapeArg> for Shape {
    fn from(s: ShapeArg) -> Shape {
        match s {
            ShapeArg::Tiny => Shape::Tiny,
            ShapeArg::OpusMtViEn => Shape::OpusMtViEn,
            ShapeArg::DistilbartCnn12_6 => Shape::DistilbartCnn12_6,
            ShapeArg::BartLargeCnn => Shape::BartLargeCnn,
            ShapeArg::T5Small => Shape::T5Small,
            ShapeArg::FlanT5Base => Shape::FlanT5Base,
        }
    }
}

pub fn run(args: RandomModelArgs, g: Global) -> u8 {
    let shape = Shape::from(args.shape);
    let arch = match (args.arch.map(Variant::from), shape.arch()) {
        (Some(a), _) => a,
        (None, Some(a)) => a,
        (None, None) => {
            eprintln!("error: --shape tiny needs --arch (marian, bart, mbart, t5 or t5v11)");
            return exit::FATAL;
        }
    };
    let spec = RandomSpec {
        arch,
        shape,
        vocab_size: args.vocab_size,
        tokenizer: args.tokenizer,
        seed: args.seed,
    };
    let t = Instant::now();
    let plan = match random::plan(&spec) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FATAL;
        }
    };
    if let Err(e) = plan.write(&args.out) {
        eprintln!("error: {e}");
        return exit::FATAL;
    }
    if !g.quiet {
        eprintln!(
            "wrote {} {} model ({} tensors, {:.1}M parameters, vocab {}) to {} in {:.1}s",
            shape,
            arch,
            plan.tensors.len(),
            plan.num_parameters() as f64 / 1e6,
            plan.dims.vocab_size,
            args.out.display(),
            t.elapsed().as_secs_f64()
        );
    }
    exit::OK
}
