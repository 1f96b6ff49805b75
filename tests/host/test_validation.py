"""Every node refuses bad input itself, names it, and refuses mismatched graphs with both sides named.

ComfyUI skips its own checks for the inputs a node's validate_inputs reads, 0.3.75 never checks V3
choices, and linked inputs reach validate_inputs as None: each of these let a bad value run
(silently, to a KeyError, or to a black picture) before the nodes checked themselves.
"""

import json

import pytest

from graphs import base_graph, editor_graph, editor_spec, noisy_latent, region, region_errors, sampling_figures

NAN = float("nan")


def invert_graph(**invert_inputs) -> dict:
    graph = base_graph()
    noisy_latent(graph)
    graph["invert"] = {"class_type": "DragKitDDIMInvert", "inputs": {
        "model": ["ckpt", 0], "latent": ["noisy", 0], "conditioning": ["cond", 0], "steps": 10,
        "preset": "custom", "strength": 0.7, "guidance": 1.0, **invert_inputs}}
    graph["report"] = {"class_type": "DragKitTestInversionReport", "inputs": {"inversion": ["invert", 0]}}
    return graph


def drag_graph(method="DragKitDragDiffusion", spec=None, image_size=(64, 64), drag_model=("ckpt", 0), **drag_inputs) -> dict:
    graph = invert_graph()
    graph.update(editor_graph(spec or editor_spec(), size=64))
    graph["image"]["inputs"].update(width=image_size[0], height=image_size[1])
    defaults = {
        "DragKitGoodDrag": {"mode": "code (UI)", "drag_timesteps": 1, "tracks_per_timestep": 1, "steps_per_track": 1,
                            "feature_block": 0},
        "DragKitDragDiffusion": {"loss_scale": "code", "max_iterations": 2, "patch_radius": 1, "track_radius": 3,
                                 "feature_block": 0},
        "DragKitEasyDrag": {"mode": "code", "max_iterations": 2, "step": 12.0},
        "DragKitDragNeXt": {"mode": "regions (paper)", "eta_mode": "code", "pbsi_timesteps": 2, "iterations": 2,
                            "fallback_radius": 4.0, "feature_block": 0},
        "DragKitAdaptiveDrag": {"image": ["image", 0], "budget_mode": "adaptive", "initial_budget": 2, "max_budget": 3,
                                "superpixels": 50, "points_per_side": 4, "mask_mode": "official", "feature_block": 0},
    }[method]
    graph["drag"] = {"class_type": method, "inputs": {
        "model": list(drag_model), "inversion": ["invert", 0], "drag": ["editor", 0], "learning_rate": 0.01,
        "mask_weight": 0.1, **defaults, **drag_inputs}}
    graph["sampler"] = {"class_type": "DragKitMutualAttentionSampler", "inputs": {
        "model": list(drag_model), "edit": ["drag", 0], "start_layer": 2, "end_layer": 3, "start_step": 0}}
    graph["digest"] = {"class_type": "DragKitTestDigest", "inputs": {"latent": ["sampler", 0]}}
    del graph["preview"], graph["maskimg"], graph["report"]  # the digest is the only output
    return graph


def lora_graph(**lora_inputs) -> dict:
    graph = base_graph()
    noisy_latent(graph)
    graph["lora"] = {"class_type": "DragKitLoRAFinetune", "inputs": {
        "model": ["ckpt", 0], "conditioning": ["cond", 0], "preset": "custom", "steps": 1, "rank": 2,
        "learning_rate": 5e-4, "batch_size": 1, "seed": 0, "disk_cache": False, "latent": ["noisy", 0], **lora_inputs}}
    graph["use"] = {"class_type": "DragKitTestGradient", "inputs": {
        "model": ["lora", 0], "latent": ["noisy", 0], "conditioning": ["cond", 0]}}
    return graph


def refused(client, graph, node: str, input_name: str) -> str:
    """The /prompt 400's message for `node`: it starts with `input_name`, which is marked.

    (ComfyUI attaches a validate_inputs refusal to each input the function reads.)"""
    response = client.post_prompt(json.loads(json.dumps(graph)))
    assert response.status_code == 400, response.text
    errors = response.json()["node_errors"][node]["errors"]
    messages = [e["details"] for e in errors if e["extra_info"]["input_name"] == input_name]
    assert messages and all(m.startswith(input_name) for m in messages), errors
    return " | ".join(messages)


BAD_WIDGETS = {
    "invert preset": (invert_graph(preset="GoodDrag2"), "invert", "preset", "'GoodDrag2' is not one of"),
    "lora preset": (lora_graph(preset="nonsense"), "lora", "preset", "'nonsense' is not one of"),
    "loss_scale": (drag_graph(loss_scale="nonsense"), "drag", "loss_scale", "'nonsense' is not one of"),
    "gooddrag mode": (drag_graph("DragKitGoodDrag", mode="fast"), "drag", "mode", "'fast' is not one of"),
    "easydrag mode": (drag_graph("DragKitEasyDrag", mode="fast"), "drag", "mode", "'fast' is not one of"),
    "easydrag step nan": (drag_graph("DragKitEasyDrag", step=NAN), "drag", "step", "finite"),
    "strength text": (invert_graph(strength="abc"), "invert", "strength", "abc"),
    "start_layer": (drag_graph(), "sampler", "start_layer", "below the minimum 0"),
    "mask_weight nan": (drag_graph(mask_weight=NAN), "drag", "mask_weight", "finite"),
    "learning_rate nan": (lora_graph(learning_rate=NAN), "lora", "learning_rate", "finite"),
    "guidance nan": (invert_graph(guidance=NAN), "invert", "guidance", "finite"),
}
BAD_WIDGETS["start_layer"][0]["sampler"]["inputs"]["start_layer"] = -5


def closs_graph(**sampler_inputs) -> dict:
    graph = drag_graph("DragKitAdaptiveDrag")
    graph["sampler"] = {"class_type": "DragKitCLossSampler", "inputs": {
        "model": ["ckpt", 0], "edit": ["drag", 0], "start_layer": 2, "end_layer": 3, "start_step": 0, "closs": "sce",
        "learning_rate": 0.01, "temperature": 0.07, "patch_radius": 5, **sampler_inputs}}
    return graph


def auto_mask_graph(**inputs) -> dict:
    graph = editor_graph(editor_spec(), size=64)
    graph["auto"] = {"class_type": "DragKitAutoMask", "inputs": {
        "image": ["image", 0], "drag": ["editor", 0], "mode": "slic", "include_path": True, "dilation": 0,
        "superpixels": 50, "points_per_side": 4, "official_line_search": False, "painted_mask": "replace", **inputs}}
    graph["maskimg"]["inputs"]["mask"] = ["auto", 1]
    return graph


BAD_WIDGETS.update({
    "adaptivedrag budget_mode": (drag_graph("DragKitAdaptiveDrag", budget_mode="fast"), "drag", "budget_mode",
                                 "'fast' is not one of"),
    "adaptivedrag budget cap": (drag_graph("DragKitAdaptiveDrag", initial_budget=10, max_budget=5), "drag", "max_budget",
                                "below initial_budget"),
    "adaptivedrag mask_mode": (drag_graph("DragKitAdaptiveDrag", mask_mode="user"), "drag", "mask_mode",
                               "'user' is not one of"),
    "closs mode": (closs_graph(closs="official_noop"), "sampler", "closs", "'official_noop' is not one of"),
    "closs temperature nan": (closs_graph(temperature=NAN), "sampler", "temperature", "finite"),
    "auto mask mode": (auto_mask_graph(mode="grabcut"), "auto", "mode", "'grabcut' is not one of"),
    "dragnext mode": (drag_graph("DragKitDragNeXt", mode="fast"), "drag", "mode", "'fast' is not one of"),
    "dragnext eta_mode": (drag_graph("DragKitDragNeXt", eta_mode="linear"), "drag", "eta_mode", "'linear' is not one of"),
    "dragnext fallback_radius nan": (drag_graph("DragKitDragNeXt", fallback_radius=NAN), "drag", "fallback_radius",
                                     "finite"),
})

BAD_REGIONS = {  # the editor's drag_data, refused at queue time with the pair named
    "empty": ([{"pair": 0, "type": "deform", "mask": {"rle": [64 * 64]}}], "region for pair 1 is empty"),
    "rotation without a centre": ([region(0, "rotate", (4, 4, 20, 20))], "region for pair 1 is a rotation but has no centre"),
    "centre outside": ([region(0, "rotate", (4, 4, 20, 20), center=(70, 10))], "region for pair 1 centre (70, 10) lies outside"),
    "sent off the image": ([region(0, "translate", (56, 0, 64, 8))], "region for pair 1: moved to its target it would leave"),
    "too thin": ([region(0, "translate", (11, 0, 12, 64))], "region for pair 1 is too thin"),
    "centre on the handle": ([region(0, "rotate", (4, 4, 20, 20), center=(10, 12))],
                             "region for pair 1: its rotation centre lies on the pair's handle"),
    "centre on the target": ([region(0, "rotate", (4, 4, 36, 20), center=(30, 12))],
                             "region for pair 1: its rotation centre lies on the pair's target"),
}


@pytest.mark.parametrize("case", sorted(BAD_REGIONS))
def test_a_bad_region_is_refused_at_queue_time_naming_drag_data_and_the_pair(client, case):
    regions, expected = BAD_REGIONS[case]
    assert expected in refused(client, editor_graph(editor_spec(regions=regions)), "editor", "drag_data")


@pytest.mark.parametrize("kind, center", [("translate", None), ("rotate", (20, 20))])
def test_dragnext_runs_on_the_tiny_checkpoint_and_lowers_the_region_error(client, kind, center):
    spec = editor_spec(regions=[region(0, kind, (4, 4, 20, 20), center=center)])
    run = client.run(drag_graph("DragKitDragNeXt", spec=spec, eta_mode="final"))
    assert run.status == "success", run.describe()
    assert run.outputs["digest"]["finite"] == [True]
    (errors,) = region_errors(run.outputs["drag"]).values()
    assert errors["after"] < errors["before"], errors


def test_adaptivedrag_and_the_closs_sampler_run_on_the_tiny_checkpoint_and_the_loss_falls(client):
    run = client.run(closs_graph())
    assert run.status == "success", run.describe()
    assert run.outputs["digest"]["finite"] == [True]
    losses = sampling_figures(run.outputs["sampler"])["closs_losses"]
    assert losses[-1] < losses[0], losses


def test_the_closs_sampler_changes_the_result_of_plain_mutual_attention(client):
    with_loss = client.run(closs_graph(start_layer=0, end_layer=3))
    without = client.run(closs_graph(start_layer=0, end_layer=3, closs="off"))
    plain = drag_graph("DragKitAdaptiveDrag")
    plain["sampler"]["inputs"].update(start_layer=0, end_layer=3)
    mutual = client.run(plain)
    for run in (with_loss, without, mutual):
        assert run.status == "success", run.describe()
    digest = {name: run.outputs["digest"]["digest"][0] for name, run in
              (("with", with_loss), ("off", without), ("mutual", mutual))}
    assert digest["off"] == digest["mutual"], "closs off is not plain mutual attention"
    assert digest["with"] != digest["mutual"], "the correspondence loss changed nothing"


@pytest.mark.parametrize("case", sorted(BAD_WIDGETS))
def test_bad_widget_value_is_refused_naming_the_input(client, case):
    graph, node, name, expected = BAD_WIDGETS[case]
    assert expected in refused(client, graph, node, name)


def test_drag_data_from_a_string_node_is_queued_and_checked_when_it_runs(client):
    graph = editor_graph("")
    graph["text"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": editor_spec()}}
    graph["editor"]["inputs"]["drag_data"] = ["text", 0]
    run = client.run(graph)
    assert run.status == "success", run.describe()

    graph["text"]["inputs"]["value"] = editor_spec(pairs=(((10, 12), (99, 12)),))
    run = client.run(graph)
    assert run.status == "error"
    assert run.error["exception_message"].startswith("drag_data: pair 1 target (99, 12) lies outside")


def test_batch_of_images_is_refused_not_silently_cut(client):
    graph = editor_graph(editor_spec())
    graph["image"]["inputs"]["batch_size"] = 2
    run = client.run(graph)
    assert run.status == "error"
    assert run.error["exception_message"].startswith("image: got a batch of 2; DragKit edits one image at a time")


def test_points_placed_on_another_size_than_the_inversion_are_refused(client):
    spec = editor_spec(width=96, height=64)
    run = client.run(drag_graph(spec=spec, image_size=(96, 64)))
    assert run.status == "error"
    message = run.error["exception_message"]
    assert message.startswith("drag:") and "96×64 image" in message and "inversion is of a 64×64 image" in message


def test_an_inversion_from_another_model_is_refused(client):
    """Inverted with the checkpoint, dragged with its LoRA-finetuned clone."""
    graph = drag_graph(drag_model=("lora", 0))
    graph["lora"] = lora_graph()["lora"]
    run = client.run(graph)
    assert run.status == "error"
    assert run.error["exception_message"].startswith("model: this is not the model the inversion was made with")
    assert run.error["node_id"] == "drag"


def test_drag_and_sampler_use_the_inversions_conditioning_by_default(client):
    run = client.run(drag_graph())
    assert run.status == "success", run.describe()
    assert run.outputs["digest"]["finite"] == [True]


def test_a_nan_in_the_latent_stops_the_graph_with_a_message_not_a_black_picture(client):
    """A NaN that reaches the inversion (a broken model, an fp16 overflow) is named where it is met."""
    graph = drag_graph()
    graph["poison"] = {"class_type": "DragKitTestPoisonLatent", "inputs": {"latent": ["noisy", 0]}}
    graph["invert"]["inputs"]["latent"] = ["poison", 0]
    run = client.run(graph)
    assert run.status == "error" and run.error["node_id"] == "invert"
    assert run.error["exception_message"].startswith("the inverted latent has non-finite values (NaN or Inf)")
    assert "digest" not in run.executed
