#!/usr/bin/env bash
# The whole test suite on a fresh machine: provision (idempotent), then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k drag`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_lines="$(bash "$here/scripts/setup.sh")"
export DRAGKIT_PYTHON="$(sed -n 's/^DRAGKIT_PYTHON=//p' <<<"$env_lines")"
export COMFYUI_PATH="$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")"
cd "$here"
exec "$DRAGKIT_PYTHON" -P -m pytest "$@"  # -P: the repo root must not shadow ComfyUI's `nodes`
