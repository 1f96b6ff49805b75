"""Damaged weight files (empty, cut short, garbage, no tensors) give one clear message naming the file,
what was wrong and what is expected, both from the cheap queue-time look and from the full read."""

import pytest
import torch
from safetensors.torch import save_file

from dragkit.core.weights import WeightsFileError, check_weights_file, read_state_dict

REMEDY = "Expected x.pt (from somewhere)"


def damaged_files(tmp_path):
    state = {"layer.weight": torch.randn(64, 64)}
    torch.save(state, tmp_path / "good.pt")
    save_file(state, str(tmp_path / "good.safetensors"))
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:4000])
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "good.safetensors").read_bytes()[:4000])
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00\x01 this is not a model" * 100)
    (tmp_path / "garbage.pth").write_bytes(b"<html>a download error page</html>")
    torch.save({"note": "no tensors"}, tmp_path / "notensors.pt")
    return tmp_path


@pytest.mark.parametrize("name, words", [
    ("empty.pt", "it is empty"), ("empty.safetensors", "it is empty"), ("cut.pt", "cannot be read as weights"),
    ("cut.safetensors", "cannot be read as weights"), ("garbage.safetensors", "cannot be read as weights"),
    ("garbage.pth", "cannot be read as weights"), ("notensors.pt", "holds no weights"),
])
def test_a_damaged_file_is_read_with_a_message_naming_it(tmp_path, name, words):
    folder = damaged_files(tmp_path)
    with pytest.raises(WeightsFileError) as refused:
        read_state_dict(folder / name, REMEDY)
    message = str(refused.value)
    assert message.startswith(f"{name}: ") and words in message and message.endswith(REMEDY), message


@pytest.mark.parametrize("name", ["empty.pt", "empty.safetensors", "garbage.safetensors", "garbage.pth"])
def test_the_queue_time_look_refuses_what_it_can_see_from_a_few_bytes(tmp_path, name):
    folder = damaged_files(tmp_path)
    with pytest.raises(WeightsFileError, match=f"^{name}: cannot be read as weights"):
        check_weights_file(folder / name, REMEDY)


def test_the_queue_time_look_passes_good_files(tmp_path):
    folder = damaged_files(tmp_path)
    for name in ("good.pt", "good.safetensors"):
        check_weights_file(folder / name, REMEDY)
        assert read_state_dict(folder / name, REMEDY)["layer.weight"].shape == (64, 64)


def test_lpips_weights_of_other_shapes_are_named():
    from torchvision.models import alexnet

    from dragkit.core.metrics import alexnet_lpips

    features = {f"features.{k}": v for k, v in alexnet(weights=None).features.state_dict().items()}
    linear = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    alexnet_lpips(features, linear)  # the right shapes load
    linear["lin2.model.1.weight"] = torch.rand(1, 256, 1, 1)
    with pytest.raises(ValueError, match=r"the LPIPS weights do not fit: lin2.model.1.weight is \(1, 256, 1, 1\), expected \(1, 384, 1, 1\)"):
        alexnet_lpips(features, linear)
