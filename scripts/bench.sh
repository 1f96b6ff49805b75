#!/usr/bin/env bash
# Per-stage timings and UNet pass counts of each method (benchmarks/methods.py); args go to it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$here/scripts/env.sh"
exec "$DRAGKIT_PYTHON" -P "$here/benchmarks/methods.py" "$@"
