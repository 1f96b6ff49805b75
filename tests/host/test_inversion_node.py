"""DragKit DDIM Invert on a real ComfyUI model: the schedule it follows and what inversion buys."""

import pytest
import torch

from graphs import base_graph, noisy_latent


@pytest.fixture(scope="module")
def denoiser(tiny_model):
    from dragkit.nodes import host

    denoiser = host.ComfyDenoiser(tiny_model)
    denoiser.load()
    return denoiser


@pytest.mark.parametrize("strength, start", [(0.7, 681), (0.75, 741), (0.8, 781)])
def test_start_timestep_from_the_models_own_alphas(denoiser, strength, start):
    """SD 1.5's ᾱ as ComfyUI stores them give the papers' DDIM schedule (dragdiffusion.md §3.1, §3.3)."""
    from dragkit.core.schedule import ddim_schedule

    schedule = ddim_schedule(denoiser.alphas_cumprod, 50)
    assert schedule.timesteps == tuple(range(981, 0, -20))
    assert schedule.final_alpha_cumprod == pytest.approx(0.99915, abs=1e-5)
    assert schedule.timesteps[schedule.start_index(strength)] == start


def test_sampling_from_the_inversion_reconstructs_far_better_than_from_noise(denoiser):
    from dragkit.core.inversion import invert
    from dragkit.core.sampling import sample
    from dragkit.core.schedule import ddim_schedule

    generator = torch.Generator().manual_seed(0)
    source = torch.nn.functional.interpolate(torch.randn(1, 4, 2, 2, generator=generator), size=(8, 8), mode="bilinear")
    cond = torch.zeros(1, 77, 768)
    schedule = ddim_schedule(denoiser.alphas_cumprod, 20)
    with torch.no_grad():
        inversion = invert(denoiser, source, cond, schedule, 0.7)
        from_inversion = sample(denoiser, inversion.latent, cond, schedule, inversion.start_index)
        from_noise = sample(denoiser, torch.randn(source.shape, generator=generator), cond, schedule, inversion.start_index)
    error_inversion = (from_inversion - source).square().mean()
    error_noise = (from_noise - source).square().mean()
    assert len(inversion.trajectory) == 15 and inversion.timesteps[0] == 651
    assert error_inversion < 0.05 * error_noise, (error_inversion, error_noise)


def invert_graph(**settings):
    graph = base_graph()
    noisy_latent(graph)
    inputs = {"model": ["ckpt", 0], "latent": ["noisy", 0], "conditioning": ["cond", 0], "steps": 10,
              "preset": "custom", "strength": 0.7, "guidance": 1.0}
    inputs.update(settings)
    graph["invert"] = {"class_type": "DragKitDDIMInvert", "inputs": inputs}
    return graph


def test_invert_node_outputs_trajectory_with_progress_and_preview(client):
    graph = invert_graph(preset="DragDiffusion", steps=50)
    graph["use"] = {"class_type": "DragKitTestInversionReport", "inputs": {"inversion": ["invert", 0]}}
    run = client.run(graph)
    assert run.status == "success", run.describe()
    report = run.outputs["use"]["inversion"][0]
    assert report["timesteps"][0] == 681 and report["timesteps"][-1] == 1 and len(report["timesteps"]) == 35
    assert report["trajectory"] == 36 and report["latent_shape"] == [1, 4, 8, 8]
    assert report["finite"]
    assert run.outputs["invert"]["images"], "no preview of the inverted latent"
    assert [p for p in run.progress if p[0] == "invert"][-1][1:] == (35, 35)


@pytest.mark.parametrize("settings, message", [
    ({"strength": 0.0}, "strength: must be in (0, 1]"),
    ({"strength": 1.5}, "strength: 1.5 is above the maximum 1.0"),
    ({"steps": 0}, "steps: 0 is below the minimum 1"),
    ({"strength": 0.04}, "inverts no step"),
])
def test_bad_strength_or_steps_fail_validation(client, settings, message):
    graph = invert_graph(**settings)
    graph["use"] = {"class_type": "DragKitTestInversionReport", "inputs": {"inversion": ["invert", 0]}}
    response = client.post_prompt(graph)
    assert response.status_code == 400, response.text
    errors = response.json()["node_errors"]["invert"]["errors"]
    assert any(message in e["details"] for e in errors), errors
