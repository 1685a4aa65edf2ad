"""Video probing, decoding and encoding through ffmpeg-python."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from senorita.atomic import atomic_path

# Options must come before the first input for ffmpeg to honour them from the start.
FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
# x264's output bytes depend on its thread count, which by default follows the CPUs this process
# may use (a SLURM job's allocation, a workstation's cores). A fixed count makes every encode give
# the same bytes wherever it runs.
X264_THREADS = 4


class VideoError(RuntimeError):
    """A video could not be read or written; the message says why."""


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as displayed (rotation applied)
    height: int
    fps: float
    duration: float
    frames: int  # container's count, or duration × fps where the container has none
    codec: str
    has_audio: bool


def _stderr(err: ffmpeg.Error) -> str:
    text = (err.stderr or b"").decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else str(err)


def _rotation(stream: dict) -> int:
    rot = stream.get("tags", {}).get("rotate")
    if rot is None:
        for side in stream.get("side_data_list", []):
            if "rotation" in side:
                rot = side["rotation"]
    return int(float(rot or 0)) % 360


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe the first video stream of a file; raise VideoError if there is none."""
    try:
        meta = ffmpeg.probe(str(path))
    except ffmpeg.Error as err:
        raise VideoError(f"unreadable: {_stderr(err)}") from None
    streams = meta.get("streams", [])
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not s.get("disposition", {}).get("attached_pic", 0)
        ),
        None,
    )
    if video is None:
        kinds = sorted({s.get("codec_type", "?") for s in streams})
        raise VideoError(f"no video stream (streams: {', '.join(kinds) or 'none'})")
    width, height = int(video.get("width", 0)), int(video.get("height", 0))
    if _rotation(video) in (90, 270):
        width, height = height, width
    rate = video.get("avg_frame_rate") or "0/1"
    if rate in ("0/0", "0/1"):
        rate = video.get("r_frame_rate") or "0/1"
    fps = float(Fraction(rate)) if rate not in ("0/0",) else 0.0
    duration = float(video.get("duration") or meta.get("format", {}).get("duration") or 0.0)
    frames = int(video.get("nb_frames") or 0) or round(duration * fps)
    return VideoInfo(
        width=width,
        height=height,
        fps=fps,
        duration=duration,
        frames=frames,
        codec=str(video.get("codec_name", "unknown")),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
    )


def decode_errors(path: str | os.PathLike[str]) -> str | None:
    """Decode the whole video stream; return ffmpeg's first error line, or None if it is clean."""
    try:
        _, err = (
            ffmpeg.input(str(path))
            .output("-", format="null", map="0:v:0")
            .run(cmd=FFMPEG, capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as exc:
        return _stderr(exc)
    text = err.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else None


def read_frames(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a video to a (T, H, W, 3) uint8 RGB array.

    One ffmpeg process: frames come as PPM images, whose headers carry the displayed size, so no
    ffprobe call is needed first (each ffmpeg binary start costs about 0.13 CPU s). The pixels are
    the same rgb24 conversion a rawvideo output gives.
    """
    try:
        out, _ = (
            ffmpeg.input(str(path))
            .output("pipe:", format="image2pipe", vcodec="ppm", pix_fmt="rgb24")
            .run(cmd=FFMPEG, capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as err:  # ffmpeg's line names the file, as probe's "unreadable" did
        raise VideoError(f"unreadable: {_stderr(err)}") from None
    if not out:  # no frame decoded: an empty array of the stream's size, as before
        info = probe(path)
        return np.empty((0, info.height, info.width, 3), np.uint8)
    return _ppm_frames(out, path)


def _ppm_frames(data: bytes, path: str | os.PathLike[str]) -> np.ndarray:
    """Split ffmpeg's concatenated binary PPM images (``P6\\n<w> <h>\\n255\\n`` + pixels)."""
    parts = data.split(b"\n", 3)
    if len(parts) < 4 or parts[0] != b"P6" or parts[2] != b"255":
        raise VideoError(f"{path}: decoder output is not PPM frames")
    width, height = (int(v) for v in parts[1].split())
    header = b"P6\n%d %d\n255\n" % (width, height)
    size = len(header) + width * height * 3
    if len(data) % size:
        raise VideoError(f"{path}: decoded {len(data)} bytes, not a whole number of frames")
    frames = np.frombuffer(data, np.uint8).reshape(-1, size)
    if not (frames[:, : len(header)] == np.frombuffer(header, np.uint8)).all():
        raise VideoError(f"{path}: the frame size changes within the video")
    return np.ascontiguousarray(frames[:, len(header) :]).reshape(-1, height, width, 3)


def write_frames(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: float,
    crf: int = 18,
    preset: str = "medium",
) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264/yuv420p mp4, atomically.

    H and W must be even (4:2:0 chroma). ``faststart`` puts the index first for streaming readers.
    """
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"{path}: expected (T, H, W, 3) frames, got {frames.shape}")
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise VideoError(f"{path}: H.264 4:2:0 needs even sizes, got {height}x{width}")
    rate = str(Fraction(fps).limit_denominator(1001))
    with atomic_path(Path(path)) as tmp:
        try:
            (
                ffmpeg.input(
                    "pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=rate
                )
                .output(
                    str(tmp),
                    format="mp4",
                    vcodec="libx264",
                    pix_fmt="yuv420p",
                    crf=crf,
                    preset=preset,
                    threads=X264_THREADS,
                    movflags="+faststart",
                    r=rate,
                )
                .overwrite_output()
                .run(cmd=FFMPEG, input=frames.tobytes(), capture_stdout=True, capture_stderr=True)
            )
        except ffmpeg.Error as err:
            raise VideoError(f"{path}: encode failed: {_stderr(err)}") from None


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
