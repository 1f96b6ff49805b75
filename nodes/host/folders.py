"""ComfyUI's folders as DragKit uses them: its own model folders (`models/sam2`, `models/lpips`) and
the input folder, and the cache folders. The one place that talks to `folder_paths`."""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths

WEIGHT_EXTENSIONS = {".safetensors", ".pt", ".pth"}


def register_model_folder(name: str) -> None:
    """`models/<name>` as a ComfyUI model folder; folders that extra_model_paths.yaml gives under
    `name` stay listed after it."""
    folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name), is_default=True)
    folder_paths.folder_names_and_paths[name][1].update(WEIGHT_EXTENSIONS)


def model_files(name: str) -> list[str]:
    return folder_paths.get_filename_list(name)


def model_file_path(name: str, file: str) -> Path | None:
    """The file's path, or None when no folder of `name` has it."""
    path = folder_paths.get_full_path(name, file)
    return None if path is None else Path(path)


def model_folders(name: str) -> str:
    """The folders searched for `name`, for messages."""
    return ", ".join(folder_paths.get_folder_paths(name))


def input_directory() -> Path:
    return Path(folder_paths.get_input_directory())


def cache_directory(kind: str) -> Path:
    """DragKit's on-disk cache folder for `kind`, in ComfyUI's user directory (survives restarts)."""
    path = Path(folder_paths.get_user_directory()) / "dragkit" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
