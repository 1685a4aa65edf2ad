"""Video masks with SAM 2.1's video predictor (the ``sam2`` package): a box on a key frame becomes
a mask on every frame of the clip.

Checkpoints come in SAM2's own format, a hydra config name plus a ``.pt`` state dict:

- a hub id SAM2 knows (``facebook/sam2.1-hiera-large`` ...): config and file from SAM2's own
  table, downloaded with ``huggingface_hub`` at the configured revision;
- a local folder holding ``sam2.json`` (``{"config": ..., "checkpoint": ..., "overrides": [...]}``,
  as the tiny builder writes), or a local ``.pt`` file with ``config`` set in the registry entry.

Weights stay float32 (as SAM2 ships them); on CUDA a half ``dtype`` runs under autocast, as SAM2's
own examples do.
"""

from __future__ import annotations

import json
import logging
import tempfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from senorita.models import ModelSpec

log = logging.getLogger(__name__)

MANIFEST = "sam2.json"


def resolve_checkpoint(spec: ModelSpec) -> tuple[str, str, list[str]]:
    """(hydra config name, checkpoint file, hydra overrides) of a registry entry."""
    overrides = list(spec.options.get("overrides") or [])
    config = spec.options.get("config")
    path = Path(spec.id).expanduser()
    if path.is_dir():
        manifest = path / MANIFEST
        if not manifest.exists():
            raise ValueError(f"config models.segmenter.id {spec.id!r}: no {MANIFEST} in the folder")
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        return (
            config or meta["config"],
            str(path / meta["checkpoint"]),
            [*meta.get("overrides", []), *overrides],
        )
    if path.is_file():
        if not config:
            raise ValueError(
                f"config models.segmenter.config: required for the checkpoint file {spec.id!r}"
            )
        return config, str(path), overrides
    if spec.is_local:
        raise ValueError(f"config models.segmenter.id: {spec.id!r} does not exist")
    from huggingface_hub import hf_hub_download
    from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

    try:
        default_config, filename = HF_MODEL_ID_TO_FILENAMES[spec.id]
    except KeyError:
        known = ", ".join(sorted(HF_MODEL_ID_TO_FILENAMES))
        raise ValueError(f"config models.segmenter.id {spec.id!r}: not one of {known}") from None
    checkpoint = hf_hub_download(spec.id, filename, revision=spec.revision)
    return config or default_config, checkpoint, overrides


class VideoSegmenter:
    def __init__(self, predictor, spec: ModelSpec):
        self.spec = spec
        self.device = spec.torch_device()
        self.predictor = predictor
        self.offload = bool(spec.options.get("offload_video_to_cpu", False))

    @classmethod
    def load(cls, spec: ModelSpec) -> VideoSegmenter:
        from sam2.build_sam import build_sam2_video_predictor

        config, checkpoint, overrides = resolve_checkpoint(spec)
        predictor = build_sam2_video_predictor(
            config,
            checkpoint,
            device=spec.torch_device(),
            hydra_overrides_extra=overrides,
            apply_postprocessing=bool(spec.options.get("postprocessing", True)),
        )
        log.info("segmenter: loaded %s (%s, on %s)", checkpoint, config, spec.torch_device())
        return cls(predictor, spec)

    def _autocast(self):
        dtype = self.spec.torch_dtype()
        if self.device.type == "cuda" and dtype != torch.float32:
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()

    @torch.inference_mode()
    def __call__(
        self,
        frames: np.ndarray,
        boxes: list[tuple[float, float, float, float]],
        key_frame: int = 0,
    ) -> np.ndarray:
        """Masks (len(boxes), T, H, W) bool of the objects boxed on ``key_frame`` of ``frames``.

        Propagates forward from the key frame, then backward when it is not the first.
        """
        n, t, h, w = len(boxes), len(frames), frames.shape[1], frames.shape[2]
        masks = np.zeros((n, t, h, w), dtype=bool)
        if n == 0:
            return masks
        with tempfile.TemporaryDirectory(prefix="sam2-") as tmp, self._autocast():
            # The video predictor reads a folder of JPEG frames named by index.
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(Path(tmp) / f"{i:05d}.jpg", quality=95)
            state = self.predictor.init_state(tmp, offload_video_to_cpu=self.offload)
            for obj, box in enumerate(boxes):
                self.predictor.add_new_points_or_box(
                    state, frame_idx=key_frame, obj_id=obj, box=np.asarray(box, np.float32)
                )
            seen: set[int] = set()
            directions = [False] + ([True] if key_frame > 0 else [])
            for reverse in directions:
                for index, obj_ids, logits in self.predictor.propagate_in_video(
                    state, start_frame_idx=key_frame, reverse=reverse
                ):
                    seen.add(index)
                    found = (logits[:, 0] > 0).cpu().numpy()
                    for row, obj in enumerate(obj_ids):
                        masks[obj, index] = found[row]
            self.predictor.reset_state(state)
        if len(seen) != t:  # a silent gap would pass for "no object on those frames"
            raise RuntimeError(f"SAM2 propagated {len(seen)} of {t} frames")
        return masks
