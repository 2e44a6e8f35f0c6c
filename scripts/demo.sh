#!/usr/bin/env bash
# The main job on a machine without Hugging Face Hub access: builds two small random-weight
# models in the Hub's file layout (real tokenizers from tests/fixtures, random weights: the
# English is gibberish, the pipeline is real) and runs `tomtat run` on 20 VietNews articles.
# With Hub access, use the default models instead (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-out}
cargo build --quiet   # the dev profile compiles dependencies optimized (shared with `cargo test`)
bin=target/debug/tomtat
mkdir -p "$out/models"
$bin random-model --arch marian --tokenizer tests/fixtures/tokenizers/marian-vi-en --out "$out/models/translator"
$bin random-model --arch bart --tokenizer tests/fixtures/tokenizers/bart-bpe --out "$out/models/summarizer"
head -20 ../shared/data/vietnews/val300.jsonl > "$out/articles.jsonl"
$bin run "$out/articles.jsonl" --translator "$out/models/translator" --summarizer "$out/models/summarizer" \
    --text-field body_sentences --beams 1 -o "$out/briefs.jsonl" --markdown "$out/briefs"
echo "records: $out/briefs.jsonl, Markdown briefs: $out/briefs/"
