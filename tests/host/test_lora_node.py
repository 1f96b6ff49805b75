"""DragKit LoRA Finetune: training with peft on a real ComfyUI model, and the user's MODEL untouched."""

import shutil

import pytest
import torch

from graphs import ksampler_graph, noisy_latent


def unet_snapshot(model) -> dict:
    unet = model.model.diffusion_model
    return {"attributes": set(vars(unet)), "modules": [(n, type(m)) for n, m in unet.named_modules()],
            "weights": {k: v.detach().clone() for k, v in unet.state_dict().items()}}


def assert_unchanged(model, snapshot):
    unet = model.model.diffusion_model
    assert not [n for n, m in unet.named_modules() if "peft" in type(m).__module__], "peft modules left in the UNet"
    assert [(n, type(m)) for n, m in unet.named_modules()] == snapshot["modules"]
    assert set(vars(unet)) == snapshot["attributes"], "attributes left on the UNet"
    snapshot = snapshot["weights"]
    now = unet.state_dict()
    assert now.keys() == snapshot.keys()
    for key, value in snapshot.items():
        assert torch.equal(now[key], value), key


def smooth_latent(seed=0, size=8):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 4, size // 4, size // 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")


def train(model, steps, on_step=None, seed=0, micro_batch_size=0):
    from dragkit.core.lora import LoraSettings, train_lora
    from dragkit.nodes import host

    settings = LoraSettings(steps=steps, batch_size=4, seed=seed, micro_batch_size=micro_batch_size)
    with host.gradients():
        denoiser = host.ComfyDenoiser(model, for_gradients=True)
        denoiser.load_for_gradients()
        x0 = smooth_latent()
        cond = torch.zeros(1, 77, 768)
        return train_lora(denoiser, x0, cond, settings, on_step), denoiser


def test_loss_falls_and_no_peft_module_remains(tiny_model):
    before = unet_snapshot(tiny_model)
    result, _ = train(tiny_model, steps=40)
    losses = result.losses
    assert len(losses) == 40
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10, losses
    attention = [n for n, _ in tiny_model.model.diffusion_model.named_modules() if n.endswith((".attn1", ".attn2"))]
    assert len(attention) == 8  # 4 transformer blocks in the tiny UNet, self + cross attention each
    assert len(result.weights) == 2 * 4 * len(attention)  # (down, up) × (q, k, v, out) per attention module
    assert_unchanged(tiny_model, before)


@pytest.mark.parametrize("micro_batch_size", [1, 3])  # 3: a last micro-batch of one
def test_micro_batches_give_the_whole_batchs_update(tiny_model, micro_batch_size):
    """The CPU's one-image-at-a-time training is the same optimisation, only with less in memory."""
    whole, _ = train(tiny_model, steps=3)
    parts, _ = train(tiny_model, steps=3, micro_batch_size=micro_batch_size)
    assert parts.losses == pytest.approx(whole.losses, rel=1e-5)  # steps 2 and 3 see the updated LoRA
    # lora_up starts at zero, so its weights are the whole of what training moved. AdamW turns
    # near-zero gradients into lr-sized steps by sign, which float rounding can flip: compare in norm.
    up = [name for name in whole.weights if name.endswith("lora_up.weight")]
    moved = torch.cat([whole.weights[name].flatten() for name in up])
    apart = torch.cat([(parts.weights[name] - whole.weights[name]).flatten() for name in up])
    assert moved.norm() > 0, "nothing was trained"
    assert apart.norm() < 0.01 * moved.norm(), (apart.norm(), moved.norm())


def test_cancel_mid_training_leaves_the_model_bit_identical(tiny_model):
    before = unet_snapshot(tiny_model)

    class Cancel(Exception):
        pass

    def cancel_at_third(done, total, loss):
        if done == 3:
            raise Cancel

    with pytest.raises(Cancel):
        train(tiny_model, steps=10, on_step=cancel_at_third)
    assert_unchanged(tiny_model, before)


def test_trained_lora_changes_the_output_through_comfyui_patching(tiny_model):
    from dragkit.nodes import host

    result, _ = train(tiny_model, steps=5)
    lora = {"diffusion_model." + k: v for k, v in result.weights.items()}
    x, cond = smooth_latent(seed=1), torch.zeros(1, 77, 768)
    with torch.no_grad():
        plain = host.ComfyDenoiser(tiny_model)
        plain.load()
        eps_plain = plain.predict(x, 400, cond).eps
        patched = host.ComfyDenoiser(host.with_lora(tiny_model, lora))
        patched.load()
        eps_lora = patched.predict(x, 400, cond).eps
        plain.load()
        eps_again = plain.predict(x, 400, cond).eps
    assert (eps_lora - eps_plain).abs().max() > 1e-4
    torch.testing.assert_close(eps_again, eps_plain, rtol=0, atol=0)


def lora_graph(steps=4, seed=0, disk_cache=False):
    graph = ksampler_graph()
    noisy_latent(graph)
    graph["lora"] = {"class_type": "DragKitLoRAFinetune", "inputs": {
        "model": ["ckpt", 0], "conditioning": ["cond", 0], "preset": "custom", "steps": steps, "rank": 4,
        "learning_rate": 5e-3, "batch_size": 2, "seed": seed, "disk_cache": disk_cache, "latent": ["noisy", 0]}}
    graph["save"] = {"class_type": "SaveLoRA", "inputs": {"lora": ["lora", 1], "prefix": f"loras/dragkit_test_{seed}"}}
    del graph["digest"], graph["sample"]
    return graph


def test_saved_lora_reloads_through_core_loader_and_changes_the_output(client, comfy_base):
    run = client.run(lora_graph(steps=4, seed=21))
    assert run.status == "success", run.describe()
    (figures,) = run.outputs["lora"]["dragkit_lora"]
    assert figures["steps"] == len(figures["losses"]) == 4, figures
    saved = sorted((comfy_base / "output" / "loras").glob("dragkit_test_21*.safetensors"))
    assert saved, "SaveLoRA wrote no file"
    shutil.copy(saved[-1], comfy_base / "models" / "loras" / "dragkit_test_21.safetensors")

    plain = ksampler_graph(seed=5)
    with_lora = ksampler_graph(seed=5)
    with_lora["loader"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
        "model": ["ckpt", 0], "lora_name": "dragkit_test_21.safetensors", "strength_model": 1.0}}
    with_lora["sample"]["inputs"]["model"] = ["loader", 0]
    runs = [client.run(plain), client.run(with_lora)]
    assert all(r.status == "success" for r in runs), [r.describe() for r in runs]
    assert runs[0].outputs["digest"]["digest"] != runs[1].outputs["digest"]["digest"]


def test_requeue_reuses_the_lora_and_disk_cache_survives(client, comfy_base):
    graph = lora_graph(steps=3, seed=31, disk_cache=True)
    first = client.run(graph)
    assert first.status == "success", first.describe()
    again = client.run(graph)
    assert "lora" in again.cached and "lora" not in again.executed
    cached_files = list((comfy_base / "user" / "dragkit" / "lora_cache").glob("*.safetensors"))
    assert cached_files, "disk_cache wrote nothing"


def test_interrupt_during_training_leaves_the_model_unchanged(client):
    before = client.run(ksampler_graph(seed=41))
    assert before.status == "success", before.describe()
    graph = lora_graph(steps=200, seed=42)
    del graph["save"]
    graph["use"] = {"class_type": "DragKitTestDigest", "inputs": {"latent": ["noisy", 0]}}
    graph["sample2"] = {"class_type": "KSampler", "inputs": {**ksampler_graph()["sample"]["inputs"], "model": ["lora", 0],
                                                              "positive": ["cond", 0], "negative": ["cond", 0], "latent_image": ["latent", 0]}}
    graph["digest2"] = {"class_type": "DragKitTestDigest", "inputs": {"latent": ["sample2", 0]}}

    def interrupt(c, data):
        if data.get("node") == "lora" and data.get("value", 0) >= 2:
            c.interrupt()

    run = client.run(graph, on_progress=interrupt)
    assert run.status == "interrupted", run.describe()
    client.run(ksampler_graph(seed=140))
    after = client.run(ksampler_graph(seed=41))
    assert after.outputs["digest"] == before.outputs["digest"]
