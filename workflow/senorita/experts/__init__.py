"""The four video experts of Señorita-2M (stage 6) and the super-resolver that lifts their
videos above 336 × 592: model classes and diffusers pipelines.

- ``transformer``: the CogVideoX transformer with ControlNet residuals, and input widening for
  the 48-channel inpainting variants;
- ``controlnet``: the CogVideoX video ControlNet (a diffusers model);
- ``pipeline``: the shared denoising loop (``tiling``: its overlapping spatial tiles);
  ``remover``, ``local_stylizer``, ``global_stylizer``, ``inpainter`` and ``super_resolver``:
  one pipeline class per expert;
- ``load_expert``: an expert's pipeline from the config's ``experts.<name>``, placed, with the
  memory savers it asks for.
"""

from __future__ import annotations

import logging
from typing import Any

from senorita.experts.controlnet import CogVideoXControlNetModel
from senorita.experts.global_stylizer import GlobalStylizerPipeline
from senorita.experts.inpainter import InpainterPipeline
from senorita.experts.local_stylizer import LocalStylizerPipeline
from senorita.experts.remover import RemoverPipeline
from senorita.experts.super_resolver import SuperResolverPipeline
from senorita.experts.transformer import CogVideoXControlTransformer3DModel, widen_input
from senorita.models import ModelSpec

log = logging.getLogger(__name__)

# Expert name (the config's experts.<name>) -> its pipeline class.
PIPELINES = {
    "remover": RemoverPipeline,
    "local_stylizer": LocalStylizerPipeline,
    "global_stylizer": GlobalStylizerPipeline,
    "inpainter": InpainterPipeline,
    "super_resolver": SuperResolverPipeline,
}


def load_expert(name: str, experts_cfg: dict[str, Any]):
    """The expert pipeline ``name`` from its configured checkpoint (``experts_cfg`` is the
    config's experts section), placed and with memory savers set; and its ModelSpec."""
    spec = ModelSpec.from_config(experts_cfg, name)
    pipe = PIPELINES[name].from_pretrained(
        spec.id,
        revision=None if spec.is_local else spec.revision,
        dtype=spec.torch_dtype(),
    )
    if experts_cfg["cpu_offload"] and spec.torch_device().type == "cuda":
        pipe.enable_model_cpu_offload(device=spec.torch_device())
    else:
        pipe.to(spec.torch_device())
    if experts_cfg["vae_tiling"]:
        pipe.vae.enable_tiling()
    if experts_cfg["vae_slicing"]:
        pipe.vae.enable_slicing()
    pipe.set_progress_bar_config(disable=True)
    log.info("%s: loaded %s (%s on %s)", name, spec.id, spec.torch_dtype(), spec.torch_device())
    return pipe, spec


__all__ = [
    "PIPELINES",
    "CogVideoXControlNetModel",
    "CogVideoXControlTransformer3DModel",
    "GlobalStylizerPipeline",
    "InpainterPipeline",
    "LocalStylizerPipeline",
    "RemoverPipeline",
    "SuperResolverPipeline",
    "load_expert",
    "widen_input",
]
