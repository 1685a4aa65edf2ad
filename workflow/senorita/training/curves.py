"""A loss curve as a PNG (PIL only: no plotting library in the environment)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from senorita.atomic import atomic_path


def loss_curve(
    losses: list[tuple[int, float, float]], title: str, out: Path, size=(640, 360)
) -> Path:
    """Loss against step, with its range on the axis, written atomically."""
    width, height = size
    left, right, top, bottom = 60, 20, 30, 40
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 8), title, fill="black")
    draw.rectangle([left, top, width - right, height - bottom], outline="gray")
    if losses:
        steps = [s for s, _, _ in losses]
        values = [v for _, v, _ in losses]
        lo, hi = min(values), max(values)
        span = (hi - lo) or 1.0
        first, last = steps[0], steps[-1]
        run = (last - first) or 1

        def xy(s: int, v: float) -> tuple[float, float]:
            x = left + (s - first) / run * (width - left - right)
            y = height - bottom - (v - lo) / span * (height - top - bottom)
            return x, y

        points = [xy(s, v) for s, v in zip(steps, values, strict=True)]
        if len(points) > 1:
            draw.line(points, fill="steelblue", width=2)
        else:
            x, y = points[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill="steelblue")
        draw.text((4, top), f"{hi:.4g}", fill="black")
        draw.text((4, height - bottom - 10), f"{lo:.4g}", fill="black")
        draw.text((left, height - bottom + 6), f"step {first}", fill="black")
        draw.text((width - right - 70, height - bottom + 6), f"step {last}", fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        image.save(tmp, format="PNG")
    return out
