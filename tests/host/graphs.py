"""API-format prompts used by the host tests."""

import json


def editor_spec(width=64, height=64, pairs=(((10, 12), (30, 12)),), **extra) -> str:
    data = {"version": 1, "width": width, "height": height,
            "pairs": [{"handle": list(h), "target": list(t)} for h, t in pairs], "mask": None, "regions": []}
    data.update(extra)
    return json.dumps(data)


def box_rle(width: int, height: int, left: int, top: int, right: int, bottom: int) -> dict:
    """The schema's run-length mask of the box [left, right) × [top, bottom)."""
    runs, zeros = [], 0
    for row in range(height):
        if top <= row < bottom:
            runs += [zeros + left, right - left]
            zeros = width - right
        else:
            zeros += width
    return {"rle": [*runs, zeros] if runs else [zeros]}


def region(pair: int, kind: str, box: tuple[int, int, int, int], width=64, height=64, center=None) -> dict:
    """A DragNeXt region of the schema: a box-shaped mask, its type and (rotate) its centre."""
    out = {"pair": pair, "type": kind, "mask": box_rle(width, height, *box)}
    if center is not None:
        out["center"] = list(center)
    return out


def drag_measures(output: dict) -> dict:
    """A drag node's figures from its output message (the `dragkit_measures` key)."""
    (measures,) = output["dragkit_measures"]
    return measures


def sampling_figures(output: dict) -> dict:
    """A sampler node's figures from its output message (the `dragkit_sampling` key)."""
    (figures,) = output["dragkit_sampling"]
    return figures


def region_errors(output: dict) -> dict:
    """{pair: {"before": x, "after": y}}: DragNeXt's region errors from its drag node's output."""
    return {e["pair"]: {"before": e["before"], "after": e["after"]} for e in drag_measures(output)["region_errors"]}


def base_graph(size=64) -> dict:
    """Checkpoint → zeroed conditioning (the tiny CLIP is random) and an empty latent."""
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd15.safetensors"}},
        "text": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "cond": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["text", 0]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
    }


def ksampler_graph(seed=7) -> dict:
    graph = base_graph()
    graph.update({
        "sample": {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "seed": seed, "steps": 3, "cfg": 2.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["cond", 0], "negative": ["cond", 0], "latent_image": ["latent", 0], "denoise": 1.0}},
        "digest": {"class_type": "DragKitTestDigest", "inputs": {"latent": ["sample", 0]}},
    })
    return graph


def noisy_latent(graph: dict) -> None:
    """A non-zero latent input (the empty latent is all zeros), from a short KSampler run."""
    graph["noisy"] = {"class_type": "KSampler", "inputs": {
        "model": ["ckpt", 0], "seed": 3, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
        "positive": ["cond", 0], "negative": ["cond", 0], "latent_image": ["latent", 0], "denoise": 1.0}}


def editor_graph(spec: str, size=64) -> dict:
    return {
        "image": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": 0}},
        "editor": {"class_type": "DragKitEditor", "inputs": {"image": ["image", 0], "drag_data": spec}},
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["maskimg", 0]}},
        "maskimg": {"class_type": "MaskToImage", "inputs": {"mask": ["editor", 1]}},
    }


def drag_pipeline(method: str, spec: str, image_name: str, lora_steps=2, drag_settings=None) -> dict:
    """LoadImage → Editor → LoRA → Invert → Drag (method) → Mutual-Attention Sampler → VAEDecode → Save,
    sized for the tiny checkpoint (one decoder stage, self-attention layers 0–3)."""
    graph = base_graph()
    del graph["latent"]
    drag_inputs = {"model": ["lora", 0], "conditioning": ["cond", 0], "inversion": ["invert", 0], "drag": ["editor", 0],
                   "learning_rate": 0.01, "mask_weight": 0.1, "feature_block": 0}
    if method == "DragKitGoodDrag":
        drag_inputs.update(mode="code (UI)", drag_timesteps=2, tracks_per_timestep=2, steps_per_track=2)
    else:
        drag_inputs.update(loss_scale="code", max_iterations=6, patch_radius=1, track_radius=3)
    drag_inputs.update(drag_settings or {})
    graph.update({
        "load": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "editor": {"class_type": "DragKitEditor", "inputs": {"image": ["load", 0], "drag_data": spec}},
        "encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["load", 0], "vae": ["ckpt", 2]}},
        "lora": {"class_type": "DragKitLoRAFinetune", "inputs": {
            "model": ["ckpt", 0], "conditioning": ["cond", 0], "preset": "custom", "steps": lora_steps, "rank": 4,
            "learning_rate": 5e-4, "batch_size": 2, "seed": 0, "disk_cache": False, "latent": ["encode", 0]}},
        "invert": {"class_type": "DragKitDDIMInvert", "inputs": {
            "model": ["lora", 0], "latent": ["encode", 0], "conditioning": ["cond", 0], "steps": 10,
            "preset": "custom", "strength": 0.7, "guidance": 1.0}},
        "drag": {"class_type": method, "inputs": drag_inputs},
        "sampler": {"class_type": "DragKitMutualAttentionSampler", "inputs": {
            "model": ["lora", 0], "conditioning": ["cond", 0], "edit": ["drag", 0],
            "start_layer": 2, "end_layer": 3, "start_step": 0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "dragkit_e2e"}},
    })
    return graph
