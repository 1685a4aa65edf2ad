"""A clip's frames re-cut from its original video at another size, aligned with the clip.

The clips stage (``clips.cut_clip``) takes ``frames`` frames every ``stride`` source frames from
``start_frame``, scales the video to cover ``height`` × ``width`` (ffmpeg's
``force_original_aspect_ratio=increase``, bicubic) and crops the centre. ``recut`` takes the same
frames and the same source region at another size (the super-resolver's high-resolution
targets, ``senorita.training.views``).

Alignment: re-running the cover-and-crop rule at the new size would not give the clip's region.
ffmpeg rounds the scaled size to whole pixels and the crop offset to a whole, then (cropping
yuv420p) even pixel: a 1920 × 1080 source cut at 336 × 592 is scaled to 597 × 336 and cropped
from x = 2; the rule at 672 × 1184 would scale to 1195 × 672 and crop from x = 6, where the
clip's region starts at 4: a clip pixel away (measured: one pixel costs about 16 dB of PSNR on
textured frames). ``cover_crop`` computes the clip's geometry as ffmpeg 5 does
(``libavfilter/scale_eval.c`` and ``vf_crop.c``); the re-cut scales the source to that geometry
times the size factor and crops exactly (in RGB, so no even rounding). For a whole factor (2 ×:
672 × 1184) each re-cut pixel block covers exactly one clip pixel; otherwise the scaled size and
offset are rounded, within half a re-cut pixel. The original video is the ingest table's
``path`` for the clip's ``video_id``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import ffmpeg
import numpy as np

from senorita.video import FFMPEG, VideoError, probe


def _rescale(a: int, b: int, c: int) -> int:
    """``a * b / c`` rounded to the nearest, halves away from zero (ffmpeg's ``av_rescale``)."""
    return (a * b + c // 2) // c


def cover_crop(
    src_height: int, src_width: int, height: int, width: int
) -> tuple[int, int, int, int]:
    """(scaled height, scaled width, top, left): how ffmpeg's scale-to-cover and centre crop to
    yuv420p (``cut_clip``) place a ``height`` × ``width`` clip on a source of that size."""
    scaled_w = max(width, _rescale(height, src_width, src_height))
    scaled_h = max(height, _rescale(width, src_height, src_width))
    # vf_crop: x = (in_w - out_w) / 2 rounded by lrint (halves to even, as Python's round),
    # then down to even for 4:2:0 chroma.
    left = round((scaled_w - width) / 2) & ~1
    top = round((scaled_h - height) / 2) & ~1
    return scaled_h, scaled_w, top, left


def recut_geometry(
    src_height: int, src_width: int, clip_height: int, clip_width: int, height: int, width: int
) -> tuple[int, int, int, int]:
    """(scaled height, scaled width, top, left) at ``height`` × ``width`` covering the source
    region of the ``clip_height`` × ``clip_width`` clip: its geometry times the size factor."""
    sh, sw, top, left = cover_crop(src_height, src_width, clip_height, clip_width)
    fy, fx = height / clip_height, width / clip_width
    scaled_h, scaled_w = max(height, round(sh * fy)), max(width, round(sw * fx))
    top = min(round(top * fy), scaled_h - height)
    left = min(round(left * fx), scaled_w - width)
    return scaled_h, scaled_w, top, left


def recut(
    video_path: str | os.PathLike[str],
    clip_row: Mapping[str, Any],
    height: int,
    width: int,
    frames: int | None = None,
) -> np.ndarray:
    """The clip's frames (the first ``frames``; all by default) from its original video at
    ``height`` × ``width``, aligned with the clip: (T, H, W, 3) uint8 RGB.

    ``clip_row`` is the clip's table row: ``start_frame``, ``stride``, ``frames``, ``height``
    and ``width`` (the clip's size)."""
    start, stride = int(clip_row["start_frame"]), int(clip_row["stride"])
    n = int(clip_row["frames"]) if frames is None else int(frames)
    if n > int(clip_row["frames"]):
        raise ValueError(f"{video_path}: {n} frames asked of a clip of {clip_row['frames']}")
    info = probe(video_path)  # displayed size: ffmpeg rotates on input, as cut_clip's run did
    sh, sw, top, left = recut_geometry(
        info.height, info.width, int(clip_row["height"]), int(clip_row["width"]), height, width
    )
    end = start + (n - 1) * stride
    stream = (
        ffmpeg.input(str(video_path))
        .filter("select", f"between(n,{start},{end})*not(mod(n-{start},{stride}))")
        .filter("scale", sw, sh, flags="bicubic")
        .filter("format", "rgb24")  # crop in RGB: exact offsets, no chroma rounding
        .filter("crop", width, height, left, top, exact=1)
    )
    try:
        out, _ = stream.output(
            "pipe:",
            format="rawvideo",
            pix_fmt="rgb24",
            **{"frames:v": n, "fps_mode": "passthrough"},
        ).run(cmd=FFMPEG, capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as err:
        text = (err.stderr or b"").decode("utf-8", "replace").strip()
        raise VideoError(f"{video_path}: re-cut failed: {text[-300:]}") from None
    video = np.frombuffer(out, np.uint8)
    if video.size != n * height * width * 3:
        got = video.size // (height * width * 3)
        raise VideoError(f"{video_path}: re-cut gave {got} frames of {n} (source ends early?)")
    return video.reshape(n, height, width, 3)
