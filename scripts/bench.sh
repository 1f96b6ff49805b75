#!/usr/bin/env bash
# Per-stage timings and UNet pass counts of each method (benchmarks/methods.py); args go to it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_lines="$(bash "$here/scripts/setup.sh")"
export COMFYUI_PATH="$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")"
exec "$(sed -n 's/^DRAGKIT_PYTHON=//p' <<<"$env_lines")" -P "$here/benchmarks/methods.py" "$@"
