#!/usr/bin/env bash
# Builds holterd and its GPU test (tests/cuda.rs) with the `cuda` feature on a
# machine that has neither a GPU nor CUDA, and packs both into .gpu/ so that
# tests/scripts/gpu-check.sh can run them on a machine with an NVIDIA GPU.
#
# CUDA 13.0's compiler and libraries come from NVIDIA's wheels on PyPI, pinned
# to 13.0 because the GPU machines' driver (580) loads PTX up to CUDA 13.0.
# The driver library libcuda.so exists only where a driver is installed, so
# the link uses a stub exporting the same symbols (made from cudarc's
# bindings); at run time the real libcuda.so.1 is loaded instead.
#
# Usage: tests/scripts/cuda-build.sh   (about 30 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
cuda=${CUDA_DIR:-/opt/cuda13}
target=${CUDA_TARGET_DIR:-$root/target/cuda}
profile=${CUDA_PROFILE:-release}

if [ ! -x "$cuda/nvidia/cu13/bin/nvcc" ]; then
  echo "== CUDA 13.0 from PyPI into $cuda"
  wheels=$(mktemp -d)
  python3 -m pip download -q --no-deps -d "$wheels" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-cccl==13.0.85 nvidia-nvvm==13.0.88 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
  mkdir -p "$cuda"
  for w in "$wheels"/*.whl; do (cd "$cuda" && python3 -m zipfile -e "$w" .); done
  chmod +x "$cuda"/nvidia/cu13/bin/* "$cuda"/nvidia/cu13/nvvm/bin/*
  rm -rf "$wheels"
fi
lib=$cuda/nvidia/cu13/lib
for name in cublas cublasLt curand nvrtc cudart; do
  so=$(cd "$lib" && ls "lib$name.so."* | head -n1)
  ln -sf "$so" "$lib/lib$name.so"
done
if [ ! -e "$cuda/stub/libcuda.so" ]; then
  echo "== stub libcuda.so for linking"
  mkdir -p "$cuda/stub"
  sys=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*/cudarc-0.19.*/src/driver/sys/mod.rs' | head -n1)
  if [ -z "$sys" ]; then
    cargo fetch
    sys=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*/cudarc-0.19.*/src/driver/sys/mod.rs' | head -n1)
  fi
  grep -oE 'pub (unsafe )?fn cu[A-Za-z0-9_]+' "$sys" | awk '{print $NF}' | sort -u \
    | awk '{print "void " $1 "(void) {}"}' >"$cuda/stub/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda/stub/libcuda.so" "$cuda/stub/cuda_stub.c"
fi

export PATH=$cuda/nvidia/cu13/bin:$PATH
export CUDA_ROOT=$cuda/nvidia/cu13 CUDA_PATH=$cuda/nvidia/cu13 CUDA_HOME=$cuda/nvidia/cu13
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export LIBRARY_PATH=$lib:$cuda/stub
echo "== cargo build --profile $profile --features cuda (compute capability $CUDA_COMPUTE_CAP)"
cargo build --profile "$profile" --features cuda --target-dir "$target"
test_bin=$(cargo test --profile "$profile" --features cuda --target-dir "$target" --test cuda --no-run \
  --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cuda" and m.get("executable"):
        print(m["executable"])')
# Both binaries hold the same PTX; one xz archive keeps them under the device
# machine's 64 MiB carry limit (about 15 MB instead of 130).
stage=$(mktemp -d)
strip -o "$stage/holterd" "$target/$profile/holterd"
strip -o "$stage/cuda-test" "$test_bin"
echo "$root" >"$stage/built-in"
mkdir -p .gpu
tar -C "$stage" -cf - holterd cuda-test built-in | xz -T0 -9 >.gpu/holterd-cuda.tar.xz
rm -rf "$stage"
ls -la .gpu
echo "== done: carry .gpu to a GPU machine and run tests/scripts/gpu-check.sh there"
