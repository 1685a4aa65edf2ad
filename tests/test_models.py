"""The model registry and its loaders, run on tiny random models (CPU, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from snakemake.utils import validate

from conftest import REPO
from senorita.models import FAMILIES_FOR_KIND, ModelSpec, resolve_device, resolve_dtype
from senorita.models.captioner import Captioner
from senorita.models.depth import DepthEstimator, normalise_clip
from senorita.models.hed import WIDTHS, ControlNetHED, HedDetector
from senorita.testing.tiny import FAMILIES, build_tiny_models

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("tiny"), FAMILIES)


def spec(family: str, path: Path, **overrides) -> ModelSpec:
    return ModelSpec(family=family, id=str(path), **{"batch_size": 4, **overrides})


def frames(t=5, h=64, w=112, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_registry_defaults_name_every_family_with_its_settings():
    config: dict = {}
    validate(config, str(SCHEMA))  # fills the schema's defaults, as the Snakefile does
    models = config["models"]
    assert models["depth"]["id"] == "depth-anything/Depth-Anything-V2-Small-hf"
    assert models["hed"]["id"] == "lllyasviel/Annotators"
    assert models["hed"]["filename"] == "ControlNetHED.pth"
    assert {"captioner", "vlm", "detector", "segmenter"} <= set(models)
    for family, entry in models.items():
        assert {"id", "revision", "dtype", "device", "batch_size"} <= set(entry), family
        s = ModelSpec.from_config(models, family)
        assert not s.is_local and s.provenance()["revision"] == "main"
    assert ModelSpec.from_config(models, "hed").options == {"filename": "ControlNetHED.pth"}


def test_the_embedded_default_points_at_the_tiny_models():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for family in FAMILIES:
        assert config["models"][family]["id"] == f"results/models/tiny/{family}"
        assert ModelSpec(family=family, id=config["models"][family]["id"]).is_local


def test_auto_device_and_dtype():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("float8", cpu)
    assert set(FAMILIES_FOR_KIND["scribble"]) == {"hed"}


def test_depth_round_trips_and_predicts_per_frame_maps(tiny, tmp_path):
    estimator = DepthEstimator.load(spec("depth", tiny["depth"]))
    clip = frames()
    depth = estimator(clip)
    assert depth.shape == (5, 64, 112) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and depth.std() > 0
    # Batching does not change the result.
    whole = DepthEstimator(
        estimator.model, estimator.processor, spec("depth", tiny["depth"], batch_size=8)
    )
    np.testing.assert_allclose(whole(clip), depth, rtol=1e-4, atol=1e-6)
    # save_pretrained -> from_pretrained gives the same model.
    estimator.model.save_pretrained(tmp_path / "again")
    estimator.processor.save_pretrained(tmp_path / "again")
    again = DepthEstimator.load(spec("depth", tmp_path / "again"))
    np.testing.assert_allclose(again(clip), depth, rtol=1e-5, atol=1e-7)


def test_depth_is_normalised_per_clip_not_per_frame():
    # A scene that gets nearer over time (inverse depth grows): per-frame min/max would stretch
    # every frame to 0..255; one pair of bounds for the clip keeps the change visible.
    base = np.linspace(1.0, 2.0, 32 * 48, dtype=np.float32).reshape(32, 48)
    depth = np.stack([base * (1 + 0.25 * t) for t in range(6)])
    maps, bounds = normalise_clip(depth)
    assert bounds == pytest.approx({"low": 1.0, "high": 2.0 * 2.25})
    maxima = maps.reshape(6, -1).max(axis=1)
    assert (np.diff(maxima.astype(int)) > 0).all()  # brighter as it comes nearer
    assert maxima[-1] == 255 and maxima[0] < 128 and maps[0].min() == 0
    expected = (depth - 1.0) / (4.5 - 1.0) * 255
    assert np.abs(maps - expected).max() <= 0.5 + 1e-4
    # Robust bounds clip the extremes; a flat clip maps to 0.
    robust, b = normalise_clip(depth, (5, 95))
    assert robust.min() == 0 and robust.max() == 255 and b["low"] > 1.0
    flat, _ = normalise_clip(np.ones((3, 8, 8), np.float32))
    assert (flat == 0).all()


def test_hed_network_matches_the_controlnet_checkpoint_layout():
    net = ControlNetHED()
    names = set(net.state_dict())
    assert "norm" in names and net.norm.shape == (1, 3, 1, 1)
    for i, (width, depth) in enumerate(zip(WIDTHS, (2, 2, 3, 3, 3), strict=True), start=1):
        assert net.state_dict()[f"block{i}.convs.0.weight"].shape[0] == width
        assert f"block{i}.convs.{depth - 1}.weight" in names
        assert f"block{i}.convs.{depth}.weight" not in names
        assert net.state_dict()[f"block{i}.projection.weight"].shape == (1, width, 1, 1)
    sides = ControlNetHED((4, 4, 4, 4, 4))(torch.zeros(1, 3, 64, 96))
    assert [s.shape[-2:] for s in sides] == [(64, 96), (32, 48), (16, 24), (8, 12), (4, 6)]


def test_hed_loads_its_checkpoint_and_gives_edges_in_unit_range(tiny):
    path = tiny["hed"] / "ControlNetHED.pth"
    state = torch.load(path, weights_only=True)
    rebuilt = ControlNetHED.from_state_dict(state)  # widths and depths read from the checkpoint
    assert rebuilt.block1.convs[0].out_channels == state["block1.convs.0.weight"].shape[0]
    # A folder or the file itself both work as the configured id.
    for where in (tiny["hed"], path):
        detector = HedDetector.load(spec("hed", where), resolution=64)
        edges = detector(frames(t=3, h=48, w=80))
        assert edges.shape == (3, 48, 80) and edges.dtype == np.float32
        assert edges.min() >= 0 and edges.max() <= 1 and edges.std() > 0
    assert detector.detect_size(336, 592) == (64, 128)
    assert HedDetector(rebuilt, spec("hed", path), 512).detect_size(336, 592) == (512, 896)
    with pytest.raises(ValueError, match="block"):
        ControlNetHED.from_state_dict({"norm": state["norm"]})


def test_a_missing_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HedDetector.load(spec("hed", tmp_path / "nowhere" / "hed.pth"))


def test_captioner_round_trips_and_captions_a_batch(tiny, tmp_path):
    captioner = Captioner.load(spec("captioner", tiny["captioner"], options={"min_new_tokens": 3}))
    images = list(frames(t=3, h=48, w=80))
    captions = captioner(images)
    assert len(captions) == 3 and all(isinstance(c, str) and c for c in captions)
    captioner.model.save_pretrained(tmp_path / "again")
    captioner.processor.save_pretrained(tmp_path / "again")
    again = Captioner.load(spec("captioner", tmp_path / "again", options={"min_new_tokens": 3}))
    assert again(images) == captions
    # Batching does not change greedy captions.
    single = Captioner(
        captioner.model,
        captioner.processor,
        spec("captioner", tiny["captioner"], batch_size=1, options={"min_new_tokens": 3}),
    )
    assert single(images) == captions
