#!/usr/bin/env bash
# The GPU checks on a machine with Python 3.12 + torch + CUDA but no network, from what
# benchmarks/offline/pack.sh put into .offline/: unpacks it under /tmp, then runs
#   benchmarks/gpu_check.py          GoodDrag and EasyDrag end to end in a ComfyUI server on the GPU
#                                    (Dynamic VRAM on), SD 1.5's full UNet in fp16 at 512²;
#   benchmarks/methods.py --model sd15   every method's stages in-process: time, UNet work, peak memory (+ JSON).
# Logs go to the folder given as $1 (default .offline/results).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
results="${1:-$here/.offline/results}"
root="${DRAGKIT_OFFLINE_ROOT:-/tmp/dragkit-offline}"
mkdir -p "$root/site" "$results"
tar -C "$root/site" -xJf "$here/.offline/site.tar.xz"
tar -C "$root" -xJf "$here/.offline/comfyui.tar.xz"
export PYTHONPATH="$root/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export DRAGKIT_PYTHON="${DRAGKIT_PYTHON:-python3}" COMFYUI_PATH="$root/comfyui"
source "$here/scripts/import_root.sh"
status=0
bash "$here/benchmarks/gpu_check.sh" --front-end-root "$here/.offline/frontend" --base "$root/base" 2>&1 \
  | tee "$results/gpu_check.log" || status=1
cp "$root/base/server.log" "$results/server.log" 2>/dev/null || true
# AdaptiveDrag's super-pixels need scikit-image (with scipy), which the 64 MiB pack leaves out
methods=(DragDiffusion GoodDrag EasyDrag DragNeXt)
"$DRAGKIT_PYTHON" -c "import skimage" 2>/dev/null && methods+=(AdaptiveDrag) || echo "no scikit-image: AdaptiveDrag skipped"
"$DRAGKIT_PYTHON" -P "$here/benchmarks/methods.py" --model sd15 --size 512 --methods "${methods[@]}" \
  --json "$results/methods_sd15.json" 2>&1 | tee "$results/methods_sd15.log" || status=1
exit $status
