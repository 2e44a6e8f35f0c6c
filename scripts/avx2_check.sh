#!/usr/bin/env bash
# Issue 19's acceptance run, for a machine whose CPU has AVX2 but no AVX-512 (NOT run in CI):
#   scripts/avx2_check.sh [PYTHON]
# PYTHON: an interpreter with torch, transformers and ctranslate2 (default: python3).
# Checks the CPU's flags, builds tomtat, writes the opus-mt-vi-en shape, then runs tomtat f32/q8
# against CTranslate2 float32/int8 at 1 thread, greedy and beam 4, W1, in one session
# (scripts/bench_compare.py), and prints which kernels tomtat chose. On a CPU with AVX-512 it
# refuses: capping the ISA there is a proxy (benches/RESULTS.md), not this measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
flags=$(grep -m1 '^flags' /proc/cpuinfo)
if grep -qw avx512f <<<"$flags"; then
    echo "this CPU has AVX-512: run this on an AVX2-only machine" >&2
    exit 2
fi
grep -qw avx2 <<<"$flags" || { echo "this CPU has no AVX2" >&2; exit 2; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "AVX-VNNI: $(grep -qw avx_vnni <<<"$flags" && echo yes || echo no)"
cargo build --release
work=${TOMTAT_AVX2_DIR:-target/avx2-check}
mkdir -p "$work"
[ -f "$work/opus-mt-vi-en/config.json" ] ||
    target/release/tomtat random-model --shape opus-mt-vi-en --out "$work/opus-mt-vi-en"
target/release/tomtat bench --shape tiny-marian --quantize q8 --beams 1 --threads-list 1 \
    --runs 1 2>&1 | grep 'kernels:'
HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error "$py" scripts/bench_compare.py \
    "$work/opus-mt-vi-en" --threads 1 --beams 1,4 --runs 3 \
    --engines ct2-float32,ct2-int8,tomtat-f32,tomtat-q8 --bin target/release/tomtat \
    --results "$work/results.jsonl" --note "issue 19 acceptance, AVX2-only CPU"
echo "done when: tomtat f32 >= 1.2x CT2 float32 and q8 >= 1.2x CT2 int8, greedy and beam 4," \
    "peak RSS <= CT2 (table above; JSON lines in $work/results.jsonl)"
