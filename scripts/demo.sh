#!/usr/bin/env bash
# Start ComfyUI (the current one, 0.33.0, when provisioned; else 0.3.75) with DragKit loaded on
# http://127.0.0.1:8188 (provisions it first, idempotently).
# Put SD 1.5 checkpoints in ~/.cache/dragkit/demo/models/checkpoints/; with none there, a tiny
# random-weight one is generated so the graph runs (its pictures are noise).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$here/scripts/env.sh"
use_current_comfyui
exec "$DRAGKIT_PYTHON" -P "$here/scripts/demo.py" "$@"
