"""API-format prompts used by the host tests."""

import json


def editor_spec(width=64, height=64, pairs=(((10, 12), (30, 12)),), **extra) -> str:
    data = {"version": 1, "width": width, "height": height,
            "pairs": [{"handle": list(h), "target": list(t)} for h, t in pairs], "mask": None, "regions": []}
    data.update(extra)
    return json.dumps(data)


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
