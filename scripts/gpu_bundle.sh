#!/usr/bin/env bash
# Build what scripts/gpu_check.sh runs on a GPU machine that has no Rust toolchain:
#   gpu-bundle/bundle.tar.xz with
#     tomtat       release binary, --features cuda, stripped (~59 MB: candle's PTX and MoE
#                  SASS are embedded)
#     gpu_parity   tests/gpu_parity.rs test executable (release, stripped, about as large)
#     lib/         libcudart.so.13 (linked for candle's MoE kernels)
#     articles.jsonl  20 VietNews articles for the end-to-end `tomtat run` check
# xz brings the two binaries to ~17 MB, under the 64 MiB a carried working tree may hold.
# gpu-bundle/ is git-ignored: carry it with the working tree; scripts/gpu_check.sh unpacks it.
# Uses scripts/cuda_build.sh (toolchain from PyPI wheels, no GPU needed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/cuda}
bash scripts/cuda_build.sh
VENV=${CUDA_VENV:-$ROOT/../cudaenv}
NV=$("$VENV/bin/python" -c 'import nvidia; print(list(nvidia.__path__)[0])')
TOOLS=$VENV/tomtat-cuda
export CUDA_ROOT=$TOOLS NVCC=$TOOLS/bin/nvcc CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export TOMTAT_CUDA_MAJOR=${TOMTAT_CUDA_MAJOR:-13}
if [[ $TOMTAT_CUDA_MAJOR == 13 ]]; then
    export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
else
    export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-12040}
fi
export PATH=$TOOLS/bin:$NV/cu13/bin:$PATH

B=$ROOT/gpu-bundle
rm -rf "$B"
mkdir -p "$B/lib"
cp "$CARGO_TARGET_DIR/release/tomtat" "$B/tomtat"
# the test executable cargo built for tests/gpu_parity.rs
exe=$(cargo test --release --features cuda --test gpu_parity --no-run --message-format=json \
    2>/dev/null | "$VENV/bin/python" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "gpu_parity":
        print(m["executable"])')
cp "$exe" "$B/gpu_parity"
strip "$B/tomtat" "$B/gpu_parity"
cp -L "$NV/cu13/lib/libcudart.so.13" "$B/lib/"
du -sh "$B"/* "$B"/lib/*
# articles for gpu_check.sh's end-to-end `tomtat run` (the GPU machine has no ../shared/data)
head -20 "$ROOT/../shared/data/vietnews/val300.jsonl" > "$B/articles.jsonl"
(cd "$B" && XZ_OPT="-6 -T0" tar -cJf bundle.tar.xz tomtat gpu_parity lib articles.jsonl &&
    rm -rf tomtat gpu_parity lib articles.jsonl)
du -sh "$B/bundle.tar.xz"
