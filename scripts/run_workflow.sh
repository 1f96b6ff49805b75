#!/usr/bin/env bash
# Run an example workflow headless and write the edited image; see `--help` (args go to run_workflow.py).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_lines="$(bash "$here/scripts/setup.sh")"
export COMFYUI_PATH="$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")"
exec "$(sed -n 's/^DRAGKIT_PYTHON=//p' <<<"$env_lines")" -P "$here/scripts/run_workflow.py" "$@"
