"""Clip cutting throughput: senorita's cutter against a bare ffmpeg command doing the same work.

Both decode the same 720p source, select 33 frames at stride 2, resize to cover 336×592,
centre-crop and encode H.264 with the same settings. Ours adds building the command with
ffmpeg-python, an atomic rename, a probe that verifies frame count and size, and a checksum.
The goal: our overhead stays within 15%. Shot detection (a separate cost of the clips stage) is
timed on its own for reference.

    python benchmarks/clip_throughput.py [--videos 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from senorita.clips import cut_clip, detect_shots
from senorita.video import X264_THREADS, probe, sha256_file

CFG = {
    "frames": 33,
    "stride": 2,
    "height": 336,
    "width": 592,
    "crf": 18,
    "preset": "medium",
    "scene_threshold": 27.0,
    "min_shot_frames": 15,
}


def make_sources(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = folder / f"src{i}.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size=1280x720:rate=25,hue=h={i * 40}",
                "-t",
                "8",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-y",
                str(path),
            ],
            check=True,
        )
        paths.append(path)
    return paths


def bare_ffmpeg(src: Path, dst: Path, start: int, fps: float) -> None:
    end = start + (CFG["frames"] - 1) * CFG["stride"]
    out_fps = fps / CFG["stride"]
    vf = (
        f"select=between(n\\,{start}\\,{end})*not(mod(n-{start}\\,{CFG['stride']})),"
        f"setpts=N/({out_fps}*TB),scale=592:336:force_original_aspect_ratio=increase:flags=bicubic,"
        f"crop=592:336,setsar=1"
    )
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(src),
            "-vf",
            vf,
            "-frames:v",
            "33",
            "-fps_mode",
            "cfr",
            "-r",
            str(out_fps),
            "-an",
            "-c:v",
            "libx264",
            "-threads",
            str(X264_THREADS),
            "-pix_fmt",
            "yuv420p",
            "-crf",
            "18",
            "-preset",
            "medium",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            "-y",
            str(dst),
        ],
        check=True,
    )


def ours(src: Path, dst: Path, start: int, fps: float) -> None:
    cut_clip(src, dst, start, CFG, fps)
    sha256_file(dst)


def timed(fn, sources: list[Path], out: Path, repeats: int) -> float:
    """Median over repeats of the time to cut one clip from every source."""
    runs = []
    for r in range(repeats):
        t0 = time.perf_counter()
        for i, src in enumerate(sources):
            fn(src, out / f"{fn.__name__}_{r}_{i}.mp4", 40, 25.0)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources = make_sources(folder, args.videos)
        bare_ffmpeg(sources[0], folder / "warmup.mp4", 40, 25.0)  # page cache, first-run costs
        t_bare = timed(bare_ffmpeg, sources, folder, args.repeats)
        t_ours = timed(ours, sources, folder, args.repeats)
        t0 = time.perf_counter()
        for src in sources:
            detect_shots(src, probe(src).frames, CFG)
        t_shots = time.perf_counter() - t0

    n = args.videos
    rows = [
        ("bare ffmpeg (baseline)", t_bare),
        ("senorita cut_clip + verify + sha256", t_ours),
        ("shot detection alone (PySceneDetect)", t_shots),
    ]
    print(f"{'method':40} {'clips/s':>9} {'frames/s':>9} {'s/clip':>8}")
    for name, t in rows:
        print(f"{name:40} {n / t:9.2f} {n * CFG['frames'] / t:9.1f} {t / n:8.3f}")
    ratio = t_ours / t_bare
    print(
        f"\noverhead ratio (ours / bare ffmpeg): {ratio:.3f}"
        f"  (goal ≤ 1.15: {'met' if ratio <= 1.15 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
