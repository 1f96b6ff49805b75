"""SAM 2 through Meta's package: random-weight models built from the package's own configs, written
as the files users have (.pt and .safetensors), read back, told apart and run on the CPU."""

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dragkit.core import sam2_model

def random_state(config: str, seed: int = 0) -> dict[str, torch.Tensor]:
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    return build_sam2(config, None, device="cpu", apply_postprocessing=False).state_dict()


@pytest.fixture(scope="module")
def tiny_21():
    return random_state("configs/sam2.1/sam2.1_hiera_t.yaml")


@pytest.fixture(scope="module")
def tiny_model(tiny_21):
    model, _ = sam2_model.build_model(tiny_21)
    return model


def test_variant_and_version_are_read_off_the_weights(tiny_21):
    assert sam2_model.detect_variant(tiny_21) == sam2_model.Sam2Variant("tiny", "2.1")
    tiny_20 = random_state("configs/sam2/sam2_hiera_t.yaml")
    assert sam2_model.detect_variant(tiny_20) == sam2_model.Sam2Variant("tiny", "2.0")
    small = {k: v for k, v in tiny_21.items()}
    for block in range(12, 16):  # small: 16 Hiera blocks of the same width
        small[f"image_encoder.trunk.blocks.{block}.norm1.weight"] = torch.ones(1)
    assert sam2_model.detect_variant(small).size == "small"


def test_weights_load_from_pt_and_safetensors_files_alike(tmp_path, tiny_21):
    torch.save({"model": tiny_21}, tmp_path / "sam2.1_hiera_tiny.pt")
    save_file({k: v.half().contiguous() for k, v in tiny_21.items()}, str(tmp_path / "sam2.1_hiera_tiny.safetensors"))
    from_pt = sam2_model.read_weights(tmp_path / "sam2.1_hiera_tiny.pt")
    from_safetensors = sam2_model.read_weights(tmp_path / "sam2.1_hiera_tiny.safetensors")
    assert from_pt.keys() == from_safetensors.keys() == tiny_21.keys()
    model, variant = sam2_model.build_model(from_safetensors)
    assert variant.name == "SAM 2.1 Hiera tiny"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    key = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    assert torch.equal(model.state_dict()[key], tiny_21[key].half().float())


class WritesAFile:
    """A pickle payload that, if unpickled, would create a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_pt_whose_pickle_would_run_code_is_refused_and_the_code_does_not_run(tmp_path, tiny_21):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"model": tiny_21 | {"x": WritesAFile(marker)}}, f)
    torch.save({"model": tiny_21, "payload": WritesAFile(marker)}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(sam2_model.Sam2Error, match="refused"):
            sam2_model.read_weights(tmp_path / name)
    assert not marker.exists()


def test_other_weights_are_named_not_sam2():
    with pytest.raises(sam2_model.Sam2Error, match="not SAM 2"):
        sam2_model.detect_variant({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)})


def test_point_prompts_give_one_image_sized_mask_per_point(tiny_model):
    image = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    masks = sam2_model.point_masks(tiny_model, image, [(30.0, 40.0), (100.0, 20.0)])
    assert len(masks) == 2
    assert all(m.shape == (96, 128) and m.dtype == bool for m in masks)


def test_automatic_masks_report_every_batch_and_stop_when_a_batch_callback_raises(tiny_model):
    image = (np.random.default_rng(1).random((64, 80, 3)) * 255).astype(np.uint8)
    batches = []
    found = sam2_model.automatic_masks(tiny_model, image, points_per_side=9, on_batch=lambda: batches.append(1))
    assert len(batches) == sam2_model.automatic_batches(9) == 11  # 81 points in batches of 8: cancel within one
    assert all(m.shape == (64, 80) for m in found)


    class Cancelled(Exception):
        pass

    def cancel():
        raise Cancelled

    with pytest.raises(Cancelled):
        sam2_model.automatic_masks(tiny_model, image, points_per_side=9, on_batch=cancel)

def test_the_small_decoder_batches_give_the_masks_of_sam2s_own_batch_of_64(tiny_model, monkeypatch):
    """Each point is decoded on its own: batches of 8 (cancel within one) change nothing. The random
    model's masks pass no quality threshold, so the thresholds and the dedup are off here to have masks to compare."""
    monkeypatch.setitem(sam2_model.AUTOMATIC_SETTINGS, "pred_iou_thresh", 0.0)
    monkeypatch.setitem(sam2_model.AUTOMATIC_SETTINGS, "stability_score_thresh", 0.0)
    monkeypatch.setitem(sam2_model.AUTOMATIC_SETTINGS, "box_nms_thresh", 1.0)  # keep every point's masks
    image = (np.random.default_rng(1).random((64, 80, 3)) * 255).astype(np.uint8)
    small = sam2_model.automatic_masks(tiny_model, image, points_per_side=5)  # 25 points: 4 batches against 1
    reference = sam2_model.automatic_masks(tiny_model, image, points_per_side=5, points_per_batch=64)
    assert len(small) > 10 and len(small) == len(reference)
    assert all(np.array_equal(a, b) for a, b in zip(small, reference))


def test_a_sam2_file_with_other_tensor_shapes_is_named_not_loaded(tiny_21):
    state = dict(tiny_21)
    key = next(k for k in state if k.startswith("sam_mask_decoder.") and state[k].ndim == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    with pytest.raises(sam2_model.Sam2Error) as refused:
        sam2_model.build_model(state)
    assert f"{key}: {tuple(state[key].shape)}" in str(refused.value) and "sam2.1_hiera_base_plus.pt" in str(refused.value)
