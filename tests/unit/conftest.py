"""The unit tests are pure PyTorch and NumPy (no ComfyUI): scripts/test.sh runs them once, in the
current ComfyUI's pass, not again on 0.3.75 (where they would show nothing new)."""

from pathlib import Path

from harness.comfy_inprocess import in_the_current_hosts_pass_only

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    once = in_the_current_hosts_pass_only("pure PyTorch: run once, in the current ComfyUI's pass")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(once)
