"""Pictures of a task's pairs for the report: a contact sheet and an animated preview.

The contact sheet shows sample pairs as rows: source frames above target frames (sampled evenly
through the clip) with the instruction underneath (and the judge's scores and reason, when it
judged the pair). The preview is a GIF of one pair, source and target side by side, at the clip's
frame rate. With the judge on, a second sheet shows the kept pairs it scored lowest; with the
super-resolution stage on, a third the expert's working-size targets beside the lifted ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from senorita.atomic import atomic_path
from senorita.video import read_frames

THUMB_WIDTH = 192
PAD = 6
TEXT_HEIGHT = 22
BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)

Reader = Callable[[Path], np.ndarray]  # a video's decoded frames (read_frames, or a cache of it)


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=14)
    except (TypeError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _thumbs(frames: np.ndarray, indices: list[int], size: tuple[int, int]) -> list[Image.Image]:
    return [Image.fromarray(frames[i]).resize(size, Image.Resampling.BILINEAR) for i in indices]


def save_stacked(blocks: list[Image.Image], out: Path, empty: str) -> None:
    """The blocks one under the other as a PNG (a line saying ``empty`` when there are none)."""
    if not blocks:
        blocks = [Image.new("RGB", (400, 40), BACKGROUND)]
        ImageDraw.Draw(blocks[0]).text((PAD, PAD), empty, fill=INK, font=_font())
    sheet = Image.new(
        "RGB", (max(b.width for b in blocks), sum(b.height for b in blocks)), BACKGROUND
    )
    y = 0
    for block in blocks:
        sheet.paste(block, (0, y))
        y += block.height
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)


def sample_pairs(manifest: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` pairs by id: a stable sample that reruns reproduce."""
    return manifest.sort_values("pair_id").head(n)


JUDGE_COLUMNS = ("judge_instruction", "judge_preservation", "judge_quality")
MAX_CAPTION = 110  # characters: what fits under four thumbnails


def lowest_judged(manifest: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` kept pairs the judge scored lowest (sum of its scores, then pair id)."""
    if not set(JUDGE_COLUMNS) <= set(manifest.columns):
        return manifest.iloc[0:0]
    judged = manifest[manifest["kept"] & manifest[list(JUDGE_COLUMNS)].notna().all(axis=1)]
    total = judged[list(JUDGE_COLUMNS)].astype(int).sum(axis=1)
    return judged.assign(_total=total).sort_values(["_total", "pair_id"]).head(n)


def _caption(row: dict) -> str:
    text = f"{row['instruction']}   [{row['pair_id']}]"
    scores = [row.get(c) for c in JUDGE_COLUMNS]
    if all(isinstance(v, int | np.integer) for v in scores):
        text += "   judge " + "/".join(str(v) for v in scores)
        if isinstance(row.get("judge_reason"), str) and row["judge_reason"]:
            text += f": {row['judge_reason']}"
    return text if len(text) <= MAX_CAPTION else text[: MAX_CAPTION - 1] + "…"


def contact_sheet(
    manifest: pd.DataFrame,
    dataset: Path,
    out: Path,
    pairs: int = 3,
    frames: int = 4,
    read: Reader = read_frames,
    chosen: pd.DataFrame | None = None,
    empty: str = "no pairs",
) -> int:
    """Write the task's contact sheet PNG; return the number of pairs shown.

    The pairs are ``chosen`` in their order, else the first ``pairs`` by id (``sample_pairs``).
    """
    chosen = sample_pairs(manifest, pairs) if chosen is None else chosen
    rows = chosen.to_dict("records")
    font = _font()
    blocks = []
    for row in rows:
        src = read(dataset / row["source_path"])
        tgt = read(dataset / row["target_path"])
        size = (THUMB_WIDTH, round(THUMB_WIDTH * tgt.shape[1] / tgt.shape[2]))
        idx = np.linspace(0, len(tgt) - 1, frames).round().astype(int).tolist()
        block = Image.new(
            "RGB", (frames * (size[0] + PAD) + PAD, 2 * size[1] + 3 * PAD + TEXT_HEIGHT), BACKGROUND
        )
        for k, (a, b) in enumerate(
            zip(_thumbs(src, idx, size), _thumbs(tgt, idx, size), strict=True)
        ):
            x = PAD + k * (size[0] + PAD)
            block.paste(a, (x, PAD))
            block.paste(b, (x, 2 * PAD + size[1]))
        draw = ImageDraw.Draw(block)
        draw.text((PAD, 3 * PAD + 2 * size[1] - 2), _caption(row), fill=INK, font=font)
        blocks.append(block)
    save_stacked(blocks, out, empty)
    return len(rows)


def animated_preview(
    manifest: pd.DataFrame, dataset: Path, out: Path, read: Reader = read_frames
) -> None:
    """Write a GIF of the first sample pair, source | target, looping."""
    rows = sample_pairs(manifest, 1).to_dict("records")
    if rows:
        row = rows[0]
        src = read(dataset / row["source_path"])
        tgt = read(dataset / row["target_path"])
        size = (THUMB_WIDTH, round(THUMB_WIDTH * tgt.shape[1] / tgt.shape[2]))
        frames = []
        for a, b in zip(src, tgt, strict=True):
            canvas = Image.new("RGB", (2 * size[0] + 3 * PAD, size[1] + 2 * PAD), BACKGROUND)
            canvas.paste(Image.fromarray(a).resize(size), (PAD, PAD))
            canvas.paste(Image.fromarray(b).resize(size), (2 * PAD + size[0], PAD))
            frames.append(canvas)
        duration = round(1000 / float(row["fps"]))
    else:
        frames, duration = [Image.new("RGB", (2 * THUMB_WIDTH, 40), BACKGROUND)], 100
    # One palette for every frame, from the first: no colour flicker between frames, and mapping
    # to a given palette is several times faster than quantizing each frame anew.
    palette = frames[0].quantize(colors=256)
    frames = [f.quantize(palette=palette) for f in frames]
    with atomic_path(out) as tmp:
        frames[0].save(
            tmp, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0
        )


def super_resolution_sheet(
    manifest: pd.DataFrame, out: Path, dataset: Path, pairs: int = 3, read: Reader = read_frames
) -> int:
    """The lifted pairs' middle frames, cropped at the centre: the expert's working-size target
    (bicubic to the output size) beside the super-resolver's, for up to ``pairs`` pairs (the
    first by id among those the super-resolution stage lifted). Returns the pairs shown."""
    lifted = [
        (row, params)
        for row in sample_pairs(manifest, len(manifest)).to_dict("records")
        if "working_target" in (params := json.loads(row["params"]))
    ][:pairs]
    font, blocks = _font(), []
    for row, params in lifted:
        target = read(dataset / row["target_path"])
        working = read(Path(params["working_target"]))
        k = len(target) // 2
        height, width = target.shape[1:3]
        big = Image.fromarray(working[k]).resize((width, height), Image.Resampling.BICUBIC)
        box = (width // 4, height // 4, width // 4 + width // 2, height // 4 + height // 2)
        crops = [big.crop(box), Image.fromarray(target[k]).crop(box)]
        scale = THUMB_WIDTH * 2 / crops[0].width  # each crop as wide as two thumbnails
        size = (round(crops[0].width * scale), round(crops[0].height * scale))
        crops = [c.resize(size, Image.Resampling.NEAREST) for c in crops]
        block = Image.new(
            "RGB", (2 * size[0] + 3 * PAD, size[1] + 2 * PAD + TEXT_HEIGHT), BACKGROUND
        )
        block.paste(crops[0], (PAD, PAD))
        block.paste(crops[1], (2 * PAD + size[0], PAD))
        text = (
            f"working {working.shape[1]}x{working.shape[2]} (bicubic) | lifted {height}x{width}"
            f"   [{row['pair_id']}]"
        )
        ImageDraw.Draw(block).text((PAD, 2 * PAD + size[1] - 2), text, fill=INK, font=font)
        blocks.append(block)
    save_stacked(blocks, out, "no lifted pairs")
    return len(lifted)


def write_previews(
    manifest: pd.DataFrame,
    dataset: Path,
    sheet: Path,
    gif: Path,
    pairs: int = 3,
    judge_sheet: Path | None = None,
    sr_sheet: Path | None = None,
) -> None:
    """The contact sheet and the animated preview, each pair's videos decoded once; with
    ``judge_sheet``, also the sheet of the kept pairs the judge scored lowest.

    The preview's pair is the sheet's first: decoded for the GIF, it is still in the two-video
    cache when the sheet starts (a larger cache would hold every sample's frames at once).
    """
    read = lru_cache(maxsize=2)(read_frames)
    animated_preview(manifest, dataset, gif, read=read)
    contact_sheet(manifest, dataset, sheet, pairs=pairs, read=read)
    if judge_sheet is not None:
        lowest = lowest_judged(manifest, pairs)
        empty = "no kept pair has the judge's scores"
        contact_sheet(manifest, dataset, judge_sheet, read=read, chosen=lowest, empty=empty)
    if sr_sheet is not None:
        super_resolution_sheet(manifest, sr_sheet, dataset, pairs=pairs, read=read)
