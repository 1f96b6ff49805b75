#!/usr/bin/env bash
# GPU check (benchmarks/gpu_check.py): GoodDrag end to end on a full-size SD 1.5-shaped fp16 model at
# 512² in a real ComfyUI on the GPU (Dynamic VRAM on in current ComfyUI), per-stage time and peak memory.
# Uses the current ComfyUI that scripts/setup.sh provisions; on a machine without network access
# (a lent GPU machine), set DRAGKIT_PYTHON (a Python with torch and ComfyUI's requirements) and
# COMFYUI_PATH (a ComfyUI tree) and nothing is installed. `--smoke` runs it on the CPU instead.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${DRAGKIT_PYTHON:-}" ] || [ -z "${COMFYUI_PATH:-}" ]; then
  source "$here/scripts/env.sh"
  use_current_comfyui
else
  source "$here/scripts/import_root.sh"
fi
exec "$DRAGKIT_PYTHON" -P "$here/benchmarks/gpu_check.py" "$@"
