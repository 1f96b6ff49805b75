"""How long the queue-time check of a drag_data takes at the whole-drag mask budget (core/drag.py's
MAX_MASK_PIXELS): parsing with every mask decoded, then DragNeXt's region feasibility, for the largest
accepted drags at a few picture sizes. This check runs in ComfyUI's /prompt handler, so it must stay
well under a second. Run: `bash scripts/bench.sh validation`."""

from __future__ import annotations

import json
import time

import numpy as np

from dragkit.core.drag import MAX_MASK_PIXELS, MAX_PAIRS, DragSpec, encode_rle
from dragkit.core.methods import dragnext


def largest_accepted(side: int) -> str:
    """As many centred half-picture regions as the budget (and the pair bound) allows at `side`²."""
    count = min(MAX_PAIRS, MAX_MASK_PIXELS // (side * side))
    mask = np.zeros((side, side), bool)
    mask[side // 4:3 * side // 4, side // 4:3 * side // 4] = True
    rle = encode_rle(mask)
    pairs = [{"handle": [side / 2, side / 2], "target": [side / 2 + side / 8, side / 2]} for _ in range(count)]
    regions = [{"pair": i, "type": "translate" if i % 2 else "rotate", "center": [side / 4, side / 4],
                "mask": {"rle": rle}} for i in range(count)]
    return json.dumps({"version": 1, "width": side, "height": side, "pairs": pairs, "mask": None, "regions": regions})


def main() -> None:
    print(f"{'picture':>10}{'regions':>9}{'parse s':>9}{'regions s':>11}{'total s':>9}")
    for side in (512, 1024, 2048, 4096, 5792):  # 5792² is the largest square within 32 Mpx
        text = largest_accepted(side)
        start = time.perf_counter()
        spec = DragSpec.from_json(text)
        parsed = time.perf_counter()
        dragnext.check_drag(spec)
        done = time.perf_counter()
        print(f"{side:>9}²{len(spec.regions):>9}{parsed - start:>9.2f}{done - parsed:>11.2f}{done - start:>9.2f}")


if __name__ == "__main__":
    main()
