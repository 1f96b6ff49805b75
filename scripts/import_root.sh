# Sourced by env.sh (and the GPU scripts that skip provisioning).
# DragKit as the package `dragkit` and the shared harness (server, workflows, test checkpoints) as
# `harness`, for tests, scripts and benchmarks alike: a folder outside the checkout with a link to
# each, put on PYTHONPATH. The checkout itself is never on sys.path: its `nodes/` would shadow ComfyUI's.
dragkit_import_root() {
  local checkout; checkout="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  local folder="${DRAGKIT_CACHE:-$HOME/.cache/dragkit}/import/$(printf %s "$checkout" | sha256sum | cut -c1-16)"
  mkdir -p "$folder"
  ln -sfn "$checkout" "$folder/dragkit"
  ln -sfn "$checkout/harness" "$folder/harness"
  printf %s "$folder"
}
DRAGKIT_IMPORT_ROOT="$(dragkit_import_root)"
export DRAGKIT_IMPORT_ROOT
export PYTHONPATH="$DRAGKIT_IMPORT_ROOT${PYTHONPATH:+:$PYTHONPATH}"
