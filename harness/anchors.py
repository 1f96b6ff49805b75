"""What the official code does per edit and what its authors published (reference/anchors.md §1,
§2, §5.1), to print beside our measurements.

UNet work is in F (one batch-1 forward; a backward 2 F; a batch of b rows b F). `official_work`
counts the official program's loop for the same number of gradient steps our run took, so that
an early stop on either side does not flatter the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Official:
    lora_steps: int  # at batch 4, forward + backward: 12 F a step
    inversion: int  # F of the inversion loop
    feature_cache: int  # F before the first update (original features, x_{t-1} references)
    per_update: int  # F per gradient step
    sampling: int  # F of the denoising loop after the drag (incl. the drag timesteps' batch-2 steps)
    published: str  # the authors' own time / memory, with where it is from
    note: str = ""

    def lora_work(self) -> int:
        return self.lora_steps * 4 * 3

    def work(self, gradient_steps: int) -> int:
        """F per edit without LoRA, for a run of `gradient_steps` updates."""
        return self.inversion + self.feature_cache + self.per_update * gradient_steps + self.sampling


OFFICIAL = {
    "DragDiffusion": Official(
        80, 35, 1, 3, 70, "LoRA ~20 s (README, A100); ~50 s LoRA + drag (issue #48, A100); 69.4 s (EasyDrag paper, A100)",
    ),
    "GoodDrag": Official(
        70, 38, 8, 3, 76, "LoRA ~17 s + drag ~60 s, < 13 GB (README, A100)",
        "UI; the benchmark script also re-denoises video frames (+~476 F)",
    ),
    "EasyDrag": Official(
        0, 50, 1, 8, 90, "30.6 s (paper, A100)",
        "each step a batch-2 forward + backward + checkpoint recompute; the inversion runs all 50 steps",
    ),
    "DragNeXt": Official(
        70, 38, 8, 3, 76, "29 s (paper, RTX 3090)", "original features computed twice",
    ),
    "AdaptiveDrag": Official(
        80, 40, 1, 3, 240, "~13 GB (README); time not published",
        "sampling at batch 2 with a no-op backward through the UNet each step",
    ),
}
