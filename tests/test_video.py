"""Decoding: one ffmpeg process per read gives the frames a probe-then-rawvideo decode gives."""

from __future__ import annotations

import subprocess

import ffmpeg
import numpy as np
import pytest

from senorita.video import FFMPEG, VideoError, _ppm_frames, probe, read_frames, write_frames


def _rawvideo(path) -> np.ndarray:
    """The decode read_frames made before: ffprobe for the size, then rawvideo rgb24."""
    info = probe(path)
    out, _ = (
        ffmpeg.input(str(path))
        .output("pipe:", format="rawvideo", pix_fmt="rgb24")
        .run(cmd=FFMPEG, capture_stdout=True, capture_stderr=True)
    )
    return np.frombuffer(out, np.uint8).reshape(-1, info.height, info.width, 3)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 54, 96, 3), dtype=np.uint8)
    write_frames(folder / "plain.mp4", frames, 30, preset="ultrafast")
    # Rotated 90° by its metadata: ffmpeg displays (and decodes) it portrait.
    subprocess.run(
        [*FFMPEG, "-i", str(folder / "plain.mp4"), "-c", "copy",
         "-metadata:s:v:0", "rotate=90", str(folder / "rotated.mp4")],
        check=True,
    )  # fmt: skip
    # Odd-sized and lossless RGB, as an editor may export it.
    subprocess.run(
        [*FFMPEG, "-f", "lavfi", "-i", "testsrc=s=97x55:r=8:d=1", "-c:v", "ffv1",
         "-pix_fmt", "bgr0", str(folder / "odd.mkv")],
        check=True,
    )  # fmt: skip
    return folder


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("plain.mp4", (7, 54, 96, 3)),
        ("rotated.mp4", (7, 96, 54, 3)),
        ("odd.mkv", (8, 55, 97, 3)),
    ],
)
def test_frames_equal_the_rawvideo_decode_at_the_displayed_size(videos, name, shape):
    got = read_frames(videos / name)
    assert got.shape == shape and got.dtype == np.uint8 and got.flags["C_CONTIGUOUS"]
    assert np.array_equal(got, _rawvideo(videos / name))


def test_a_broken_or_changing_frame_stream_is_an_error_naming_the_file():
    frame = b"P6\n4 2\n255\n" + bytes(4 * 2 * 3)
    assert _ppm_frames(frame * 3, "x.mp4").shape == (3, 2, 4, 3)
    with pytest.raises(VideoError, match=r"x\.mp4: the frame size changes"):
        _ppm_frames(frame + b"P6\n2 4\n255\n" + bytes(4 * 2 * 3), "x.mp4")
    with pytest.raises(VideoError, match=r"x\.mp4: decoded 37 bytes"):
        _ppm_frames(frame + b"P6", "x.mp4")
    with pytest.raises(VideoError, match="not PPM"):
        _ppm_frames(b"\x00" * 64, "x.mp4")


def test_an_unreadable_file_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(VideoError, match=r"^unreadable: .*bad\.mp4"):
        read_frames(bad)
