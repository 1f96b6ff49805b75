#!/usr/bin/env bash
# Run an example workflow headless and write the edited image; see `--help` (args go to run_workflow.py).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$here/scripts/env.sh"
use_current_comfyui
exec "$DRAGKIT_PYTHON" -P "$here/scripts/run_workflow.py" "$@"
