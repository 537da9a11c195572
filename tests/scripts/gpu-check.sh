#!/usr/bin/env bash
# The GPU check, on a machine with an NVIDIA GPU and CUDA 13 libraries (no
# Rust needed): unpacks what tests/scripts/cuda-build.sh packed into .gpu/,
# runs the GPU tests (tests/cuda.rs: every shipped model agrees with the CPU
# path, training on the GPU lowers the loss), times inference on the GPU with
# `holterd bench infer --device cuda`.
# Output goes to $OUT (or .gpu/out) as gpu-check.log.
#
# Usage, from the repository root: tests/scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-.gpu/out}
mkdir -p "$out" /tmp/holterd-gpu
log=$out/gpu-check.log
exec > >(tee "$log") 2>&1

xz -dc .gpu/holterd-cuda.tar.xz | tar -C /tmp/holterd-gpu -xf - || exit 1
bin=/tmp/holterd-gpu
# The test binary finds models/ and tests/fixtures/ under the path it was
# built in; point that path at this checkout.
built_in=$(cat "$bin/built-in")
if [ "$built_in" != "$PWD" ] && [ ! -e "$built_in" ]; then
  mkdir -p "$(dirname "$built_in")" && ln -s "$PWD" "$built_in"
fi

# CUDA 13's cuBLAS, cuRAND, NVRTC and runtime, wherever this machine keeps them.
libs=
for so in libcublas.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13 libcuda.so.1; do
  found=$(find /usr/local/nvidia /usr/local/cuda* /usr/lib/x86_64-linux-gnu /opt /usr/local/lib \
    -name "$so" -not -path '*/stub/*' 2>/dev/null | head -n1)
  echo "$so: ${found:-not found}"
  [ -n "$found" ] && libs=$libs:$(dirname "$found")
done
export LD_LIBRARY_PATH=${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true

status=0
echo "== GPU tests"
"$bin/cuda-test" --test-threads=1 --nocapture || status=1
echo "== bench infer --device cuda"
for model in cnn-lstm cnn-lstm-dropout transformer patch-transformer; do
  "$bin/holterd" bench infer --model "$model" --device cuda --seconds 2 || status=1
done
echo "== bench infer --device cpu (this machine, for comparison)"
RAYON_NUM_THREADS=1 "$bin/holterd" bench infer --model cnn-lstm --device cpu --seconds 2 || status=1
echo "gpu-check: exit $status"
exit $status
