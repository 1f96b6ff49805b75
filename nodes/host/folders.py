"""ComfyUI's folders as DragKit uses them: its own model folders (`models/sam2`, `models/lpips`), its
data folder (`input/dragkit_datasets`), the input folder and the cache folders. The one place that talks to `folder_paths`."""

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


def register_input_folder(name: str) -> None:
    """`input/<name>` as a ComfyUI folder type (for data, not models), which extra_model_paths.yaml
    can extend under `name` like any other."""
    folder_paths.add_model_folder_path(name, os.path.join(folder_paths.get_input_directory(), name), is_default=True)


def subfolders(name: str) -> list[str]:
    """The names of the folders inside every folder of type `name`, sorted (what a Combo lists)."""
    found = set()
    for base in folder_paths.get_folder_paths(name):
        if os.path.isdir(base):
            found.update(entry.name for entry in os.scandir(base) if entry.is_dir() and not entry.name.startswith("."))
    return sorted(found)


def subfolder_path(name: str, sub: str) -> Path | None:
    """The folder `sub` inside a folder of type `name`: only a listed name (no path, no '..'), else None."""
    if sub not in subfolders(name):
        return None
    for base in folder_paths.get_folder_paths(name):
        if os.path.isdir(os.path.join(base, sub)):
            return Path(base) / sub
    return None


def model_files(name: str) -> list[str]:
    return folder_paths.get_filename_list(name)


def model_file_path(name: str, file: str) -> Path | None:
    """The file's path, or None when no folder of `name` has it."""
    path = folder_paths.get_full_path(name, file)
    return None if path is None else Path(path)


def model_folders(name: str) -> str:
    """The folders searched for `name`, for messages."""
    return ", ".join(folder_paths.get_folder_paths(name))


def cache_directory(kind: str) -> Path:
    """DragKit's on-disk cache folder for `kind`, in ComfyUI's user directory (survives restarts)."""
    path = Path(folder_paths.get_user_directory()) / "dragkit" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
