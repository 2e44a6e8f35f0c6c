#!/usr/bin/env bash
# Kernel-time breakdown of `tomtat bench` on a GPU machine (Nsight Compute, one metric:
# gpu__time_duration), for the plan in benches/RESULTS.md. Same bundle and library setup as
# scripts/gpu_check.sh.
#   OUT=/some/dir scripts/gpu_profile.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
exec > >(tee "$OUT/gpu_profile.log") 2>&1
"$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
    "$ROOT/gpu-bundle/bundle.tar.xz" "$W"
PYLIBS=$("$PY" -c 'import glob, os, nvidia; print(":".join(d for p in nvidia.__path__ for d in sorted(glob.glob(os.path.join(p, "*", "lib")))))')
export LD_LIBRARY_PATH=$W/lib:$PYLIBS:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
BIN=$W/tomtat
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: ${NCU:-none}"
"$BIN" -q random-model --shape distilbart-cnn-12-6 --out "$W/db" > /dev/null
"$BIN" -q random-model --shape opus-mt-vi-en --out "$W/op" > /dev/null
# encoder scaling without a profiler: batch 8 vs 64 (same source length)
for bs in 8 64; do
    "$BIN" -q bench --model "$W/db" --device cuda --batch $bs --src-len 512 --new-tokens 8 \
        --beams 1 --runs 3 --json "$W/s$bs.json" > /dev/null 2>&1
    "$PY" -c 'import json,sys; t=json.load(open(sys.argv[1]))[0]; print("distilbart batch", sys.argv[2], "enc %.1f ms, %.2f ms/step" % (t["encoder_ms"], t["decoder_ms_per_step"]))' "$W/s$bs.json" $bs
done
# per-kernel time, summed by kernel name: distilbart batch 64 x 512, 4 greedy steps; opus-mt
# batch 64, 6 beam-4 steps (bench runs a warm-up and then one timed run: both are counted)
prof() {
    local name=$1
    shift
    timeout 150 "$NCU" --metrics gpu__time_duration.sum --csv --print-summary per-kernel \
        "$BIN" -q bench "$@" --device cuda --runs 1 > "$OUT/ncu_$name.csv" 2> "$W/ncu_$name.err"
    echo "ncu $name: exit $?"
    tail -3 "$W/ncu_$name.err"
    "$PY" - "$OUT/ncu_$name.csv" <<'PYEOF'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 5]
if not rows:
    print("no ncu rows"); sys.exit()
h = rows[0]
def col(name):
    for i, c in enumerate(h):
        if c.strip('"') == name:
            return i
ki, mi, ui, ci = col("Kernel Name"), col("Metric Name"), col("Metric Unit"), col("Invocations")
si = col("Sum") if col("Sum") is not None else col("Average")
tot = collections.Counter(); cnt = collections.Counter()
for r in rows[1:]:
    try:
        v = float(r[si].replace(",", ""))
    except Exception:
        continue
    unit = r[ui] if ui is not None else "nsecond"
    scale = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}.get(unit, 1e-6)
    name = r[ki][:70]
    n = int(r[ci]) if ci is not None else 1
    # "Sum" may be absent in old ncu versions: Average * invocations then
    tot[name] += v * scale * (1 if col("Sum") is not None else n)
    cnt[name] += n
all_ms = sum(tot.values())
print(f"total kernel time {all_ms:.1f} ms, {sum(cnt.values())} launches")
for name, ms in tot.most_common(14):
    print(f"  {ms:8.2f} ms {100 * ms / all_ms:5.1f}% {cnt[name]:6d}x  {name}")
PYEOF
}
[[ -n $NCU ]] && {
    prof distilbart --model "$W/db" --batch 64 --src-len 512 --new-tokens 4 --beams 1
    prof opus_b4 --model "$W/op" --batch 64 --src-len 30 --new-tokens 6 --beams 4
}
ls -la "$OUT"
