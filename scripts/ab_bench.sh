#!/usr/bin/env bash
# Same-session A/B of two tomtat binaries on one model view (NOT run in CI):
#   scripts/ab_bench.sh BIN_A BIN_B VIEW_DIR [ROUNDS]
# VIEW_DIR is a bench view made by scripts/bench_compare.py (holds bench_inputs.json).
# Each round runs, for A then B, `tomtat bench --inputs` at 1 thread, beams 1 and 4, f32 and
# q8 (3 timed runs after a warm-up, median); rounds interleave so both binaries share the
# machine's noise. Extra environment (TOMTAT_CPU_ISA=avx2, ...) passes through to both.
# Prints one line per (round, binary, precision, beams): tokens/s, peak RSS MB, kernel.
set -euo pipefail
a=$1 b=$2 view=$3 rounds=${4:-2}
for r in $(seq "$rounds"); do
    for bin in "$a" "$b"; do
        for q in none q8; do
            "$bin" bench --model "$view" --inputs "$view/bench_inputs.json" --quantize "$q" \
                --beams 1,4 --threads-list 1 --runs 3 --new-tokens 30 2>/dev/null |
                awk -F'|' -v r="$r" -v bin="$bin" '/^\| .* \| (none|q8) \|/ {
                    gsub(/ /, "", $3); gsub(/ /, "", $5); gsub(/ /, "", $8); gsub(/ /, "", $11)
                    printf "round %s  %-40s %-4s beams %s  %8s tok/s  %5s MB  %s\n", r, bin, $3, $5, $8, $11, $12 }'
        done
    done
done
