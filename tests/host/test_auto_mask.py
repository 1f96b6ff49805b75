"""DragKit SAM2 Loader and Auto Mask on a live server of their own (its models/sam2 starts empty and
extra_model_paths.yaml adds a second SAM 2 folder), in graphs with the drag methods."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from harness.comfy_inprocess import comfyui_path
from harness.comfy_server import ComfyClient, prepare_base_directory, running_server
from graphs import drag_pipeline, editor_spec
from harness.checkpoints import tiny_sam2_state

SIZE = 64
HANDLE, TARGET = (22.0, 32.0), (44.0, 32.0)


@pytest.fixture(scope="module")
def sam_server(tmp_path_factory):
    from harness.checkpoints import write_tiny_checkpoint

    base = prepare_base_directory(tmp_path_factory.mktemp("sam"))
    write_tiny_checkpoint(base / "models" / "checkpoints" / "tiny_sd15.safetensors")
    extra = tmp_path_factory.mktemp("shared_models")
    (extra / "segmenters").mkdir()
    config = base / "extra_model_paths.yaml"
    config.write_text(f"shared:\n    base_path: {extra}\n    sam2: segmenters\n")
    (base / "models" / "sam2").mkdir(parents=True, exist_ok=True)
    picture = np.zeros((SIZE, SIZE, 3), np.uint8)
    picture[...] = (90, 140, 90)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    picture[(cols - 22) ** 2 + (rows - 32) ** 2 <= 10**2] = (220, 40, 40)  # an object under the handle
    Image.fromarray(picture).save(base / "input" / "disc.png")
    with running_server(comfyui_path(), base, extra_args=("--extra-model-paths-config", str(config))) as server:
        yield server, base, extra / "segmenters"


@pytest.fixture
def client(sam_server):
    server = sam_server[0]
    client = ComfyClient(server.url)
    yield client
    client.close()
    assert server.is_alive(), f"the server died:\n{server.log()}"


def auto_mask_graph(mode, sam2_name=None, **settings):
    """LoadImage → Editor → Auto Mask, with its mask shown as an image."""
    inputs = {"image": ["load", 0], "drag": ["editor", 0], "mode": mode, "include_path": True, "dilation": 0,
              "superpixels": 60, "points_per_side": 4, "official_line_search": False, "painted_mask": "replace"}
    inputs.update(settings)
    graph = {
        "load": {"class_type": "LoadImage", "inputs": {"image": "disc.png"}},
        "editor": {"class_type": "DragKitEditor", "inputs": {
            "image": ["load", 0], "drag_data": editor_spec(SIZE, SIZE, pairs=((HANDLE, TARGET),))}},
        "auto": {"class_type": "DragKitAutoMask", "inputs": inputs},
        "maskimg": {"class_type": "MaskToImage", "inputs": {"mask": ["auto", 1]}},
        "save_mask": {"class_type": "SaveImage", "inputs": {"images": ["maskimg", 0], "filename_prefix": "auto_mask"}},
    }
    if sam2_name is not None:
        graph["sam2"] = {"class_type": "DragKitSAM2Loader", "inputs": {"sam2_name": sam2_name, "precision": "auto"}}
        inputs["sam2_model"] = ["sam2", 0]
    return graph


def saved_mask(base, run) -> np.ndarray:
    (image,) = run.outputs["save_mask"]["images"]
    return np.asarray(Image.open(base / "output" / image["filename"]).convert("L")) > 127


def test_without_weights_the_loader_names_the_folders_and_the_files_to_put_there(client, sam_server):
    _, base, extra = sam_server
    options = client.object_info()["DragKitSAM2Loader"]["input"]["required"]["sam2_name"]
    assert "(no SAM 2 file found)" in json.dumps(options)
    response = client.post_prompt(auto_mask_graph("sam2", "(no SAM 2 file found)"))
    assert response.status_code == 400
    message = json.dumps(response.json()["node_errors"])
    assert str(base / "models" / "sam2") in message and str(extra) in message
    assert "sam2.1_hiera_base_plus.pt" in message and "downloads nothing" in message


def test_loader_lists_pt_and_safetensors_from_both_folders(client, sam_server):
    _, base, extra = sam_server
    state = tiny_sam2_state()
    torch.save({"model": state}, base / "models" / "sam2" / "sam2.1_hiera_tiny.pt")
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(extra / "sam2.1_hiera_tiny_fp16.safetensors"))
    (base / "models" / "sam2" / "notes.txt").write_text("not a model")
    options = json.dumps(client.object_info()["DragKitSAM2Loader"]["input"]["required"]["sam2_name"])
    assert "sam2.1_hiera_tiny.pt" in options and "sam2.1_hiera_tiny_fp16.safetensors" in options
    assert "notes.txt" not in options


@pytest.mark.parametrize("name, content, words", [
    ("empty.pt", b"", "it is empty"),
    ("download_page.safetensors", b"<html>404</html>" * 10, "safetensors header"),
])
def test_a_damaged_sam2_file_is_refused_at_queue_time_naming_it(client, sam_server, name, content, words):
    _, base, _ = sam_server
    (base / "models" / "sam2" / name).write_bytes(content)
    try:
        response = client.post_prompt(auto_mask_graph("sam2", name))
        assert response.status_code == 400, response.text
        refusals = {e["details"].split(" - ", 1)[1] for e in response.json()["node_errors"]["sam2"]["errors"]}
        assert any(r.startswith(f"sam2_name: {name}: cannot be read as weights") and words in r
                   and "sam2.1_hiera_base_plus.pt" in r for r in refusals), refusals
    finally:
        (base / "models" / "sam2" / name).unlink()


def test_slic_mode_covers_the_object_and_the_path_and_not_the_far_background(client, sam_server):
    _, base, _ = sam_server
    run = client.run(auto_mask_graph("slic"))
    assert run.status == "success", run.describe()
    mask = saved_mask(base, run)
    assert mask.shape == (SIZE, SIZE)
    assert mask[32, 22] and mask[32, 44] and all(mask[32, x] for x in range(22, 45))
    assert not mask[:8, :].any() and not mask[56:, :].any()
    assert run.outputs["auto"]["images"], "no preview"


@pytest.mark.parametrize("mode,weights", [("sam2", "sam2.1_hiera_tiny_fp16.safetensors"),
                                          ("adaptivedrag", "sam2.1_hiera_tiny.pt")])
def test_sam2_modes_run_with_either_file_and_give_an_image_sized_mask(client, sam_server, mode, weights):
    _, base, _ = sam_server
    run = client.run(auto_mask_graph(mode, weights))
    assert run.status == "success", run.describe()
    mask = saved_mask(base, run)
    assert mask.shape == (SIZE, SIZE) and mask.any()
    assert mask[32, 22] and mask[32, 44]  # include_path: the way to the target is editable
    if mode == "adaptivedrag":
        assert len([p for p in run.progress if p[0] == "auto"]) >= 1


def test_sam2_mode_without_a_model_is_refused_naming_the_input(client):
    run = client.run(auto_mask_graph("sam2"))
    assert run.status == "error"
    assert "sam2_model" in run.error["exception_message"]


def test_the_mask_reaches_the_drag_and_the_outside_changes_less(client, sam_server):
    graph = drag_pipeline("DragKitDragDiffusion", editor_spec(SIZE, SIZE, pairs=((HANDLE, TARGET),)), "disc.png",
                          drag_settings={"max_iterations": 12, "mask_weight": 1.0})
    graph.update({k: v for k, v in auto_mask_graph("slic").items() if k in ("auto",)})
    graph["auto"]["inputs"].update(image=["load", 0], drag=["editor", 0], dilation=2)
    graph["drag"]["inputs"]["drag"] = ["auto", 0]
    graph["report"] = {"class_type": "DragKitTestEditReport", "inputs": {"edit": ["drag", 0]}}
    run = client.run(graph)
    assert run.status == "success", run.describe()
    (report,) = run.outputs["report"]["edit"]
    assert report["change_outside"] < 0.5 * report["change_inside"], report


def test_cancel_during_sam2_automatic_masks_is_prompt_and_the_next_run_works(client):
    def interrupt(c, data):
        if data.get("node") == "auto" and data.get("value", 0) >= 1:
            c.interrupt()

    # 24² points: 9 decoder batches (several seconds each on 2 CPU cores); cancel lands after the next one
    run = client.run(auto_mask_graph("adaptivedrag", "sam2.1_hiera_tiny.pt", points_per_side=24), on_progress=interrupt)
    assert run.status == "interrupted", run.describe()
    assert max(p[1] for p in run.progress if p[0] == "auto") <= 3, "cancel was not prompt"
    again = client.run(auto_mask_graph("slic", dilation=1))
    assert again.status == "success", again.describe()


def test_without_the_sam2_package_the_loader_says_at_queue_time_how_to_install_it(monkeypatch):
    """sam2 is an optional install: the loader refuses the prompt with the install line (in-process,
    with the package reported missing), before anything is read."""
    from harness.comfy_inprocess import import_comfy

    import_comfy()
    from dragkit.core import sam2_model
    from dragkit.nodes.sam2_loader import DragKitSAM2Loader

    monkeypatch.setattr(sam2_model, "sam2_installed", lambda: False)
    message = DragKitSAM2Loader.validate_inputs(sam2_name="sam2.1_hiera_base_plus.pt", precision="auto")
    assert message.startswith("sam2_name: the sam2 package is not installed"), message
    assert 'pip install --no-build-isolation "sam2>=1.0"' in message and "slic" in message, message
