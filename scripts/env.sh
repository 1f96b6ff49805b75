# Sourced by the other scripts: provision (idempotent) and export DRAGKIT_PYTHON and COMFYUI_PATH.
env_lines="$(bash "$(dirname "${BASH_SOURCE[0]}")/setup.sh")"
export DRAGKIT_PYTHON="$(sed -n 's/^DRAGKIT_PYTHON=//p' <<<"$env_lines")"
export COMFYUI_PATH="$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")"
