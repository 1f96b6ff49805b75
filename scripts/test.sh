#!/usr/bin/env bash
# The whole test suite on a fresh machine: provision (idempotent), then pytest on each ComfyUI:
# 0.3.75 with its own frontend, then the current ComfyUI (0.33.0) with the newest frontend.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k drag`;
# DRAGKIT_HOSTS="0.3.75" (or "current") runs on one ComfyUI only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DRAGKIT_TEST_TOOLS=1  # setup.sh also installs Debian's chromium (tests/browser) and comfy-cli
source "$here/scripts/env.sh"
cd "$here"
hosts="${DRAGKIT_HOSTS:-0.3.75 current}"
status=0
for host in $hosts; do
  if [ "$host" = current ]; then
    if [ -z "$DRAGKIT_CURRENT_COMFYUI" ]; then
      echo "test.sh: no current ComfyUI (expected ../shared/hosts/comfyui-0.33.0 beside the checkout)" >&2
      exit 1
    fi
    echo "=== tests on $(basename "$DRAGKIT_CURRENT_COMFYUI") with the newest frontend ($DRAGKIT_CURRENT_PACKAGES)"
    # -P: the repo root must not shadow ComfyUI's `nodes`; the server inherits PYTHONPATH
    COMFYUI_PATH="$DRAGKIT_CURRENT_COMFYUI" PYTHONPATH="$DRAGKIT_CURRENT_PACKAGES${PYTHONPATH:+:$PYTHONPATH}" \
      "$DRAGKIT_PYTHON" -P -m pytest "$@" || status=$?
  else
    echo "=== tests on $(basename "$COMFYUI_PATH") with its own frontend"
    "$DRAGKIT_PYTHON" -P -m pytest "$@" || status=$?
  fi
done
exit "$status"
