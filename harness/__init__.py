"""What tests, scripts and benchmarks share: a real ComfyUI server and its client (`comfy_server`),
ComfyUI imported in-process (`comfy_inprocess`), UI workflow → API prompt (`workflow`), random-weight
checkpoints in real shapes (`checkpoints`), headless example runs (`examples`), one edit stage by stage
(`edit_stages`) and the official code's UNet counts (`anchors`). Imported as `harness` through the
PYTHONPATH scripts/import_root.sh sets; the pack's own code never imports it."""
