"""The ComfyUI names DragKit relies on, in one list: a ComfyUI that lacks one breaks one clear test
(tests/host/test_comfy_symbols.py) naming it, instead of many tests failing somewhere inside a node.
Names DragKit looks up with a fallback (Dynamic VRAM's delegate, the training flag) are not here."""

from __future__ import annotations

import importlib

REQUIRED = {
    "comfy_api.v0_0_2": ("ComfyExtension", "io.ComfyNode", "io.Schema", "io.NodeOutput", "io.Custom", "io.Model",
                         "io.Latent", "io.Conditioning", "io.Image", "io.Mask", "io.Vae", "io.Combo", "io.Int",
                         "io.Float", "io.Boolean", "io.String", "ui.PreviewImage", "ui.PreviewText"),
    "comfy.model_management": ("load_models_gpu", "get_torch_device", "unet_offload_device", "intermediate_device",
                               "should_use_bf16", "throw_exception_if_processing_interrupted"),
    "comfy.model_patcher": ("ModelPatcher.clone", "ModelPatcher.clone_has_same_weights",
                            "ModelPatcher.get_model_object"),
    "comfy.model_base": ("BaseModel.apply_model", "BaseModel.process_latent_in", "BaseModel.process_latent_out",
                         "BaseModel.get_dtype"),
    "comfy.ldm.modules.attention": ("SpatialTransformer", "attention_pytorch", "optimized_attention"),
    "comfy.supported_models": ("SD15", "SD20"),
    "comfy.sd": ("load_lora_for_models",),
    "comfy.utils": ("ProgressBar.update_absolute",),
    "latent_preview": ("Latent2RGBPreviewer.decode_latent_to_preview",),
    "folder_paths": ("add_model_folder_path", "folder_names_and_paths", "get_filename_list", "get_full_path",
                     "get_folder_paths", "get_input_directory", "get_user_directory", "models_dir"),
}


def missing_symbols(required: dict[str, tuple[str, ...]] = REQUIRED) -> list[str]:
    """Every required `module.name` the running ComfyUI does not have (a module that will not import
    counts each of its names)."""
    missing = []
    for module_name, names in required.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing += [f"{module_name}.{name}" for name in names]
            continue
        for name in names:
            value = module
            for part in name.split("."):
                value = getattr(value, part, None)
                if value is None:
                    missing.append(f"{module_name}.{name}")
                    break
    return missing
