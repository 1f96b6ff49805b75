"""The LoRA disk cache: keyed on the model as it computes, written atomically, self-healing, bounded.

Before: the key hashed only some weights (a checkpoint differing in to_k reused another model's
LoRA), a file cut in half broke every later run, and nothing was ever evicted.
"""

import logging

import pytest
import torch

from harness.checkpoints import narrow_sd15_patcher

CONTEXT = torch.zeros(1, 77, 64)
LATENT = torch.ones(1, 4, 8, 8)


def fingerprint(patcher) -> str:
    from dragkit.nodes import host

    denoiser = host.ComfyDenoiser(patcher)
    denoiser.load()
    return denoiser.fingerprint()


@pytest.fixture(scope="module")
def base_patcher():
    patcher, _ = narrow_sd15_patcher(seed=4)
    return patcher


@pytest.mark.parametrize("module", ["attn1.to_k", "attn2.to_v", "ff.net.2"])
def test_a_model_differing_in_any_weight_gets_another_key(base_patcher, module):
    other, _ = narrow_sd15_patcher(seed=4)
    name = f"output_blocks.5.1.transformer_blocks.0.{module}.weight"
    with torch.no_grad():
        other.model.diffusion_model.get_parameter(name).add_(1e-3)
    assert fingerprint(other) != fingerprint(base_patcher)
    assert fingerprint(narrow_sd15_patcher(seed=4)[0]) == fingerprint(base_patcher)  # and only then


def test_a_lora_patched_model_gets_another_key(base_patcher):
    from dragkit.nodes import host

    name = "diffusion_model.output_blocks.5.1.transformer_blocks.0.attn1.to_q"
    lora = {f"{name}.lora_up.weight": torch.full((128, 2), 0.1), f"{name}.lora_down.weight": torch.full((2, 128), 0.1)}
    assert fingerprint(host.with_lora(base_patcher, lora)) != fingerprint(base_patcher)


def result(value: float, size: int = 256):
    from dragkit.core.lora import LoraResult

    return LoraResult(weights={"a.lora_up.weight": torch.full((size, size), value)}, losses=(1.0, 0.5))


def test_saved_entry_is_reused_and_nothing_partial_is_left(tmp_path):
    from dragkit.core.lora import LoraSettings
    from dragkit.core import lora_cache

    path = lora_cache.entry_path(tmp_path, "model-a", LATENT, CONTEXT, LoraSettings())
    assert path.name.startswith(f"v{lora_cache.KEY_VERSION}-")
    assert lora_cache.load(path) is None
    lora_cache.save(path, result(0.25))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    loaded = lora_cache.load(path)
    assert loaded.losses == (1.0, 0.5) and torch.equal(loaded.weights["a.lora_up.weight"], torch.full((256, 256), 0.25))
    assert lora_cache.entry_path(tmp_path, "model-b", LATENT, CONTEXT, LoraSettings()) != path


@pytest.mark.parametrize("damage", ["truncated", "garbage", "nan"])
def test_an_unusable_entry_is_removed_with_a_warning_naming_it(tmp_path, caplog, damage):
    from dragkit.core.lora import LoraSettings
    from dragkit.core import lora_cache

    path = lora_cache.entry_path(tmp_path, "model", LATENT, CONTEXT, LoraSettings())
    lora_cache.save(path, result(float("nan") if damage == "nan" else 0.5))
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    with caplog.at_level(logging.WARNING):
        assert lora_cache.load(path) is None
    assert not path.exists()
    assert str(path) in caplog.text and "training again" in caplog.text


def test_the_folder_is_kept_under_its_bound_least_recently_used_first(tmp_path):
    import os

    from dragkit.core.lora import LoraSettings
    from dragkit.core import lora_cache

    paths = [lora_cache.entry_path(tmp_path, f"model-{i}", LATENT, CONTEXT, LoraSettings()) for i in range(4)]
    size = 256 * 256 * 4 + 1024  # one entry, roughly
    for i, path in enumerate(paths[:3]):
        lora_cache.save(path, result(float(i)), max_bytes=10 * size)
        os.utime(path, (1000 + i, 1000 + i))
    lora_cache.load(paths[0])  # used again: now the most recent
    lora_cache.save(paths[3], result(3.0), max_bytes=int(2.5 * size))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([paths[0].name, paths[3].name])
