"""Small preview pictures for progress bars (pure PIL)."""

from __future__ import annotations

from PIL import Image, ImageDraw


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
