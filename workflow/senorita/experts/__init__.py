"""The four video experts of Señorita-2M (stage 6): model classes and diffusers pipelines.

- ``transformer``: the CogVideoX transformer with ControlNet residuals, and input widening for
  the 48-channel inpainting variants;
- ``controlnet``: the CogVideoX video ControlNet (a diffusers model);
- ``pipeline``: the shared denoising loop; ``remover``, ``local_stylizer``, ``global_stylizer``
  and ``inpainter``: one pipeline class per expert.
"""

from __future__ import annotations

from senorita.experts.controlnet import CogVideoXControlNetModel
from senorita.experts.global_stylizer import GlobalStylizerPipeline
from senorita.experts.inpainter import InpainterPipeline
from senorita.experts.local_stylizer import LocalStylizerPipeline
from senorita.experts.remover import RemoverPipeline
from senorita.experts.transformer import CogVideoXControlTransformer3DModel, widen_input

# Expert name (the config's experts.<name>) -> its pipeline class.
PIPELINES = {
    "remover": RemoverPipeline,
    "local_stylizer": LocalStylizerPipeline,
    "global_stylizer": GlobalStylizerPipeline,
    "inpainter": InpainterPipeline,
}

__all__ = [
    "PIPELINES",
    "CogVideoXControlNetModel",
    "CogVideoXControlTransformer3DModel",
    "GlobalStylizerPipeline",
    "InpainterPipeline",
    "LocalStylizerPipeline",
    "RemoverPipeline",
    "widen_input",
]
