//! tomtat: Vietnamese news articles in, English articles and briefs out.
//!
//! The data flow, one module per stage:
//! `io` (read articles) -> `text` (NFC, paragraphs, sentences) -> `tokenize` -> `model`
//! (encoder-decoder transformers) -> `generate` (greedy / beam search) -> `io` (JSONL out).
//! `hub` finds and loads model files; `kernels` holds the CPU/GPU compute kernels the model
//! runs on (GEMMs, int8, SIMD math, host attention, CUDA glue); `cli` is the command-line
//! front end over this library. `testkit` holds the random-model writer, split evaluation
//! and test mocks that the CLI's dev commands and the tests use, not the translation path.
pub mod batch;
pub mod cli;
pub mod device;
pub mod generate;
pub mod hub;
pub mod io;
pub mod kernels;
pub mod knobs;
pub mod model;
pub mod pipeline;
pub mod testkit;
pub mod text;
pub mod tokenize;
