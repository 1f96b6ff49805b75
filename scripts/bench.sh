#!/usr/bin/env bash
# Benchmarks (args after the first go to the script):
#   bash scripts/bench.sh [args]             per-stage time, UNet work and memory of each method (benchmarks/methods.py)
#   bash scripts/bench.sh redrag [args]      a workflow queued, its targets moved, queued again (benchmarks/redrag.py)
#   bash scripts/bench.sh lora-steps [args]  LoRA steps against reconstruction error (benchmarks/lora_steps.py)
#   bash scripts/bench.sh validation         the queue-time drag_data check at the whole-drag budget (benchmarks/drag_validation.py)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$here/scripts/env.sh"
case "${1:-}" in
  redrag) shift; use_current_comfyui; exec "$DRAGKIT_PYTHON" -P "$here/benchmarks/redrag.py" "$@" ;;
  lora-steps) shift; exec "$DRAGKIT_PYTHON" -P "$here/benchmarks/lora_steps.py" "$@" ;;
  validation) shift; exec "$DRAGKIT_PYTHON" -P "$here/benchmarks/drag_validation.py" "$@" ;;
  *) exec "$DRAGKIT_PYTHON" -P "$here/benchmarks/methods.py" "$@" ;;
esac
