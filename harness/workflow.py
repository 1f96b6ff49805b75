"""A UI-format workflow as an API prompt, for headless runs and tests.

The frontend's graphToPrompt is the real converter (browser tests check it); this one covers what
DragKit's example workflows use: widget values assigned in the order /object_info lists a node's
inputs, links, the extra values the frontend keeps after seed and image-upload widgets."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from dragkit.core.drag import DragSpec

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


# Budgets the structure checkpoint (SD 1.5's block layout, random weights, models.STRUCTURE_UNET)
# runs in a few minutes on 2 CPU cores, per node type; every other input keeps the workflow's value.
STRUCTURE_BUDGETS = {
    "DragKitLoRAFinetune": dict(preset="custom", steps=8, batch_size=1),
    "DragKitDDIMInvert": dict(steps=20),
    "DragKitDragDiffusion": dict(max_iterations=20),
    "DragKitGoodDrag": dict(drag_timesteps=2, tracks_per_timestep=4, steps_per_track=2),
    "DragKitEasyDrag": dict(max_iterations=20),
    "DragKitDragNeXt": dict(pbsi_timesteps=2, iterations=5),
    "DragKitAdaptiveDrag": dict(initial_budget=20, max_budget=30, points_per_side=8),
    "DragKitAutoMask": dict(points_per_side=8),
    "KSampler": dict(steps=4),
}


RANDOM_SAM2 = "dragkit_random_sam2.1_hiera_tiny.safetensors"


def fit_to_structure_checkpoint(prompt: dict, checkpoint: str, base: Path, side: int = 256) -> None:
    """The same node graph, sized for a CPU: the structure checkpoint, each edited picture scaled to
    at most `side` px (a copy in <base>/input, the Editor's drag scaled with it), short budgets, and
    a random-weight SAM 2 tiny for SAM 2 loaders (written to <base>/models/sam2 when missing)."""
    apply_structure_budgets(prompt, checkpoint)
    for editor in nodes_of_type(prompt, "DragKitEditor"):
        loader = prompt[editor["image"][0]]["inputs"]
        picture = Image.open(base / "input" / loader["image"]).convert("RGB")
        size = fitted_size(*picture.size, side)
        small = f"{Path(loader['image']).stem}_{size[0]}x{size[1]}.png"
        picture.resize(size, Image.LANCZOS).save(base / "input" / small)
        loader["image"] = small
        editor["drag_data"] = DragSpec.from_json(editor["drag_data"]).resized(*size).to_json()
    if nodes_of_type(prompt, "DragKitSAM2Loader"):
        sam2 = base / "models" / "sam2" / RANDOM_SAM2
        if not sam2.exists():
            from harness.checkpoints import write_tiny_sam2

            write_tiny_sam2(sam2)


def apply_structure_budgets(prompt: dict, checkpoint: str) -> None:
    """The structure checkpoint, STRUCTURE_BUDGETS and the random SAM 2 file's name, in place."""
    for inputs in nodes_of_type(prompt, "CheckpointLoaderSimple"):
        inputs["ckpt_name"] = checkpoint
    for node in prompt.values():
        node["inputs"].update(STRUCTURE_BUDGETS.get(node["class_type"], {}))
    for loader in nodes_of_type(prompt, "DragKitSAM2Loader"):
        loader["sam2_name"] = RANDOM_SAM2


def fitted_size(width: int, height: int, side: int) -> tuple[int, int]:
    """`width` × `height` scaled so the longer side is about `side`, each a multiple of 8 (≥ 8)."""
    scale = side / max(width, height)
    return tuple(max(8, round(v * scale / 8) * 8) for v in (width, height))
