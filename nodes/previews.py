"""Pictures: previews for progress bars and nodes, and IMAGE ↔ picture conversions (pure PIL and torch)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw


def image_tensor(picture: Image.Image) -> torch.Tensor:
    """A PIL picture as a ComfyUI IMAGE [1, H, W, 3]."""
    return torch.from_numpy(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0)[None]


def loss_curve(losses: list[float], total_steps: int, size: tuple[int, int] = (320, 160)) -> Image.Image:
    """The loss so far as a line chart over all steps, with the latest value written on it."""
    width, height = size
    image = Image.new("RGB", size, (24, 24, 24))
    draw = ImageDraw.Draw(image)
    if losses:
        low, high = min(losses), max(losses)
        span = (high - low) or 1.0
        points = [
            (8 + (width - 16) * i / max(total_steps - 1, 1), height - 8 - (height - 32) * (loss - low) / span)
            for i, loss in enumerate(losses)
        ]
        if len(points) > 1:
            draw.line(points, fill=(90, 200, 250), width=2)
        draw.text((8, 6), f"step {len(losses)}/{total_steps}  loss {losses[-1]:.4f}", fill=(230, 230, 230))
    return image


def drag_points(background: Image.Image, handles, targets, originals) -> Image.Image:
    """The image (or its latent preview, at image size) with the original handles (grey), the current
    handles (red) and the targets (blue), each pair joined by a line; points are in image pixels."""
    image = background.copy()
    draw = ImageDraw.Draw(image)
    radius = max(2, min(image.size) // 100)
    for start, now, target in zip(originals, handles, targets):
        draw.line([tuple(start), tuple(now), tuple(target)], fill=(240, 240, 240), width=max(1, radius // 2))
        for point, colour in ((start, (150, 150, 150)), (now, (230, 40, 40)), (target, (40, 90, 240))):
            x, y = point
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return image


def masked_picture(picture: Image.Image, mask: np.ndarray) -> Image.Image:
    """The picture as it is inside the mask and darkened to a third outside it."""
    pixels = np.asarray(picture.convert("RGB"), dtype=np.float32)
    pixels = np.where(mask[..., None], pixels, pixels / 3)
    return Image.fromarray(pixels.round().astype(np.uint8))


def region_overlay(picture: Image.Image, regions) -> Image.Image:
    """The picture with a bool grid mask (DragNeXt's current target regions, any size) tinted orange."""
    mask = Image.fromarray(np.asarray(regions, dtype=np.uint8) * 255).resize(picture.size, Image.NEAREST)
    tint = Image.new("RGB", picture.size, (255, 152, 0))
    return Image.composite(Image.blend(picture.convert("RGB"), tint, 0.45), picture.convert("RGB"), mask)


def picture_of(image: torch.Tensor) -> np.ndarray:
    """IMAGE [1, H, W, C] → H × W × 3 uint8."""
    return (image[0, :, :, :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
