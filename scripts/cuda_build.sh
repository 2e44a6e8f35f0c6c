#!/usr/bin/env bash
# Build tomtat with `--features cuda` on a machine with NO GPU, NO driver and NO system CUDA:
# everything comes from PyPI wheels installed into a venv.
#
#   scripts/cuda_build.sh            # release binary + test executables (no run)
#   scripts/cuda_build.sh --check    # also run the CPU tests of the cuda build here
#
# What it does and why:
# * nvcc: only the CUDA 13 wheels ship an `nvcc` binary (the -cu12 "nvcc" wheels hold only
#   ptxas), so candle's kernels are compiled with nvcc 13.0.
# * PTX version: nvcc 13 writes `.version 9.0` PTX, which only r580+ drivers can JIT. Our
#   nvcc wrapper rewrites it to `.version $TOMTAT_PTX_VERSION` (default 8.0: CUDA 12.0, r525+
#   drivers; the minimum for the sm_90a target candle builds for) and every PTX file is then
#   checked with a CUDA 12.4 ptxas, i.e. an r550-era JIT would accept it.
# * Libraries: cudarc links libcuda/libcublas/libcublasLt/libcurand/libnvrtc dynamically (candle
#   asks for dynamic linking), so the binary needs the same CUDA major at run time. It is built
#   for CUDA 13 by default ($TOMTAT_CUDA_MAJOR=13: bindings pinned with CUDARC_CUDA_VERSION=13000,
#   linked against the CUDA 13 wheels), the libraries PyTorch's cu130 wheels install (seen on
#   the lent H100: torch 2.11.0+cu130, driver 580); TOMTAT_CUDA_MAJOR=12 builds for CUDA 12.4+
#   libraries instead (libcublas.so.12 etc., r550+ drivers). scripts/gpu_check.sh finds them. libcuda.so.1 (the driver) is linked against a
#   generated stub; the real one is the GPU machine's. candle-kernels also links a static
#   MoE kernel library (unused by tomtat) built by nvcc 13 against libcudart.so.13, which is
#   small and is carried in gpu-bundle/lib.
# * CUDA_COMPUTE_CAP=90 (H100/H200) because there is no nvidia-smi to ask.
# * A separate target dir (default target/cuda, seeded from target/release when present) so
#   the CPU build's artifacts are untouched.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${CUDA_VENV:-$ROOT/../cudaenv}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export TOMTAT_CUDA_MAJOR=${TOMTAT_CUDA_MAJOR:-13}
if [[ $TOMTAT_CUDA_MAJOR == 13 ]]; then
    export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
else
    export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-12040}
fi
export TOMTAT_PTX_VERSION=${TOMTAT_PTX_VERSION:-8.0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/cuda}
CHECK=0
[[ ${1:-} == --check ]] && CHECK=1

# 1. toolchain wheels (pinned; ~1.5 GB unpacked)
if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
fi
PIP="$VENV/bin/pip"
"$PIP" install -q \
    "nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-crt==13.0.88" "nvidia-nvvm==13.0.88" \
    "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85" \
    "nvidia-cublas-cu12==12.9.*" "nvidia-curand-cu12==10.3.*" "nvidia-cuda-nvrtc-cu12==12.9.*" \
    "nvidia-cublas==13.10.0.20" "nvidia-curand==10.4.5.25" "nvidia-cuda-nvrtc==13.5.37"
NV=$("$VENV/bin/python" -c 'import nvidia; print(list(nvidia.__path__)[0])')
CU13=$NV/cu13
[[ -x $CU13/bin/nvcc ]] || { echo "no nvcc in $CU13/bin" >&2; exit 1; }

# a CUDA 12.4 ptxas, only to check the rewritten PTX (r550 drivers JIT PTX <= 8.4)
TOOLS=$VENV/tomtat-cuda
mkdir -p "$TOOLS/bin" "$TOOLS/lib" "$TOOLS/stub" "$TOOLS/ptxas124"
if [[ ! -x $TOOLS/ptxas124/ptxas ]]; then
    tmp=$(mktemp -d)
    "$PIP" download -q --no-deps "nvidia-cuda-nvcc-cu12==12.4.131" -d "$tmp"
    "$VENV/bin/python" - "$tmp" "$TOOLS/ptxas124" <<'EOF'
import sys, zipfile, glob, os
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    data = z.read("nvidia/cuda_nvcc/bin/ptxas")
out = os.path.join(sys.argv[2], "ptxas")
open(out, "wb").write(data)
os.chmod(out, 0o755)
EOF
    rm -rf "$tmp"
fi

# 2. nvcc wrapper: real nvcc, then the PTX version rewrite for `--ptx` outputs
cat > "$TOOLS/bin/nvcc" <<EOF
#!/usr/bin/env bash
set -e
"$CU13/bin/nvcc" "\$@"
ptx=0; outdir=.; srcs=()
while [[ \$# -gt 0 ]]; do
    case "\$1" in
        --ptx|-ptx) ptx=1 ;;
        --output-directory|-odir) outdir=\$2; shift ;;
        *.cu) srcs+=("\$1") ;;
    esac
    shift
done
if [[ \$ptx == 1 ]]; then
    for s in "\${srcs[@]}"; do
        f="\$outdir/\$(basename "\${s%.cu}").ptx"
        [[ -f \$f ]] && sed -i -E 's/^\.version [0-9]+\.[0-9]+\$/.version $TOMTAT_PTX_VERSION/' "\$f"
    done
fi
EOF
chmod +x "$TOOLS/bin/nvcc"
export NVCC=$TOOLS/bin/nvcc
export PATH=$TOOLS/bin:$CU13/bin:$PATH

# 3. link directory: the CUDA libraries of $TOMTAT_CUDA_MAJOR, cudart 13 (for candle-kernels' static MoE lib), and a
# libcuda stub generated from cudarc's driver bindings
LIB=$TOOLS/lib
if [[ $TOMTAT_CUDA_MAJOR == 13 ]]; then
    RUNLIBS=$CU13/lib
    ln -sf "$CU13/lib/libcublas.so.13" "$LIB/libcublas.so"
    ln -sf "$CU13/lib/libcublasLt.so.13" "$LIB/libcublasLt.so"
    ln -sf "$CU13/lib/libcurand.so.10" "$LIB/libcurand.so"
    ln -sf "$CU13/lib/libnvrtc.so.13" "$LIB/libnvrtc.so"
else
    RUNLIBS=$NV/cublas/lib:$NV/curand/lib:$NV/cuda_nvrtc/lib
    ln -sf "$NV/cublas/lib/libcublas.so.12" "$LIB/libcublas.so"
    ln -sf "$NV/cublas/lib/libcublasLt.so.12" "$LIB/libcublasLt.so"
    ln -sf "$(ls "$NV"/curand/lib/libcurand.so.* | head -1)" "$LIB/libcurand.so"
    ln -sf "$(ls "$NV"/cuda_nvrtc/lib/libnvrtc.so.12 | head -1)" "$LIB/libnvrtc.so"
fi
ln -sf "$CU13/lib/libcudart.so.13" "$LIB/libcudart.so"
(cd "$ROOT" && cargo fetch -q)
CUDARC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | tail -1)
grep -oE 'pub unsafe fn cu[A-Za-z0-9_]+' "$CUDARC/src/driver/sys/mod.rs" | awk '{print $4}' |
    sort -u | awk '{printf "int %s(void) { return 100; /* CUDA_ERROR_NO_DEVICE */ }\n", $1}' \
    > "$TOOLS/cuda_stub.c"
gcc -shared -fPIC -o "$TOOLS/stub/libcuda.so" -Wl,-soname,libcuda.so.1 "$TOOLS/cuda_stub.c"
ln -sf libcuda.so "$TOOLS/stub/libcuda.so.1"
ln -sf "$TOOLS/stub/libcuda.so" "$LIB/libcuda.so"
export CUDA_ROOT=$TOOLS      # cudarc's link search: $CUDA_ROOT/lib
export CUDA_HOME=$CU13       # headers for anything that asks

# 4. seed the separate target dir from the CPU release build (shared deps need no rebuild)
if [[ ! -d $CARGO_TARGET_DIR/release && -d $ROOT/target/release ]]; then
    mkdir -p "$CARGO_TARGET_DIR"
    cp -a "$ROOT/target/release" "$CARGO_TARGET_DIR/release"
fi

# 5. build
cd "$ROOT"
cargo build --release --features cuda
cargo test --release --features cuda --no-run

# 6. check the kernels' PTX against the CUDA 12.4 ptxas
KPTX=$(dirname "$(ls -t "$CARGO_TARGET_DIR"/release/build/candle-kernels-*/out/ptx.rs | head -1)")
n=0
for f in "$KPTX"/*.ptx; do
    arch=$(grep -m1 -oE "^\.target sm_[0-9]+a?" "$f" | cut -d" " -f2)
    "$TOOLS/ptxas124/ptxas" -arch="$arch" "$f" -o /dev/null
    n=$((n + 1))
done
# tomtat's own kernels (build.rs)
OWN=$(ls -t "$CARGO_TARGET_DIR"/release/build/tomtat-*/out/kernels.ptx | head -1)
"$TOOLS/ptxas124/ptxas" -arch="sm_$CUDA_COMPUTE_CAP" "$OWN" -o /dev/null
n=$((n + 1))
echo "ptx: $n kernel files accepted by CUDA 12.4 ptxas (PTX .version $TOMTAT_PTX_VERSION)"

# the binary starts here too (the stub driver answers "no device")
export LD_LIBRARY_PATH=$TOOLS/stub:$LIB:$RUNLIBS:$CU13/lib
"$CARGO_TARGET_DIR/release/tomtat" --version
if "$CARGO_TARGET_DIR/release/tomtat" generate --help | grep -q -- --dtype; then
    echo "cuda build: ok ($CARGO_TARGET_DIR/release/tomtat)"
fi
if [[ $CHECK == 1 ]]; then
    cargo test --release --features cuda --test gpu_parity -- --nocapture
fi
