#!/usr/bin/env bash
# The whole test suite on a fresh machine: provision (idempotent), then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k drag`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$here/scripts/env.sh"
cd "$here"
exec "$DRAGKIT_PYTHON" -P -m pytest "$@"  # -P: the repo root must not shadow ComfyUI's `nodes`
