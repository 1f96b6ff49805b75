# Sourced by the other scripts: provision (idempotent) and export DRAGKIT_PYTHON and COMFYUI_PATH,
# and, where the current ComfyUI was provisioned, DRAGKIT_CURRENT_COMFYUI and DRAGKIT_CURRENT_PACKAGES.
env_lines="$(bash "$(dirname "${BASH_SOURCE[0]}")/setup.sh")"
env_value() { sed -n "s/^$1=//p" <<<"$env_lines"; }
export DRAGKIT_PYTHON="$(env_value DRAGKIT_PYTHON)"
export COMFYUI_PATH="$(env_value COMFYUI_PATH)"
export DRAGKIT_CURRENT_COMFYUI="$(env_value DRAGKIT_CURRENT_COMFYUI)"
export DRAGKIT_CURRENT_PACKAGES="$(env_value DRAGKIT_CURRENT_PACKAGES)"
export DRAGKIT_COMFY_CLI="$(env_value DRAGKIT_COMFY_CLI)"

# Point COMFYUI_PATH at the current ComfyUI (with its newest frontend) when it was provisioned.
use_current_comfyui() {
  if [ -n "$DRAGKIT_CURRENT_COMFYUI" ]; then
    export COMFYUI_PATH="$DRAGKIT_CURRENT_COMFYUI"
    export PYTHONPATH="$DRAGKIT_CURRENT_PACKAGES${PYTHONPATH:+:$PYTHONPATH}"
  fi
}

source "$(dirname "${BASH_SOURCE[0]}")/import_root.sh"
