#!/usr/bin/env bash
# Start ComfyUI with DragKit loaded on http://127.0.0.1:8188 (provisions it first, idempotently).
# Put SD 1.5 checkpoints in ~/.cache/dragkit/demo/models/checkpoints/; with none there, a tiny
# random-weight one is generated so the graph runs (its pictures are noise).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_lines="$(bash "$here/scripts/setup.sh")"
export COMFYUI_PATH="$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")"
py="$(sed -n 's/^DRAGKIT_PYTHON=//p' <<<"$env_lines")"
exec "$py" "$here/scripts/demo.py" "$@"
