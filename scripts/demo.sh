#!/usr/bin/env bash
# The demo: provisions (idempotently), runs example_workflows/gooddrag.json headless on its sample picture and
# writes the edit and a before / points / after figure to <base>/output/dragkit_demo/, then serves
# ComfyUI with DragKit on http://127.0.0.1:8188. DRAGKIT_CHECKPOINT=/path/sd15.safetensors uses real
# weights; without it a random-weight checkpoint with SD 1.5's layout is generated and the graph fitted
# to a CPU (plumbing, not quality). See `--help` (args go to scripts/demo.py).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$here/scripts/env.sh"
use_current_comfyui
exec "$DRAGKIT_PYTHON" -P "$here/scripts/demo.py" "$@"
