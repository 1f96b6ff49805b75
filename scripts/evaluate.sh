#!/usr/bin/env bash
# Evaluate drag methods on DragBench / Drag100 through ComfyUI's /prompt (scripts/evaluate.py; args go to it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$here/scripts/env.sh"
use_current_comfyui
exec "$DRAGKIT_PYTHON" -P "$here/scripts/evaluate.py" "$@"
