"""UNet work per edit, counted (core/passes.py), never above the official code's for the same
number of gradient steps (harness/anchors.py, from reference/anchors.md §5.1), each method at its
defaults on the synthetic denoiser; the pass counts depend on the loops, not on the UNet."""

from pathlib import Path

import pytest
import torch
from harness.synthetic import IMAGE_SIZE, SyntheticDenoiser, one_thread

from dragkit.core.drag import DragSpec
from dragkit.core.passes import CountingDenoiser

from harness.anchors import OFFICIAL
from harness.edit_stages import METHODS, run_edit

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

SPEC = DragSpec(IMAGE_SIZE, IMAGE_SIZE, ((40.0, 64.0),), ((72.0, 64.0),))


def source_latent() -> torch.Tensor:
    return 0.25 * torch.randn(1, 4, IMAGE_SIZE // 8, IMAGE_SIZE // 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", METHODS)
def test_an_edit_does_no_more_unet_work_than_the_official_code(method):
    with torch.enable_grad():
        edit = run_edit(method, SyntheticDenoiser(), source_latent(), SPEC, torch.zeros(1, 1, 8), lora_steps=0)
    official = OFFICIAL[method]
    stages = {stage.name: stage.passes for stage in edit.stages}
    assert list(stages) == ["inversion", "drag", "sampling", "re-sample"]
    assert edit.gradient_steps > 0 and stages["drag"].backward_rows >= edit.gradient_steps
    assert stages["inversion"].work <= official.inversion
    assert edit.work() <= official.work(edit.gradient_steps), {k: v.work for k, v in stages.items()}
    # a re-drag's sampling passes no reference rows: the sampler recorded them in the first run
    reference_rows = stages["sampling"].forward_rows - stages["re-sample"].forward_rows
    guided_steps = 20 if method == "EasyDrag" else stages["re-sample"].forward_calls
    assert reference_rows == guided_steps > 0


def test_easydrag_steps_cost_half_the_rows_of_the_codes_batch_of_two():
    works = {}
    for plain in (False, True):
        with torch.enable_grad():
            edit = run_edit("EasyDrag", SyntheticDenoiser(), source_latent(), SPEC, torch.zeros(1, 1, 8), easydrag_plain=plain)
        drag = next(stage.passes for stage in edit.stages if stage.name == "drag")
        works[plain] = drag, edit.gradient_steps
    (fast, steps), (plain, plain_steps) = works[False], works[True]
    assert steps == plain_steps > 0
    assert fast.forward_rows == 1 + steps and plain.forward_rows == 1 + 2 * steps


def test_the_counter_counts_each_backward_pass_through_a_call():
    counting = CountingDenoiser(SyntheticDenoiser())
    x = torch.zeros(2, 4, 8, 8, requires_grad=True)
    prediction = counting.predict(x, 681, torch.zeros(1, 1, 8), (1,))
    loss = prediction.eps.sum() + prediction.features[1].sum()
    torch.autograd.grad(loss, x, retain_graph=True)  # both outputs reached: one backward
    loss.backward()
    counting.predict(x.detach(), 681, torch.zeros(1, 1, 8))  # no gradient: no backward
    passes = counting.passes
    assert (passes.forward_calls, passes.forward_rows, passes.backward_calls, passes.backward_rows) == (2, 4, 2, 4)
    assert passes.work == 4 + 2 * 4
