"""Fixtures for host tests: a real ComfyUI (COMFYUI_PATH), a generated checkpoint, a live server."""

from pathlib import Path

import pytest

from harness.comfy_inprocess import comfyui_path
from harness.comfy_server import ComfyClient, prepare_base_directory, running_server

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def comfy_base(tmp_path_factory):
    from harness.checkpoints import write_tiny_checkpoint

    base = prepare_base_directory(tmp_path_factory.mktemp("comfy"))
    write_tiny_checkpoint(base / "models" / "checkpoints" / "tiny_sd15.safetensors")
    datasets = base / "input" / "dragkit_datasets"  # DragKit Benchmark Sample reads datasets from here only
    datasets.mkdir(parents=True)
    for name in ("Drag100", "DragBench"):
        (datasets / name).symlink_to(SHARED_DATA / name, target_is_directory=True)
    return base


@pytest.fixture(scope="session")
def server(comfy_base):
    with running_server(comfyui_path(), comfy_base) as server:
        yield server


@pytest.fixture(scope="module")
def client_module(server):
    client = ComfyClient(server.url)
    yield client
    client.close()


@pytest.fixture
def client(server):
    client = ComfyClient(server.url)
    yield client
    client.close()
    assert server.is_alive(), f"the server died:\n{server.log()}"


@pytest.fixture(scope="session")
def tiny_model(comfy_base):
    """The tiny checkpoint's MODEL, loaded in this process the way a loader node does (inference mode)."""
    from harness.comfy_inprocess import import_comfy

    import_comfy()
    import comfy.sd
    import torch

    with torch.inference_mode():
        model, *_ = comfy.sd.load_checkpoint_guess_config(
            str(comfy_base / "models" / "checkpoints" / "tiny_sd15.safetensors"), output_vae=False, output_clip=False)
    return model
