"""A UI-format workflow as an API prompt, for headless runs and tests.

The frontend's graphToPrompt is the real converter (browser tests check it); this one covers what
DragKit's example workflows use: widget values assigned in the order /object_info lists a node's
inputs, links, the extra values the frontend keeps after seed and image-upload widgets."""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def workflow_to_prompt(workflow: dict, object_info: dict) -> dict:
    sources = {link[0]: (str(link[1]), link[2]) for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        spec = object_info[node["type"]]["input"]
        linked = {i["name"]: sources[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = iter(node.get("widgets_values", []))
        inputs = {}
        for name, (kind, *rest) in {**spec.get("required", {}), **spec.get("optional", {})}.items():
            options = rest[0] if rest else {}
            if name in linked:
                inputs[name] = list(linked[name])
            elif isinstance(kind, list) or kind in WIDGET_TYPES:
                inputs[name] = next(values)
                if options.get("control_after_generate") or options.get("image_upload") or name in ("seed", "noise_seed"):
                    next(values)  # the frontend's control / upload widget value
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def nodes_of_type(prompt: dict, class_type: str) -> list[dict]:
    return [node["inputs"] for node in prompt.values() if node["class_type"] == class_type]


def fit_to_tiny_checkpoint(prompt: dict, checkpoint: str) -> None:
    """Settings a tiny random-weight checkpoint can run quickly: it has one decoder stage
    (up_blocks[0]) and self-attention layers 0–3, and its pictures are noise anyway."""
    for inputs in nodes_of_type(prompt, "CheckpointLoaderSimple"):
        inputs["ckpt_name"] = checkpoint
    zero_out_text_encodings(prompt)
    for inputs in nodes_of_type(prompt, "DragKitLoRAFinetune"):
        inputs.update(preset="custom", steps=2, batch_size=1)
    for inputs in nodes_of_type(prompt, "DragKitDDIMInvert"):
        inputs.update(steps=10)
    for inputs in nodes_of_type(prompt, "DragKitGoodDrag"):
        inputs.update(feature_block=0, drag_timesteps=1, tracks_per_timestep=2, steps_per_track=1)
    for inputs in nodes_of_type(prompt, "DragKitDragNeXt"):
        inputs.update(feature_block=0, pbsi_timesteps=2, iterations=2)
    for inputs in nodes_of_type(prompt, "DragKitMutualAttentionSampler"):
        inputs.update(start_layer=2, end_layer=3)


def zero_out_text_encodings(prompt: dict) -> None:
    """Route every CLIPTextEncode through ConditioningZeroOut: the tiny checkpoint's CLIP is not
    initialised (one key), so its text embeddings are not finite and DragKit refuses them."""
    encoders = [node_id for node_id, node in prompt.items() if node["class_type"] == "CLIPTextEncode"]
    for node_id in encoders:
        zeroed = f"{node_id}_zero"
        for node in prompt.values():
            for name, value in node["inputs"].items():
                if value == [node_id, 0]:
                    node["inputs"][name] = [zeroed, 0]
        prompt[zeroed] = {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": [node_id, 0]}}
