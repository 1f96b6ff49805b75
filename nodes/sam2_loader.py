"""DragKit SAM2 Loader: a SAM 2 model from ComfyUI's `models/sam2/` folder, under ComfyUI's memory
management (a ModelPatcher made by the host, so ComfyUI can offload and evict it like any model)."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..core import sam2_model
from ..core.weights import WeightsFileError, check_weights_file
from . import host
from .checks import CheckedNode, InputError, checked
from .host.folders import model_file_path, model_files, model_folders, register_model_folder
from .values import Sam2Model, Sam2ModelType

SAM2_FOLDER = "sam2"
NO_FILE = "(no SAM 2 file found)"
EXPECTED_FILES = ("sam2.1_hiera_base_plus.pt", "sam2.1_hiera_large.pt", "sam2_hiera_base_plus.pt (AdaptiveDrag's)",
                  "or a .safetensors conversion such as sam2.1_hiera_base_plus.safetensors")
PRECISIONS = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

def register_folder() -> None:
    register_model_folder(SAM2_FOLDER)  # the folder other SAM 2 packs use


def sam2_files() -> list[str]:
    return model_files(SAM2_FOLDER)


def missing_file_message() -> str:
    folders = model_folders(SAM2_FOLDER)
    return (f"sam2_name: no SAM 2 weights file in {folders}. Put one there (DragKit downloads nothing): "
            f"{', '.join(EXPECTED_FILES)}; then refresh the page (R)")


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    chosen = PRECISIONS[precision]
    if chosen is not None:
        return chosen
    # auto: bf16 autocast where the device has fast bf16 (as Meta runs SAM 2), else float32
    return torch.bfloat16 if host.has_fast_bf16(device) else torch.float32


class DragKitSAM2Loader(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitSAM2Loader",
            display_name="DragKit SAM2 Loader",
            category="DragKit/loaders",
            description=(
                "Loads SAM 2 (tiny, small, base+ or large; SAM 2.0 or 2.1, told apart from the weights) from "
                "models/sam2 for DragKit Auto Mask. Meta's .pt files are read without running any code in them; "
                "converted .safetensors files work too. Needs the sam2 package (see the README)."
            ),
            inputs=[
                io.Combo.Input("sam2_name", options=sam2_files() or [NO_FILE],
                               tooltip="A file in models/sam2 (AdaptiveDrag used SAM 2.0 Hiera base+)."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="auto",
                               tooltip="Computation precision; the weights stay float32. auto: bf16 on GPUs that "
                                       "support it, else fp32."),
            ],
            outputs=[Sam2ModelType.Output(display_name="sam2_model")],
        )

    @classmethod
    def validate_inputs(cls, sam2_name, precision) -> bool | str:
        if not sam2_model.sam2_installed():
            return f"sam2_name: the sam2 package is not installed; {sam2_model.INSTALL_HINT}"
        if sam2_name == NO_FILE or (sam2_name is not None and sam2_name not in sam2_files()):
            return missing_file_message() if not sam2_files() else f"sam2_name: {sam2_name!r} is not in models/sam2"
        if sam2_name is not None:
            try:  # a few bytes, so a damaged file is refused before the prompt is queued
                check_weights_file(model_file_path(SAM2_FOLDER, sam2_name), sam2_model.WEIGHTS_REMEDY)
            except WeightsFileError as exc:
                return f"sam2_name: {exc}"
        return cls.refusal(precision=precision)

    @classmethod
    @checked
    def execute(cls, sam2_name: str, precision: str) -> io.NodeOutput:
        path = model_file_path(SAM2_FOLDER, sam2_name) if sam2_name != NO_FILE else None
        if path is None:
            raise InputError(missing_file_message())
        try:
            model, variant = sam2_model.build_model(sam2_model.read_weights(path))
        except sam2_model.Sam2Error as exc:
            raise InputError(f"sam2_name: {exc}") from None
        patcher = host.sam2_patcher(model)
        return io.NodeOutput(Sam2Model(patcher, variant, compute_dtype(precision, patcher.load_device)))
