#!/usr/bin/env bash
# Packs what the GPU benchmarks need on a GPU machine that has Python 3.12 + torch but no network
# (and a 64 MiB limit on what travels there) into the git-ignored folder .offline/ of the checkout:
#   comfyui.tar.xz  the current ComfyUI that scripts/setup.sh provisions, without its tests;
#   site.tar.xz     ComfyUI's and DragKit's requirements that a bare torch image lacks, as installed
#                   files for CPython 3.12 on x86-64 Linux. comfy-kitchen goes without its compiled
#                   CUDA/HIP kernels (170 MB+): it falls back to its PyTorch ones, which SD 1.5 never calls;
#   frontend/       a one-page frontend (the benchmarks use only the HTTP API).
# Then, on that machine: `bash benchmarks/offline/run.sh` (see there).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$here/scripts/env.sh"
out="$here/.offline"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/frontend"
packages=(torchsde==0.2.6 trampoline alembic mako sqlalchemy greenlet av comfy-kitchen==0.2.31 comfy-aimdo==0.4.13
          simpleeval blake3 pydantic pydantic-core annotated-types typing-inspection typing_extensions pydantic-settings
          python-dotenv websocket-client diffusers==0.42.1 importlib_metadata)
"$DRAGKIT_PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$work/wheels" "${packages[@]}" 2>"$work/pip.log" || { cat "$work/pip.log"; exit 1; }
# a wheel is a zip of its installed files: unpacked side by side they are a site folder for that Python
for wheel in "$work"/wheels/*.whl; do unzip -q -o "$wheel" -d "$work/site"; done
rm -f "$work"/site/comfy_kitchen/backends/{cuda,hip}/_C*.so
tar -C "$work/site" -cJf "$out/site.tar.xz" .
comfyui="$(dirname "$DRAGKIT_CURRENT_COMFYUI")"
tar -C "$comfyui" -cJf "$out/comfyui.tar.xz" --exclude=tests --exclude=tests-unit --exclude=.git \
  --transform "s,^$(basename "$DRAGKIT_CURRENT_COMFYUI"),comfyui," "$(basename "$DRAGKIT_CURRENT_COMFYUI")"
echo '<!doctype html><title>ComfyUI (API only)</title><p>This server has no frontend; use the API.</p>' > "$out/frontend/index.html"
du -sh "$out"/*
