//! Test and development support, not the translation path: the random-model writer (the
//! `random-model` command, `bench --shape`, tests and benches), the sentence-split evaluation
//! (`examples/split_eval.rs`, `tests/split_eval.rs`) and the mocks the unit tests drive
//! `generate` and the pipeline with.

#[cfg(test)]
pub(crate) mod mock;
#[cfg(test)]
pub(crate) mod pipeline_mock;
pub mod random_model;
pub mod split_eval;
