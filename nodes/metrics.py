"""DragKit Benchmark Sample (a DragBench / Drag100 sample with its drag) and DragKit Metrics (MD, IF
and DAI of one edit), so that an evaluation can be a graph. The LPIPS weights are files the user
puts into `models/lpips/` (DragKit downloads nothing)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..core import metrics
from ..core.bench import DATASETS, RUNNER_WIDTH, BenchmarkDataError, load_sample, sample_folders
from ..core.memory import peak_memory_gib, reset_peak_memory
from ..core.weights import WeightsFileError, check_weights_file, read_state_dict
from . import host
from .checks import CheckedNode, InputError, checked, require_finite, single_item
from .host.folders import (model_file_path, model_files, model_folders, register_input_folder, register_model_folder,
                           subfolder_path, subfolders)
from .values import DragType, EditType, handle_report

LPIPS_FOLDER = "lpips"
LPIPS_FILES = ("alexnet-owt-7be5be79.pth (torchvision's AlexNet, ImageNet weights)",
               "alex.pth (LPIPS v0.1's linear layers, from the lpips package's weights/v0.1/)")
LPIPS_REMEDY = f"Expected {' and '.join(LPIPS_FILES)} (or .safetensors conversions of them)"
METRICS_KEY = "dragkit_metrics"  # the executed message's key (and /history's) the evaluation CLI reads


DATASET_FOLDER = "dragkit_datasets"  # input/dragkit_datasets/<Drag100 | DragBench | …>, extensible in extra_model_paths.yaml
NO_DATASET = "(no dataset in input/dragkit_datasets)"


def register_folder() -> None:
    register_model_folder(LPIPS_FOLDER)
    register_input_folder(DATASET_FOLDER)


def dataset_folders() -> list[str]:
    return subfolders(DATASET_FOLDER)


class DragKitBenchmarkSample(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitBenchmarkSample",
            display_name="DragKit Benchmark Sample",
            category="DragKit/evaluation",
            description="One sample of DragBench or Drag100: the picture (width 512 as the papers' runners, or as chosen), its drag and prompt.",
            inputs=[
                io.Combo.Input("dataset", options=list(DATASETS), default="drag100"),
                io.Combo.Input("folder", options=dataset_folders() or [NO_DATASET],
                               tooltip="The unpacked dataset, a folder in ComfyUI/input/dragkit_datasets/ (or in a "
                                       "dragkit_datasets folder of extra_model_paths.yaml)."),
                io.Int.Input("index", default=0, min=0, max=10_000, tooltip="The sample, in sorted folder order."),
                io.Int.Input("width", default=RUNNER_WIDTH, min=64, max=2048, step=8,
                             tooltip="The picture's width (height in proportion); 512 as the papers' runners."),
            ],
            outputs=[
                io.Image.Output(display_name="image"),
                DragType.Output(display_name="drag"),
                io.Mask.Output(display_name="mask", tooltip="The editable region."),
                io.String.Output(display_name="prompt"),
                io.String.Output(display_name="name"),
            ],
        )

    @classmethod
    def validate_inputs(cls, dataset, folder) -> bool | str:
        return cls.refusal(dataset=dataset, folder=folder)

    @classmethod
    def check(cls, values: dict) -> None:
        folder = values.get("folder")  # before the choices: this message says where datasets go
        if folder is not None and subfolder_path(DATASET_FOLDER, folder) is None:
            raise InputError(_no_dataset(folder))
        super().check(values)

    @classmethod
    @checked
    def execute(cls, dataset: str, folder: str, index: int, width: int) -> io.NodeOutput:
        root = subfolder_path(DATASET_FOLDER, folder)
        try:
            folders = sample_folders(dataset, root)
            if index >= len(folders):
                raise InputError(f"index: {index} is past the last sample ({len(folders) - 1}) of {folder}")
            sample = load_sample(dataset, folders[index], width)
        except BenchmarkDataError as error:  # named inside the dataset, never by the server's paths
            raise InputError(f"folder: {str(error).replace(str(root), folder)}") from None
        image = torch.from_numpy(sample.image.astype(np.float32) / 255)[None]
        mask = torch.from_numpy(sample.drag.editable_mask().astype(np.float32))[None]
        return io.NodeOutput(image, sample.drag, mask, sample.prompt, sample.name,
                             ui=ui.PreviewText(f"{sample.name}: {sample.drag.pair_count} pairs, prompt {sample.prompt!r}"))


def _no_dataset(folder: str) -> str:
    listed = dataset_folders()
    return (f"folder: {folder!r} is not a dataset folder in {DATASET_FOLDER} "
            f"({'it has ' + ', '.join(listed) if listed else 'there is none yet'}). Unpack the dataset (e.g. Drag100/) "
            f"into ComfyUI/input/{DATASET_FOLDER}/ or a {DATASET_FOLDER} folder of extra_model_paths.yaml, then refresh (R)")


class DragKitMetrics(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitMetrics",
            display_name="DragKit Metrics",
            category="DragKit/evaluation",
            description="Mean Distance (DIFT), Image Fidelity (1 − LPIPS, whole and background) and DAI of one drag edit.",
            is_output_node=True,
            inputs=[
                io.Model.Input("model", tooltip="The model DIFT features are taken from (the one the edit was made with)."),
                io.Vae.Input("vae"),
                io.Conditioning.Input("conditioning", tooltip="The sample's prompt, for DIFT."),
                io.Image.Input("source", tooltip="The picture the drag was placed on."),
                io.Image.Input("edited", tooltip="The edit (resized to the source's size first)."),
                DragType.Input("drag"),
                io.Boolean.Input("image_fidelity", default=True,
                                 tooltip="1 − LPIPS; needs the AlexNet and LPIPS weights in models/lpips/."),
                io.Combo.Input("dai_normalisation", options=["paper", "code"], default="paper",
                               tooltip="paper: Eq. 10; code: also divided by the pair count, as GoodDrag's script."),
                io.Int.Input("dift_block", default=metrics.DIFT_BLOCK, min=0, max=3,
                             tooltip="The decoder stage DIFT features come from (DragBench's protocol: 1)."),
                EditType.Input("edit", optional=True, tooltip="The drag node's edit: its final handles go into the report."),
            ],
            outputs=[
                io.Float.Output(display_name="mean_distance"),
                io.Float.Output(display_name="image_fidelity", tooltip="-1 when not computed."),
                io.String.Output(display_name="report", tooltip="Every figure, as JSON."),
            ],
        )

    @classmethod
    def validate_inputs(cls, dai_normalisation, dift_block, image_fidelity) -> bool | str:
        return cls.refusal(dai_normalisation=dai_normalisation, dift_block=dift_block, image_fidelity=image_fidelity)

    @classmethod
    def check_values(cls, values: dict) -> None:
        if values.get("image_fidelity"):  # at queue time: no evaluation runs for minutes to fail here
            if len(model_files(LPIPS_FOLDER)) < 2:
                raise _missing_lpips([None, None])
            for name in model_files(LPIPS_FOLDER):
                try:
                    check_weights_file(model_file_path(LPIPS_FOLDER, name), LPIPS_REMEDY)
                except WeightsFileError as error:
                    raise InputError(f"image_fidelity: {error}") from None

    @classmethod
    @checked
    def execute(cls, model, vae, conditioning, source, edited, drag, image_fidelity: bool, dai_normalisation: str,
                dift_block: int, edit=None) -> io.NodeOutput:
        peak = peak_memory_gib()  # the edit's: since the previous Metrics node ended (or start-up)
        source, edited = single_item(source, "source")[0, ..., :3], single_item(edited, "edited")[0, ..., :3]
        height, width = source.shape[:2]
        if (drag.width, drag.height) != (width, height):
            raise InputError(f"drag: placed on a {drag.width}×{drag.height} picture but source is {width}×{height}")
        for what, picture in (("source", source), ("edited", edited)):
            require_finite(picture, what)
        edited = metrics.to_source_size(edited.float(), source.float())
        lpips = _lpips() if image_fidelity else None
        report = {"pairs": drag.pair_count, "peak_memory_gib": round(peak, 3)}
        if edit is not None:
            report["handles"] = handle_report(drag, edit.result.handles)
        report.update(_mean_distance(model, vae, conditioning, source, edited, drag, dift_block))
        if lpips is not None:
            editable = torch.from_numpy(drag.editable_mask())
            report["image_fidelity"] = metrics.image_fidelity(lpips, source, edited)
            report["image_fidelity_background"] = metrics.image_fidelity(lpips, source, edited, editable)
        for gamma in metrics.DAI_GAMMAS:
            report[f"dai_{gamma}"] = metrics.drag_accuracy_index(source, edited, drag.handles, drag.targets, gamma, dai_normalisation)
        reset_peak_memory()
        text = json.dumps(report)
        return io.NodeOutput(report["mean_distance"], report.get("image_fidelity", -1.0), text,
                             ui={METRICS_KEY: [report], "text": [text]})


def _mean_distance(model, vae, conditioning, source: torch.Tensor, edited: torch.Tensor, drag, block: int) -> dict:
    denoiser = host.loaded_denoiser(model)
    if block >= denoiser.up_block_count:
        raise InputError(f"dift_block: up_blocks[{block}] does not exist; this UNet has {denoiser.up_block_count} decoder stages")
    cond = host.text_context(conditioning).to(denoiser.device)
    size = source.shape[:2]
    features = []
    for picture in (source, edited):
        latent = denoiser.to_model_latent(host.encode_image(vae, picture[None]).to(denoiser.device))
        features.append(metrics.dift_features(denoiser, latent, cond, block=block))
        host.check_interrupted()
    matched = metrics.matched_points(*features, drag.handles, size)
    distances = metrics.point_distances(matched, drag.targets, size)
    return {"mean_distance": float(np.mean(distances)), "distances": distances, "matched": matched}


def _lpips() -> metrics.Lpips:
    paths = tuple(model_file_path(LPIPS_FOLDER, name) for name in model_files(LPIPS_FOLDER))
    return _lpips_from(tuple((path, path.stat().st_mtime_ns) for path in paths))


@functools.lru_cache(maxsize=1)
def _lpips_from(files: tuple[tuple[Path, int], ...]) -> metrics.Lpips:
    """LPIPS from the folder's files, read once per set of files (AlexNet's is 233 MB; an evaluation
    runs this node once per edit). The modification times in `files` make a replaced file count."""
    states = []
    for path, _ in files:
        try:
            states.append(read_state_dict(path, LPIPS_REMEDY))
        except WeightsFileError as error:
            raise InputError(f"image_fidelity: {error}") from None
    alexnet = next((s for s in states if "features.0.weight" in s), None)
    linear = next((s for s in states if "lin0.model.1.weight" in s), None)
    if alexnet is None or linear is None:
        raise _missing_lpips([alexnet, linear])
    try:
        return metrics.alexnet_lpips(alexnet, linear)
    except ValueError as error:  # files of the right kind with other shapes
        raise InputError(f"image_fidelity: {error}; expected {' and '.join(LPIPS_FILES)} in "
                         f"{model_folders(LPIPS_FOLDER)}") from None


def _missing_lpips(found: list) -> InputError:
    missing = [f for f, state in zip(LPIPS_FILES, found) if state is None]
    return InputError(f"image_fidelity: no {' and no '.join(missing)} in {model_folders(LPIPS_FOLDER)}. Put the files "
                      "there (DragKit downloads nothing), or turn image_fidelity off")
