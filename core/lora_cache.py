"""The LoRA node's opt-in disk cache (user/dragkit/lora_cache): trained LoRAs that survive a restart.

An entry is keyed by everything training depends on: the image latent, the prompt, the settings and
the model as it computes (every weight as loaded, patches included; `ComfyDenoiser.fingerprint`),
under a format version, so entries written by older DragKits (whose keys hashed only some weights
and could hold NaN LoRAs from fp16 models) are never read. Writes go to a temporary file that is
renamed into place, so a crash never leaves half a file under a real key; an entry that cannot be
read anyway is deleted and the LoRA retrained, with a warning naming the file. The folder is kept
under a size bound by removing the least recently used entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .lora import LoraResult, LoraSettings, LoraTrainingError, check_finite

KEY_VERSION = 2  # bump when what the key covers, or the file layout, changes
MAX_BYTES = 2 << 30  # the folder's size bound (an SD 1.5 rank-16 LoRA is about 13 MB)


def entry_path(folder: Path, fingerprint: str, x0: torch.Tensor, cond: torch.Tensor, settings: LoraSettings) -> Path:
    digest = hashlib.sha256(f"dragkit-lora-cache-v{KEY_VERSION}|{fingerprint}".encode())
    for tensor in (x0, cond):
        tensor = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    digest.update(json.dumps(settings.__dict__, sort_keys=True).encode())
    return folder / f"v{KEY_VERSION}-{digest.hexdigest()[:40]}.safetensors"


def load(path: Path) -> LoraResult | None:
    """The cached LoRA, or None when there is none or it cannot be used (then it is removed)."""
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            weights = {key: f.get_tensor(key) for key in f.keys()}
            losses = tuple(json.loads(f.metadata()["losses"]))
        check_finite(weights, f"in {path}")
    except (SafetensorError, OSError, KeyError, TypeError, ValueError, LoraTrainingError) as exc:
        logging.warning("DragKit LoRA: the cached LoRA %s cannot be used (%s); removing it and training again", path, exc)
        path.unlink(missing_ok=True)
        return None
    os.utime(path)  # most recently used
    logging.info("DragKit LoRA: reused %s", path)
    return LoraResult(weights=weights, losses=losses)


def save(path: Path, result: LoraResult, max_bytes: int = MAX_BYTES) -> None:
    """Write atomically (temporary file, then rename), then trim the folder to `max_bytes`."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        save_file(result.weights, str(partial), metadata={"losses": json.dumps(result.losses)})
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    trim(path.parent, max_bytes, keep=path)


def trim(folder: Path, max_bytes: int, keep: Path) -> None:
    """Remove least recently used entries until the folder holds at most `max_bytes` (never `keep`)."""
    entries = sorted(folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in entries)
    for entry in entries:
        if total <= max_bytes:
            break
        if entry != keep:
            total -= entry.stat().st_size
            entry.unlink(missing_ok=True)
            logging.info("DragKit LoRA: cache over %d MB, removed %s", max_bytes >> 20, entry.name)
