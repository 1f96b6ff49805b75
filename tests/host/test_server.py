"""DragKit on a live ComfyUI server (CPU): registration, queue-time validation, gradients, isolation."""

import json

import pytest

from graphs import editor_graph, editor_spec, ksampler_graph, noisy_latent


def dragkit_schemas():
    from harness.comfy_inprocess import import_comfy

    import_comfy()
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from dragkit.nodes import DragKitExtension

    # A thread of its own: another test's library may already run an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        nodes = pool.submit(asyncio.run, DragKitExtension().get_node_list()).result()
    return [node.define_schema() for node in nodes]


def test_object_info_lists_every_dragkit_node_with_inputs_and_outputs(client):
    info = client.object_info()
    schemas = dragkit_schemas()
    assert {s.node_id for s in schemas} >= {"DragKitEditor"}
    for schema in schemas:
        assert schema.node_id in info, f"{schema.node_id} missing from /object_info"
        node = info[schema.node_id]
        assert node["display_name"] == schema.display_name
        listed = {**node["input"].get("required", {}), **node["input"].get("optional", {})}
        for field in schema.inputs:
            assert field.id in listed, f"{schema.node_id}: input {field.id} not listed"
            assert listed[field.id][0] == field.get_io_type(), f"{schema.node_id}.{field.id}"
        assert node["output"] == [o.get_io_type() for o in schema.outputs]
    editor = info["DragKitEditor"]
    assert editor["input"]["required"]["image"][0] == "IMAGE"
    assert editor["input"]["required"]["drag_data"][0] == "STRING"
    assert editor["input"]["optional"]["mask"][0] == "MASK"
    assert editor["output"] == ["DRAGKIT_DRAG", "MASK"]


def test_editor_runs_and_outputs_the_editable_mask(client):
    mask = {"rle": [64 * 10, 64 * 20, 64 * 34]}  # rows 10–29 editable
    run = client.run(editor_graph(editor_spec(mask=mask)))
    assert run.status == "success", run.describe()
    assert "editor" in run.executed
    assert run.outputs["preview"]["images"], "the mask preview produced no image"


BAD_SPECS = {
    "unequal pairs": (json.dumps({"version": 1, "width": 64, "height": 64, "pairs": [{"handle": [1, 2]}]}), "both a handle and a target"),
    "no pairs": (editor_spec(pairs=()), "no handle → target pairs"),
    "empty string": ("", "no handle → target pairs"),
    "point outside": (editor_spec(pairs=(((10, 12), (64, 12)),)), "outside the 64×64 image"),
    "negative point": (editor_spec(pairs=(((-1, 12), (20, 12)),)), "outside the 64×64 image"),
    "non-finite": (editor_spec(pairs=(((10, 12), (float("nan"), 12)),)), "finite numbers"),
    "mask size": (editor_spec(mask={"rle": [10, 20]}), "masks must have the image's size"),
    "unknown version": (json.dumps({"version": 2, "width": 64, "height": 64, "pairs": []}), "unknown schema version 2"),
    "unknown region type": (editor_spec(regions=[{"pair": 0, "type": "shear", "mask": {"rle": [64 * 64]}}]), "unknown type 'shear'"),
    "not json": ("{pairs: ", "not valid JSON"),
    "picture too small": (editor_spec(width=2, height=64, pairs=(((0, 12), (1, 12)),)), "the picture is 2×64 pixels; DragKit needs at least 64×64"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_fails_validation_naming_the_input(client, case):
    spec, expected = BAD_SPECS[case]
    response = client.post_prompt(editor_graph(spec))
    assert response.status_code == 400, response.text
    errors = response.json()["node_errors"]["editor"]["errors"]
    assert errors[0]["extra_info"]["input_name"] == "drag_data"
    assert errors[0]["details"].startswith("drag_data")
    assert expected in errors[0]["details"], errors[0]["details"]


def test_size_mismatch_between_points_and_image_is_a_clear_error(client):
    run = client.run(editor_graph(editor_spec(width=96, height=96, pairs=(((1, 1), (5, 5)),)), size=64))
    assert run.status == "error"
    assert "placed on a 96×96 image but the image input is 64×64" in run.error["exception_message"]


def test_gradient_through_the_unet_inside_a_node_is_finite_and_non_zero(client):
    graph = ksampler_graph()
    noisy_latent(graph)
    graph["grad"] = {"class_type": "DragKitTestGradient",
                     "inputs": {"model": ["ckpt", 0], "latent": ["noisy", 0], "conditioning": ["cond", 0]}}
    del graph["digest"], graph["sample"]
    run = client.run(graph)
    assert run.status == "success", run.describe()
    report = run.outputs["grad"]["gradient"][0]
    assert report["finite"]
    assert report["norm"] > 0


def patched_loop_graph(steps=3, fail_at=-1, seed=0):
    graph = ksampler_graph()
    noisy_latent(graph)
    graph["noisy"]["inputs"]["seed"] = seed
    graph["loop"] = {"class_type": "DragKitTestPatchedLoop", "inputs": {
        "model": ["ckpt", 0], "latent": ["noisy", 0], "conditioning": ["cond", 0], "steps": steps, "fail_at": fail_at}}
    graph["loop_digest"] = {"class_type": "DragKitTestDigest", "inputs": {"latent": ["loop", 0]}}
    del graph["digest"], graph["sample"]
    return graph


def ksampler_digest(client, seed) -> str:
    run = client.run(ksampler_graph(seed))
    assert run.status == "success", run.describe()
    assert "sample" in run.executed, "the KSampler must really run, not come from the cache"
    assert run.outputs["digest"]["finite"] == [True]
    return run.outputs["digest"]["digest"][0]


@pytest.mark.parametrize("outcome", ["success", "error", "interrupted"])
def test_plain_ksampler_is_bit_identical_after_dragkit_patched_the_model(client, outcome):
    seed = {"success": 11, "error": 12, "interrupted": 13}[outcome]
    before = ksampler_digest(client, seed)

    def interrupt_on_first_step(c, data):
        if outcome == "interrupted" and data.get("node") == "loop":
            c.interrupt()

    graph = patched_loop_graph(steps=6, fail_at=1 if outcome == "error" else -1, seed=seed)
    run = client.run(graph, on_progress=interrupt_on_first_step)
    assert run.status == outcome, run.describe()
    if outcome == "success":
        assert run.outputs["loop_digest"]["finite"] == [True]
    # A different seed re-runs the KSampler with the same (cached) model; then the original seed.
    ksampler_digest(client, seed + 100)
    assert ksampler_digest(client, seed) == before
