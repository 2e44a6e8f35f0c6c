#!/usr/bin/env bash
# One-shot GPU check, for a machine with an NVIDIA GPU, its driver, Python + torch +
# transformers, but no Rust toolchain and no network. Everything Rust comes prebuilt in
# gpu-bundle/ (scripts/gpu_bundle.sh, run on the build machine):
#   gpu-bundle/bundle.tar.xz, unpacked into a temp dir:
#     tomtat        release binary built with --features cuda (stripped)
#     gpu_parity    the tests/gpu_parity.rs test executable
#     lib/          libcudart.so.13 (only for candle's unused MoE kernels)
#     articles.jsonl  20 VietNews articles for the end-to-end check (step 3c)
# The CUDA libraries the binary links (cublas, cublasLt, curand, nvrtc; CUDA 13 by default) are taken from the
# Python environment's nvidia-* wheels (installed with torch), or /usr/local/cuda.
#
# Steps (about 5-8 minutes on an H100):
#   1. environment: GPU, driver, nvcc, torch/transformers versions; `ldd` of the binary
#   2. GPU parity tests (f32 within 1e-3 and identical ids; f16/bf16 argmax and id agreement)
#   3. random opus-mt-vi-en and distilbart-cnn-12-6 shaped models (`tomtat random-model`),
#      then for greedy and beam 4 at batch 64: `tomtat bench --device cuda` (f16) and
#      transformers fp16 generate() on the same model files (scripts/gpu_bench_hf.py), same
#      forced lengths; GPU memory peaks: nvidia-smi polled every 100 ms around each process
#      (both engines), plus torch's max_memory_allocated/reserved for transformers
#   3c. end to end: `tomtat run` (split, translate, summarize) on the bundled articles with small
#      random models on the repository's tokenizers, GPU f32 / f16 vs CPU f32 (E2E=0 skips)
#   4. summary table -> $OUT/summary.md
#
#   OUT=/some/dir scripts/gpu_check.sh            # results in $OUT (default ./gpu-out)
#   HF_BEAMS=1 EXTRAS=0 scripts/gpu_check.sh      # shorter: transformers greedy only, no extras
#   PARITY=0 SPEED=0 scripts/gpu_check.sh         # only the end-to-end check
#   AB=1 scripts/gpu_check.sh                     # also time tomtat without its own CUDA kernels
#   scripts/gpu_check.sh --dry-run                # CPU only, tiny shapes: checks the plumbing
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${GPU_BUNDLE:-$ROOT/gpu-bundle}
OUT=${OUT:-$ROOT/gpu-out}
PY=${PYTHON:-python3}
DRY=0
[[ ${1:-} == --dry-run ]] && DRY=1
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
exec > >(tee "$OUT/gpu_check.log") 2>&1
T0=$SECONDS
section() { echo; echo "=== $* ($((SECONDS - T0)) s)"; }
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false

# the bundle travels xz-compressed (scripts/gpu_bundle.sh); unpack it into the temp dir
if [[ -f $B/bundle.tar.xz ]]; then
    mkdir -p "$W/bundle"
    "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$B/bundle.tar.xz" "$W/bundle" && B=$W/bundle
fi
if [[ $DRY == 1 ]]; then
    BIN=${TOMTAT_BIN:-$ROOT/target/release/tomtat}
    [[ -x $BIN ]] || BIN=$ROOT/target/debug/tomtat
    DEV=cpu HF_DEV=cpu HF_DT=fp32 BATCH=4 RUNS=1 TIMEOUT=120
    # name | random-model args | src_len | new tokens
    WORK=("tiny-marian|--shape tiny --arch marian|8|6" "tiny-bart|--shape tiny --arch bart|8|6")
else
    BIN=${TOMTAT_BIN:-$B/tomtat}
    DEV=cuda HF_DEV=cuda HF_DT=fp16 BATCH=64 RUNS=3 TIMEOUT=170
    WORK=("opus-mt-vi-en|--shape opus-mt-vi-en|30|30"
          "distilbart-cnn-12-6|--shape distilbart-cnn-12-6|512|60")
fi

section "1. environment"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
else
    echo "no nvidia-smi"
fi
command -v nvcc >/dev/null && nvcc --version | tail -2
"$PY" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available(), "| transformers", transformers.__version__)'
# the CUDA libraries of the Python environment (torch's nvidia-* wheels), then system CUDA
PYLIBS=$("$PY" - <<'EOF'
import glob, os
dirs = []
try:
    import nvidia
    for p in nvidia.__path__:
        dirs += sorted(glob.glob(os.path.join(p, "*", "lib")))
except Exception:
    pass
try:
    import torch
    dirs.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception:
    pass
print(":".join(d for d in dirs if os.path.isdir(d)))
EOF
)
export LD_LIBRARY_PATH=$B/lib:$PYLIBS:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
echo "binary: $BIN"
if ldd "$BIN" | grep -E "not found"; then
    echo "ERROR: missing libraries (above); the binary links the CUDA cublas/curand/nvrtc it was built for (scripts/cuda_build.sh, TOMTAT_CUDA_MAJOR)"
fi
ldd "$BIN" | grep -E "libcu|nvrtc" | sed 's/^/  /'
"$BIN" --version

section "2. GPU parity tests"
if [[ $DRY == 1 ]]; then
    echo "(dry run: skipped; they need the cuda build and a GPU)"
elif [[ ${PARITY:-1} == 0 ]]; then
    echo "(PARITY=0: skipped)"
elif [[ -x $B/gpu_parity ]]; then
    TOMTAT_ROOT=$ROOT TOMTAT_REQUIRE_GPU=1 timeout 240 "$B/gpu_parity" --nocapture \
        --test-threads 1 2>&1 | tee "$OUT/gpu_parity.txt" | grep -E "^gpu:|test |panicked|result"
    echo "parity exit: ${PIPESTATUS[0]}"
else
    echo "no $B/gpu_parity"
fi

# run_polled NAME CMD...: CMD's stdout -> $OUT/NAME.out; GPU memory used sampled meanwhile
run_polled() {
    local name=$1
    shift
    local smi=$OUT/smi_$name.txt poll=""
    : > "$smi"
    if [[ $DRY == 0 ]] && command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$smi" &
        poll=$!
        sleep 0.3
    fi
    local t=$SECONDS
    timeout "$TIMEOUT" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
    local rc=$?
    [[ -n $poll ]] && { kill "$poll"; wait "$poll" 2>/dev/null; }
    local base peak
    base=$(head -1 "$smi")
    peak=$(sort -n "$smi" | tail -1)
    echo "$name: exit $rc in $((SECONDS - t)) s; nvidia-smi used: before ${base:--} MiB, peak ${peak:--} MiB"
    [[ $rc != 0 ]] && tail -5 "$OUT/$name.err"
    echo "{\"name\": \"$name\", \"exit\": $rc, \"smi_base_mib\": ${base:-null}, \"smi_peak_mib\": ${peak:-null}}" \
        >> "$OUT/memory.jsonl"
}

[[ ${SPEED:-1} == 0 ]] && WORK=()
section "3. speed: tomtat vs transformers ($HF_DT), batch $BATCH"
: > "$OUT/memory.jsonl"
for w in "${WORK[@]}"; do
    IFS='|' read -r name margs src new <<< "$w"
    # shellcheck disable=SC2086
    "$BIN" -q random-model $margs --out "$W/$name" > /dev/null || { echo "random-model $name failed"; continue; }
    for beams in ${BEAM_LIST:-1 4}; do
        run_polled "tomtat_${name}_b$beams" "$BIN" -q bench --model "$W/$name" --device "$DEV" \
            --batch "$BATCH" --src-len "$src" --new-tokens "$new" --beams "$beams" \
            --runs "$RUNS" --json "$OUT/tomtat_${name}_b$beams.json"
        # AB=1: the same bench without tomtat's own kernels and with cudarc's per-buffer events
        # (the build before they were added), for a same-machine before/after
        if [[ ${AB:-0} == 1 ]]; then
            run_polled "base_${name}_b$beams" env TOMTAT_CUDA_KERNELS=0 TOMTAT_CUDA_EVENTS=1 \
                "$BIN" -q bench --model "$W/$name" --device "$DEV" \
                --batch "$BATCH" --src-len "$src" --new-tokens "$new" --beams "$beams" \
                --runs "$RUNS" --json "$OUT/base_${name}_b$beams.json"
        fi
        [[ " ${HF_BEAMS:-1 4} " == *" $beams "* ]] || continue
        run_polled "hf_${name}_b$beams" "$PY" "$ROOT/scripts/gpu_bench_hf.py" "$W/$name" \
            --device "$HF_DEV" --dtype "$HF_DT" --batch "$BATCH" --src-len "$src" --new "$new" \
            --beams "$beams" --runs "$RUNS"
    done
done

# tomtat alone: other precisions and batch sizes, while time is left. EXTRA_RUNS lists
# "model dtype batch" triples separated by ";" (the model one of the workloads above).
EXTRA_RUNS=${EXTRA_RUNS:-"opus-mt-vi-en bf16 64;opus-mt-vi-en f32 64;opus-mt-vi-en f16 256"}
if [[ ${EXTRAS:-$((1 - DRY))} == 1 ]]; then
    section "3b. tomtat extras: other dtypes and batch sizes (greedy)"
    IFS=';' read -ra extras <<< "$EXTRA_RUNS"
    for x in "${extras[@]}"; do
        read -r name dt bs <<< "$x"
        (( SECONDS - T0 > ${EXTRA_UNTIL_S:-330} )) && { echo "skipped (time)"; break; }
        [[ -d $W/$name ]] || { echo "no model $name"; continue; }
        src=30 new=30
        for w in "${WORK[@]}"; do
            IFS='|' read -r wn _ ws wnew <<< "$w"
            [[ $wn == "$name" ]] && src=$ws new=$wnew
        done
        tag="${name}_${dt}_$bs"
        timeout 90 "$BIN" -q bench --model "$W/$name" --device "$DEV" --dtype "$dt" \
            --batch "$bs" --src-len "$src" --new-tokens "$new" --beams 1 --runs 3 \
            --json "$OUT/extra_$tag.json" > /dev/null 2> "$OUT/extra_$tag.err" &&
            "$PY" -c 'import json,sys; t=json.load(open(sys.argv[1]))[0]; print(sys.argv[2], "%.0f tok/s, enc %.1f ms, %.2f ms/step" % (t["tokens_per_s"], t["encoder_ms"], t["decoder_ms_per_step"]))' \
                "$OUT/extra_$tag.json" "tomtat $name $dt batch $bs:" || tail -3 "$OUT/extra_$tag.err"
    done
fi

# The main job end to end (`tomtat run`: split, translate, summarize, records) on the articles
# the bundle carries (gpu_bundle.sh: 20 VietNews articles), with small random models on the
# repository's real tokenizers: GPU f32 and f16 against the CPU (f32) in the same script.
ART=${ARTICLES:-$B/articles.jsonl}
if [[ ${E2E:-1} == 1 && -f $ART ]]; then
    section "3c. end to end: tomtat run on $(wc -l < "$ART") articles"
    "$BIN" -q random-model --arch marian --tokenizer "$ROOT/tests/fixtures/tokenizers/marian-vi-en" \
        --out "$W/e2e-translator" > /dev/null &&
    "$BIN" -q random-model --arch bart --tokenizer "$ROOT/tests/fixtures/tokenizers/bart-bpe" \
        --out "$W/e2e-summarizer" > /dev/null || echo "random-model (e2e) failed"
    for x in "$DEV f32" "$DEV auto" "cpu f32"; do
        read -r dev dt <<< "$x"
        tag="${dev}_$dt"
        t=$SECONDS
        timeout "${E2E_TIMEOUT:-150}" "$BIN" -q run "$ART" --translator "$W/e2e-translator" \
            --summarizer "$W/e2e-summarizer" --text-field body_sentences --beams 1 \
            --device "$dev" --dtype "$dt" -o "$OUT/e2e_$tag.jsonl" 2> "$OUT/e2e_$tag.err"
        echo "tomtat run --device $dev --dtype $dt: exit $? in $((SECONDS - t)) s"
    done
    "$PY" - "$OUT" "$DEV" <<'EOF2'
import json, os, sys
out, dev = sys.argv[1], sys.argv[2]
def load(tag):
    p = os.path.join(out, f"e2e_{tag}.jsonl")
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
ref = load("cpu_f32")
for tag in dict.fromkeys((f"{dev}_f32", f"{dev}_auto", "cpu_f32")):
    recs = load(tag)
    ok = [r for r in recs if r.get("translation") is not None and r.get("summary") is not None]
    line = f"e2e {tag}: {len(recs)} records, {len(ok)} with translation and summary"
    if tag != "cpu_f32" and ref:
        same_t = sum(a.get("translation") == b.get("translation") for a, b in zip(recs, ref))
        same_s = sum(a.get("summary") == b.get("summary") for a, b in zip(recs, ref))
        sents = [(x.get("translation"), y.get("translation")) for a, b in zip(recs, ref)
                 for x, y in zip(a.get("sentences", []), b.get("sentences", []))]
        same_sent = sum(x == y for x, y in sents)
        line += (f"; vs cpu f32: {same_t}/{len(ref)} translations, {same_s}/{len(ref)} summaries, "
                 f"{same_sent}/{len(sents)} sentence translations identical")
    print(line)
EOF2
fi

section "4. summary"
"$PY" - "$OUT" <<'EOF' | tee "$OUT/summary.md"
import glob, json, os, sys
out = sys.argv[1]
mem = {}
for line in open(os.path.join(out, "memory.jsonl")):
    r = json.loads(line)
    mem[r["name"]] = r
def smi(name):
    r = mem.get(name, {})
    if r.get("smi_peak_mib") is None or r.get("smi_base_mib") is None:
        return "-"
    return f"{r['smi_peak_mib'] - r['smi_base_mib']}"
rows = []
for f in sorted(glob.glob(os.path.join(out, "tomtat_*_b*.json"))):
    name = os.path.basename(f)[len("tomtat_"):-len(".json")]
    try:
        t = json.load(open(f))[0]
    except Exception:
        continue
    try:
        hf = json.loads(open(os.path.join(out, f"hf_{name}.out")).read().strip().splitlines()[-1])
    except Exception:
        hf = {}
    model, beams = name.rsplit("_b", 1)
    try:
        base = json.load(open(os.path.join(out, f"base_{name}.json")))[0]
        base_cell = f"{base['tokens_per_s']:.0f} ({base['encoder_ms']:.1f} / {base['decoder_ms_per_step']:.2f})"
    except Exception:
        base_cell = "-"
    htps, hs, pa = hf.get("tokens_per_s"), hf.get("median_s"), hf.get("peak_allocated_mb")
    cells = [model, beams, f"{t['batch']} x {t['src_len']} -> {t['new_tokens']}",
             f"{t['device']} {t['dtype']}", f"{t['tokens_per_s']:.0f}", f"{t['median_s']:.3f}",
             f"{t['encoder_ms']:.1f}", f"{t['decoder_ms_per_step']:.2f}",
             f"{htps:.0f}" if htps else "-", f"{hs:.3f}" if hs else "-",
             f"{t['tokens_per_s'] / htps:.2f}" if htps else "-",
             smi("tomtat_" + name), smi("hf_" + name), f"{pa:.0f}" if pa is not None else "-",
             base_cell]
    rows.append("| " + " | ".join(cells) + " |")
print("| model | beams | batch x src -> new | tomtat | tomtat tok/s | tomtat s | enc ms "
      "| dec ms/step | hf tok/s | hf s | tomtat/hf | tomtat GPU MiB (smi) | hf GPU MiB (smi) "
      "| hf max_allocated MiB | AB=1 base tok/s (enc ms / ms/step) |")
print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print("\n".join(rows))
EOF
# the device tool brings back at most 8 files: keep the log, the table and the parity output,
# pack the per-process files into one archive
(cd "$OUT" && find . -maxdepth 1 -type f ! -name gpu_check.log ! -name summary.md \
    ! -name gpu_parity.txt ! -name raw.tar.gz -printf '%P\n' > "$W/raw.list" &&
    tar -czf raw.tar.gz -T "$W/raw.list" && xargs rm -f < "$W/raw.list")
echo
echo "total: $((SECONDS - T0)) s; results in $OUT (per-process output in raw.tar.gz)"
