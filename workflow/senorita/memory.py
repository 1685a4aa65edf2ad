"""Memory, stated from the code: what every GPU job of the pipeline holds per GPU.

``plan(config)`` walks the GPU rules the config enables (the model stages, one expert_pairs job
per expert task, one train_expert job per expert, device_report) and, for each, lists the models
it loads with the configured dtype and placement, and states per GPU:

- **weights**: parameters and buffers of every model resident on the GPU, counted on models
  built from their real configs on the meta device (no weights, no download): the configured
  local folder's config files, else the published configs in ``senorita.testing.real_configs``;
  a model whose config is in neither is "unknown", never guessed. With ``cpu_offload``
  (diffusers' ``enable_model_cpu_offload``) a pipeline's components sit in host memory and only
  the running one is on the GPU.
- **training state**: for train_expert, per GPU (DDP: every GPU holds a replica): the trained
  parts' fp32 weights, fp32 gradients and AdamW's two fp32 moments (12 bytes per trainable
  parameter beyond the weights) and DDP's gradient buckets (4 more) when there are several GPUs;
  frozen parts in the mixed-precision dtype (``training.build.weight_dtypes``).
- **largest activation** at the configured clip size (``experts.frames/height/width``; the
  training size for train_expert), from the computed model below.
- **peak**: the largest of (what is resident while a phase runs + that phase's activation).

The activation model (computed estimates, not GPU measurements):

- *CogVideoX transformer, inference*: tokens N = text (``max_text_seq_length``) + latent tokens
  (F' × h/p × w/p, F' = (frames - 1)/4 + 1, h, w = height/8, width/8); batch B = 2 with
  classifier-free guidance. Attention runs in SDPA's flash or memory-efficient kernels, so no
  N × N matrix exists; the largest live set inside a block is the feed-forward's: block input,
  normalised input, the 4D-wide hidden layer and its GELU output, 10 × B × N × D values
  (``FFN_LIVE`` = 13 with the embeddings and temporaries, as measured on the CPU). A
  ControlNet's residuals (one B × N_video × D per ControlNet block) stay live through the
  transformer's forward.
- *Training* (batch per GPU, no guidance): with gradient checkpointing every block keeps its
  input (B × N × D in fp32, the residual stream's dtype under autocast) and one block at a time
  is recomputed with its full activations, about 34 × B × N × D bytes (Korthikanti et al. 2022,
  "Reducing activation recomputation", without the attention-score term that flash attention
  removes); without checkpointing every block keeps those 34 bytes per value.
- *CogVideoX VAE*: diffusers decodes 2 latent frames at a time (3 in the first chunk: 9 video
  frames) and encodes 8 video frames at a time (9 in the first chunk), so the largest tensors are
  at full resolution with the first block's ``block_out_channels[0]`` channels over 9 frames:
  S = C0 × 9 × H × W values. The decoder keeps ``DECODE_LIVE`` × S live (input, group norm, the
  spatial norm's two convolutions of the latent, their product, the causal convolution's padded
  input and output, the chunk's output, the convolution caches), the encoder ``ENCODE_LIVE`` × S,
  both calibrated on the CPU. With
  ``vae_tiling`` H × W is one tile's (the VAE config's sample size / 2, e.g. 240 × 360, plus its
  overlap), with ``vae_slicing`` one video of a batch at a time: the experts decode one video per
  call, so slicing changes nothing here.
- The image models of the annotation stages (captions, control maps, masks, filters) run batches
  of single frames; their activations are not modelled and their peak is their weights plus a
  margin ("+"), listed as such.

Host memory (SLURM ``mem_mb``): every weight passes through host memory on its way to the GPU
(``from_pretrained`` loads to the CPU, then ``.to(device)``); offloaded components stay there.
The estimate is the largest host set (all weights of the job when offloading, else the largest
model loaded at once) plus ``HOST_BASE`` for the interpreter, CUDA's host side and the decoded
clips.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"
GB = 1e9
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# Live full-resolution tensors (units of S = C0 × 9 × H × W) of the CogVideoX VAE, measured:
# peak RSS of the real VAE config's decode of 9 frames on the CPU (fp32) was 15.6 S at 64 × 112
# and 15.1 S at 128 × 224, its encode 8.3 S (counting the resnet's tensors alone gives about 6).
DECODE_LIVE = 16
ENCODE_LIVE = 9
# The transformer block's live values in units of B × N × D: 10 by counting (input, its norm,
# the 4D hidden layer and its GELU output), 12.6 measured (CPU, fp32, 7,219 tokens, D = 512).
FFN_LIVE = 13
TRAIN_BYTES_PER_VALUE = 34  # per B × N × D of one block's saved activations, mixed precision
HOST_BASE = 8 * GB  # interpreter, torch and CUDA host memory, decoded clips
MODEL_MARGIN = 2 * GB  # unmodelled activations of the image models (a batch of frames)


# -- parameter counts from real configs -----------------------------------------------------------


def config_folder(model_id: str | None) -> Path | None:
    """Where ``model_id``'s config files are: a configured local folder, else the published
    configs shipped in ``senorita.testing.real_configs``; None when neither has them."""
    if not model_id:
        return None
    path = Path(model_id).expanduser()
    if path.exists():
        return path if path.is_dir() else None
    from senorita.testing.real_configs import folder

    try:
        return folder(model_id)
    except FileNotFoundError:
        return None


def count(module: torch.nn.Module) -> int:
    """Parameters and buffers: what occupies the device (learned position tables included)."""
    return sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())


AUTO = {
    "captioner": "AutoModelForImageTextToText",
    "clip": "CLIPModel",
    "depth": "AutoModelForDepthEstimation",
    "detector": "AutoModelForZeroShotObjectDetection",
    "llm": "AutoModelForCausalLM",
    "vlm": "AutoModelForImageTextToText",
    "judge": "AutoModelForImageTextToText",
}


def _transformers_model(path: Path, family: str) -> torch.nn.Module | None:
    import transformers

    if not (path / "config.json").is_file():
        return None
    raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if raw.get("auto_map"):  # remote code (CogVLM2 ...): its classes are not installed here
        return None
    config = transformers.AutoConfig.from_pretrained(path)
    # The config's own class (what from_pretrained would build; imports one model module), else
    # the Auto class the family's loader uses.
    names = [*(raw.get("architectures") or []), AUTO[family]]
    if family == "captioner":
        names = ["Blip2ForConditionalGeneration"]  # what senorita.models.captioner loads
    cls = next(getattr(transformers, n) for n in names if hasattr(transformers, n))
    with torch.device("meta"):
        return cls.from_config(config) if cls.__name__.startswith("Auto") else cls(config)


def _component(folder: Path, name: str, library: str, cls_name: str) -> int | None:
    """Parameters of one pipeline component (model_index.json entry) built on meta."""
    sub = folder / name
    if not (sub / "config.json").is_file():
        return None
    if library == "transformers":
        import transformers

        config = transformers.AutoConfig.from_pretrained(sub)
        with torch.device("meta"):
            return count(getattr(transformers, cls_name)(config))
    module = importlib.import_module(library)
    cls = getattr(module, cls_name)
    if not hasattr(cls, "from_config"):
        return None
    with torch.device("meta"):
        return count(cls.from_config(cls.load_config(sub)))


# Components without weights, and the safety checker, which the frame stylizer's loader drops.
WEIGHTLESS = (
    "tokenizer",
    "tokenizer_2",
    "scheduler",
    "feature_extractor",
    "image_processor",
    "safety_checker",
)


def pipeline_parts(folder: Path | None) -> dict[str, int | None] | None:
    """{component: parameters} of a diffusers pipeline folder (None if there is no index)."""
    if folder is None or not (folder / "model_index.json").is_file():
        return None
    return dict(_pipeline_parts(str(folder)))


@functools.cache
def _pipeline_parts(where: str) -> dict[str, int | None]:
    folder = Path(where)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    out: dict[str, int | None] = {}
    for name, entry in index.items():
        if name.startswith("_") or name in WEIGHTLESS or not isinstance(entry, list):
            continue
        library, cls_name = entry
        if library is None:
            continue
        try:
            out[name] = _component(folder, name, library, cls_name)
        except (ImportError, AttributeError, OSError, ValueError):
            out[name] = None
    return out


@functools.cache
def model_params(family: str, model_id: str | None) -> int | None:
    """Parameters of a registry family's model from its real config; None when unknown."""
    if family == "hed":  # ControlNet's HED annotator: a fixed architecture in our own code
        from senorita.models.hed import ControlNetHED

        with torch.device("meta"):
            return count(ControlNetHED())
    if family == "segmenter":
        return _sam2_params(model_id)
    folder = config_folder(model_id)
    if folder is None:
        return None
    try:
        model = _transformers_model(folder, family)
    except (ValueError, OSError, KeyError):
        return None
    return None if model is None else count(model)


def _sam2_params(model_id: str | None) -> int | None:
    """SAM 2 from its hydra config (shipped in the sam2 package, or the folder's sam2.json)."""
    try:
        from hydra import compose, initialize_config_module
        from hydra.core.global_hydra import GlobalHydra
        from hydra.utils import instantiate
        from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES
    except ImportError:
        return None
    overrides: list[str] = []
    path = Path(model_id or "").expanduser()
    if model_id and (path / "sam2.json").is_file():
        meta = json.loads((path / "sam2.json").read_text(encoding="utf-8"))
        name, overrides = meta["config"], list(meta.get("overrides", []))
    elif model_id in HF_MODEL_ID_TO_FILENAMES:
        name = HF_MODEL_ID_TO_FILENAMES[model_id][0]
    else:
        return None
    # Importing sam2 registers its config module with hydra's global state, which every later
    # SAM2 build in this process needs: use it as it is, never clear it.
    if not GlobalHydra.instance().is_initialized():
        initialize_config_module("sam2", version_base="1.2")
    cfg = compose(config_name=name, overrides=overrides)
    from accelerate import init_empty_weights

    # Parameters on meta, other tensors real: Hiera's init reads a tensor's value (.item()).
    with init_empty_weights():
        return count(instantiate(cfg.model, _recursive_=True))


# -- the pieces of a job --------------------------------------------------------------------------


@dataclass
class Part:
    """One model (or pipeline component) a job loads."""

    name: str
    model: str | None
    params: int | None  # None: unknown (no config to count from)
    dtype: str
    offloaded: bool = False  # on the GPU only while it runs (enable_model_cpu_offload)
    group: str = ""  # parts offloaded together move as one (a pipeline's component)
    trainable: int = 0  # parameters with gradients and AdamW state
    state_bytes_per_trainable: int = 0

    @property
    def bytes(self) -> float | None:
        if self.params is None:
            return None
        return self.params * BYTES[self.dtype] + self.trainable * self.state_bytes_per_trainable


@dataclass
class Phase:
    """What runs at one moment: the parts it needs on the GPU and its largest activation."""

    name: str
    parts: list[str]
    activation: float | None  # bytes; None: not modelled


@dataclass
class Job:
    rule: str
    target: str
    gpus: int  # per job (train_expert: per node)
    parts: list[Part]
    phases: list[Phase]
    notes: list[str] = field(default_factory=list)

    def _resident(self, running: list[str]) -> tuple[float, bool]:
        """GPU bytes while ``running`` runs: every part not offloaded, plus the running ones."""
        total, known = 0.0, True
        for p in self.parts:
            if p.offloaded and p.name not in running:
                continue
            if p.bytes is None:
                known = False
            else:
                total += p.bytes
        return total, known

    @property
    def weights(self) -> float:
        """GPU bytes always resident (not offloaded), known parts only."""
        return self._resident([])[0]

    @property
    def unknown(self) -> list[str]:
        return [f"{p.name} ({p.model})" for p in self.parts if p.params is None]

    @property
    def activation(self) -> tuple[str, float | None]:
        modelled = [ph for ph in self.phases if ph.activation is not None]
        if not modelled:
            return "not modelled", None
        top = max(modelled, key=lambda ph: ph.activation)
        return top.name, top.activation

    @property
    def peak(self) -> float:
        """The largest resident + activation over the phases (unmodelled activations count as
        ``MODEL_MARGIN``), known parts only: a lower bound when ``unknown`` is not empty."""
        best = self.weights
        for ph in self.phases:
            resident, _ = self._resident(ph.parts)
            act = MODEL_MARGIN if ph.activation is None else ph.activation
            best = max(best, resident + act)
        return best

    @property
    def host(self) -> float:
        """Host memory: every offloaded part, plus the largest group loaded at once."""
        stay = sum(p.bytes or 0 for p in self.parts if p.offloaded)
        groups: dict[str, float] = {}
        for p in self.parts:
            if not p.offloaded:
                groups[p.group or p.name] = groups.get(p.group or p.name, 0) + (p.bytes or 0)
        # Training state is made on the GPU; only the weights come through the host.
        for p in self.parts:
            if p.trainable and not p.offloaded:
                groups[p.group or p.name] -= p.trainable * p.state_bytes_per_trainable
        return HOST_BASE + stay + max(groups.values(), default=0) * max(self.gpus, 1)

    def row(self) -> dict[str, Any]:
        name, act = self.activation
        return {
            "rule": self.rule,
            "target": self.target,
            "gpus": self.gpus,
            "models": [
                {
                    **asdict(p),
                    "bytes": p.bytes,
                    "on_gpu": "offloaded" if p.offloaded else "resident",
                }
                for p in self.parts
            ],
            "weights_gb": round(self.weights / GB, 2),
            "activation": name,
            "activation_gb": None if act is None else round(act / GB, 2),
            "peak_gb": round(self.peak / GB, 1),
            "peak_is_lower_bound": bool(self.unknown),
            "unknown": self.unknown,
            "host_gb": round(self.host / GB, 1),
            "notes": self.notes,
        }


# -- activation models ----------------------------------------------------------------------------


def latent_tokens(tcfg: dict[str, Any], frames: int, height: int, width: int) -> int:
    latent_frames = (frames - 1) // tcfg["temporal_compression_ratio"] + 1
    p = tcfg["patch_size"]
    return latent_frames * (height // 8 // p) * (width // 8 // p)


def dit_inference(
    tcfg: dict[str, Any],
    frames: int,
    height: int,
    width: int,
    batch: int,
    dtype: str,
    controlnet_layers: int = 0,
) -> float:
    """Bytes of the transformer's largest live set in one denoising step (module docstring)."""
    video = latent_tokens(tcfg, frames, height, width)
    tokens = tcfg["max_text_seq_length"] + video
    dim = tcfg["num_attention_heads"] * tcfg["attention_head_dim"]
    size = BYTES[dtype]
    return (FFN_LIVE * batch * tokens * dim + controlnet_layers * batch * video * dim) * size


def dit_training(
    tcfg: dict[str, Any],
    frames: int,
    height: int,
    width: int,
    batch: int,
    layers: int,
    checkpointing: bool,
) -> float:
    """Bytes of the trained transformer (+ ControlNet blocks) activations for one backward."""
    tokens = tcfg["max_text_seq_length"] + latent_tokens(tcfg, frames, height, width)
    dim = tcfg["num_attention_heads"] * tcfg["attention_head_dim"]
    values = batch * tokens * dim
    if checkpointing:
        return layers * values * 4 + TRAIN_BYTES_PER_VALUE * values
    return layers * TRAIN_BYTES_PER_VALUE * values


def vae_activation(
    vcfg: dict[str, Any], height: int, width: int, dtype: str, tiling: bool, decode: bool
) -> float:
    """Bytes of the VAE's largest live set when coding one clip (module docstring)."""
    if tiling:  # diffusers' tiles: half the sample size, grown by the blend overlap
        th, tw = vcfg.get("sample_height", 480) // 2, vcfg.get("sample_width", 720) // 2
        height = min(height, math.ceil(th * (1 + 1 / 6)))
        width = min(width, math.ceil(tw * (1 + 1 / 5)))
    live = DECODE_LIVE if decode else ENCODE_LIVE
    return live * vcfg["block_out_channels"][0] * 9 * height * width * BYTES[dtype]


# -- the jobs -------------------------------------------------------------------------------------


def _dtype(name: str) -> str:
    """A config dtype as the loaders resolve it on a GPU (``auto`` is float16 there)."""
    return "float16" if name == "auto" else name


def _model_part(models: dict[str, Any], family: str, name: str | None = None) -> Part:
    entry = models[family]
    dtype = _dtype(entry["dtype"])
    if family == "segmenter":
        dtype = "float32"  # SAM2's weights stay float32; a half dtype runs under autocast
    return Part(name or family, entry["id"], model_params(family, entry["id"]), dtype)


def _on_gpu(models: dict[str, Any], families: list[str]) -> list[str]:
    return [f for f in families if models[f]["device"] != "cpu"]


def _model_job(rule: str, target: str, models: dict[str, Any], families: list[str]) -> Job:
    on_gpu = _on_gpu(models, families)
    parts = [_model_part(models, f) for f in on_gpu]
    phases = [Phase(f, [f], None) for f in on_gpu]
    notes = [f"{f} pinned to the CPU" for f in families if f not in on_gpu]
    return Job(rule, target, int(bool(on_gpu)), parts, phases, notes)


@dataclass
class ExpertModels:
    """An expert pipeline's components: {name: params}, the configs the activations need."""

    parts: dict[str, int | None]
    transformer: dict[str, Any] | None
    vae: dict[str, Any] | None
    controlnet_layers: int
    source: str  # what was counted


def _read(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@dataclass(frozen=True)
class _Built:
    counts: dict[str, int]
    transformer: dict[str, Any]
    trainable: dict[str, int]


@functools.cache
def _meta_expert(name: str, base: str, layers: int, parts: tuple[str, ...]) -> _Built:
    """The expert's transformer and ControlNet built on meta from the base's config, counted,
    with the trainable parameters the recipe's own freezing rule leaves for ``parts``."""
    from types import SimpleNamespace

    from senorita.experts.full_size import build_on_meta
    from senorita.training.build import trainable_parameters

    transformer, controlnet = build_on_meta(name, Path(base), controlnet_layers=layers)
    modules = {"transformer": transformer, "controlnet": controlnet}
    pipe = SimpleNamespace(text_encoder=None, vae=None, **modules)
    # Nothing to train is the train job's own error to report, not the plan's.
    with contextlib.suppress(ValueError):
        trainable_parameters(pipe, name, list(parts))
    counts = {k: count(m) for k, m in modules.items() if m is not None}
    grads = {
        k: sum(p.numel() for p in m.parameters() if p.requires_grad)
        for k, m in modules.items()
        if m is not None
    }
    return _Built(counts, dict(transformer.config), grads)


def expert_models(name: str, cfg: dict[str, Any]) -> ExpertModels:
    """The expert's components: from its checkpoint folder when ``id`` is one, else as training
    builds it from ``train.init`` (the base widened and given a ControlNet)."""
    from senorita.experts.full_size import EXPERTS

    folder = config_folder(cfg["id"])
    if folder is not None and (folder / "model_index.json").is_file():
        parts = pipeline_parts(folder) or {}
        cnet = _read(folder, "controlnet/config.json")
        return ExpertModels(
            parts,
            _read(folder, "transformer/config.json"),
            _read(folder, "vae/config.json"),
            cnet["num_layers"] if cnet else 0,
            f"checkpoint {cfg['id']}",
        )
    train = cfg["train"]
    base = config_folder(train["init"])
    if base is None:
        missing = {"transformer": None, "text_encoder": None, "vae": None}
        return ExpertModels(missing, None, None, 0, f"unknown base {train['init']}")
    layers = train["controlnet_layers"] if EXPERTS[name].controlnet else 0
    built = _meta_expert(name, str(base), max(layers, 1), tuple(train["parts"]))
    parts = {**(pipeline_parts(base) or {}), **built.counts}
    tcfg = built.transformer
    how = f"built from {train['init']}" + (f" + {layers}-block ControlNet" if layers else "")
    if cfg["id"]:
        how += f" (id {cfg['id']} has no config here)"
    return ExpertModels(parts, tcfg, _read(base, "vae/config.json"), layers, how)


def expert_job(task: str, name: str, experts: dict[str, Any], models: dict[str, Any]) -> Job:
    cfg = experts[name]
    frames, height, width = experts["frames"], experts["height"], experts["width"]
    dtype = _dtype(cfg["dtype"])
    offload = experts["cpu_offload"]
    em = expert_models(name, cfg)
    parts = [
        Part(c, cfg["id"] or cfg["train"]["init"], n, dtype, offload, "expert")
        for c, n in em.parts.items()
    ]
    guidance = cfg["guidance"] > 1
    batch = 2 if guidance else 1
    phases = [Phase("text encoder", ["text_encoder"], None)]
    if em.vae is not None:
        enc = vae_activation(em.vae, height, width, dtype, experts["vae_tiling"], decode=False)
        dec = vae_activation(em.vae, height, width, dtype, experts["vae_tiling"], decode=True)
        phases += [Phase("VAE encode", ["vae"], enc), Phase("VAE decode", ["vae"], dec)]
    if em.transformer is not None:
        act = dit_inference(
            em.transformer, frames, height, width, batch, dtype, em.controlnet_layers
        )
        running = ["transformer"] + (["controlnet"] if "controlnet" in em.parts else [])
        phases.append(Phase(f"transformer step (batch {batch})", running, act))
    notes = [em.source]
    editor = {"inpainter": "frame_filler", "global_stylizer": "frame_stylizer"}.get(name)
    if editor:
        ecfg = cfg[editor]
        eparts = pipeline_parts(config_folder(ecfg["id"])) or {"pipeline": None}
        edtype, eoff = _dtype(ecfg["dtype"]), bool(ecfg.get("cpu_offload", False))
        for c, n in eparts.items():
            parts.append(Part(f"{editor}.{c}", ecfg["id"], n, edtype, eoff, editor))
        if ecfg.get("controlnet"):
            folder = config_folder(ecfg["controlnet"])
            n = None
            if folder is not None and (folder / "config.json").is_file():
                import diffusers

                with torch.device("meta"):
                    n = count(
                        diffusers.ControlNetModel.from_config(
                            diffusers.ControlNetModel.load_config(folder)
                        )
                    )
            parts.append(Part(f"{editor}.controlnet", ecfg["controlnet"], n, edtype, False, editor))
        phases.append(
            Phase(f"{editor} (frame 0)", [p.name for p in parts if p.group == editor], None)
        )
    if experts.get("super_resolution", {}).get("enabled"):
        parts, phases = _with_super_resolver(experts, parts, phases, notes, offload)
    if offload:
        notes.append("experts.cpu_offload: one expert component on the GPU at a time")
    if experts["vae_slicing"]:
        notes.append("vae_slicing: no effect (one video per decode)")
    gpus = int(cfg["device"] != "cpu")
    return Job("expert_pairs", task, gpus, parts, phases, notes)


def _with_super_resolver(
    experts: dict[str, Any], parts: list, phases: list, notes: list, offload: bool
) -> tuple[list, list]:
    """An expert job's parts and phases with the super-resolution stage's: the super-resolver
    loaded beside the expert, its VAE coding the whole output size, its transformer one tile at
    a time (``experts.super_resolver.tile``; the whole frame without)."""
    cfg = experts["super_resolver"]
    dtype = _dtype(cfg["dtype"])
    em = expert_models("super_resolver", cfg)
    group = "super_resolver"
    for c, n in em.parts.items():
        parts = [
            *parts,
            Part(f"{group}.{c}", cfg["id"] or cfg["train"]["init"], n, dtype, offload, group),
        ]
    height, width = cfg["height"], cfg["width"]
    tile_h, tile_w = cfg["tile"] or (height, width)
    names = {c: f"{group}.{c}" for c in em.parts}
    phases = [*phases, Phase("super_resolver text encoder", [names.get("text_encoder", "")], None)]
    if em.vae is not None:
        tiling = experts["vae_tiling"]
        for decode, what in ((False, "encode"), (True, "decode")):
            act = vae_activation(em.vae, height, width, dtype, tiling, decode=decode)
            phases.append(
                Phase(f"super_resolver VAE {what} ({height}x{width})", [names["vae"]], act)
            )
    if em.transformer is not None:
        batch = 2 if cfg["guidance"] > 1 else 1
        act = dit_inference(em.transformer, experts["frames"], tile_h, tile_w, batch, dtype, 0)
        phases.append(
            Phase(f"super_resolver step ({tile_h}x{tile_w} tile)", [names["transformer"]], act)
        )
    notes.append(f"super-resolution to {height}x{width}: {em.source}")
    return parts, phases


def train_job(name: str, experts: dict[str, Any]) -> Job:
    cfg = experts[name]
    train = cfg["train"]
    gpus = train["resources"]["gpus"]
    precision = train["mixed_precision"]
    low = {"auto": "bfloat16", "bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32")
    tcfg_cfg = dict(cfg, id=None)  # training builds from train.init
    em = expert_models(name, tcfg_cfg)
    trainable: dict[str, int] = {}
    if em.transformer is not None:
        base = str(config_folder(train["init"]))
        layers = max(em.controlnet_layers, 1)
        trainable = _meta_expert(name, base, layers, tuple(train["parts"])).trainable
    state = 12 + (4 if gpus > 1 else 0)  # grads + AdamW moments (+ DDP buckets), fp32
    parts = []
    for c, n in em.parts.items():
        trained = c in train["parts"]
        dtype = "float32" if trained else low
        t = trainable.get(c, 0) if trained else 0
        parts.append(Part(c, train["init"], n, dtype, False, "expert", t, state if t else 0))
    frames, height, width = train["frames"], train["height"], train["width"]
    batch = train["batch_size"]
    phases = [Phase("text encoder", ["text_encoder"], None)]
    if em.vae is not None:
        enc = vae_activation(em.vae, height, width, low, False, decode=False) * batch
        phases.append(Phase(f"VAE encode (batch {batch})", ["vae"], enc))
    if em.transformer is not None:
        layers = em.transformer["num_layers"] + em.controlnet_layers
        act = dit_training(
            em.transformer, frames, height, width, batch, layers, train["gradient_checkpointing"]
        )
        phases.append(Phase(f"forward + backward (batch {batch})", ["transformer"], act))
    notes = [
        em.source,
        f"per GPU, {gpus} GPU(s) each holding a replica; trained parts "
        f"{', '.join(train['parts'])} in fp32 with {sum(trainable.values()) / 1e9:.2f} B "
        f"trainable; frozen parts in {low}",
    ]
    return Job("train_expert", name, gpus, parts, phases, notes)


def plan(config: dict[str, Any]) -> list[Job]:
    """Every GPU job the config enables, in pipeline order (``config`` has the schema's
    defaults filled, as the Snakefile has them)."""
    from senorita.models import families_for
    from senorita.tasks import asks_llm, enabled_tasks, get

    tasks = [get(t) for t in enabled_tasks(config["tasks"])]
    models = config["models"]
    jobs = []
    if config["dedup"]["enabled"]:
        jobs.append(_model_job("dedup", "once", models, ["clip"]))
    if config["captions"]["enabled"]:
        jobs.append(_model_job("captions", "every shard", models, ["captioner"]))
    if families := families_for(sorted({k for t in tasks for k in t.controls})):
        jobs.append(_model_job("control_maps", "every shard", models, families))
    if any(t.needs_masks for t in tasks):
        jobs.append(_model_job("masks", "every shard", models, ["vlm", "detector", "segmenter"]))
    experts = config["experts"]
    for t in tasks:
        if t.stage == "expert":
            jobs.append(expert_job(t.id, t.expert, experts, models))
    for t in tasks:  # the language model's answers, its own job before the expert's
        if t.stage == "expert" and asks_llm(t.id, experts):
            jobs.append(_model_job("llm_answers", t.id, models, ["llm"]))
    for name in ("remover", "local_stylizer", "inpainter", "global_stylizer"):
        jobs.append(train_job(name, experts))
    if experts["super_resolution"]["enabled"]:
        jobs.append(train_job("super_resolver", experts))
    jobs.append(_model_job("filter_scores", "every task", models, ["clip"]))
    if config["filters"]["judge"]["enabled"]:
        jobs.append(_model_job("judge_scores", "every task", models, ["judge"]))
    jobs.append(Job("device_report", "once", 1, [], [], ["no model"]))
    return jobs


def with_defaults(config: dict[str, Any] | None, schema: str | Path) -> dict[str, Any]:
    """``config`` with the schema's defaults filled in, as the Snakefile fills them."""
    from snakemake.utils import validate

    from senorita.config import config_errors

    config = json.loads(json.dumps(config or {}))
    if problems := config_errors(config, schema):
        raise ValueError("invalid config:\n  " + "\n  ".join(problems))
    validate(config, str(schema))
    return config


# -- output ---------------------------------------------------------------------------------------


def _gb(x: float | None) -> str:
    return "unknown" if x is None else f"{x / GB:.1f}"


def _part_text(p: Part) -> str:
    where = ", offloaded" if p.offloaded else ""
    size = "unknown" if p.params is None else f"{p.params / 1e9:.3g} B"
    extra = f", {p.trainable / 1e9:.2f} B trained" if p.trainable else ""
    return f"{p.name} {size} {p.dtype}{where}{extra}"


def table(jobs: list[Job]) -> str:
    """A Markdown table: one row per job, sizes in GB (10^9 bytes) per GPU."""
    lines = [
        "| rule | target | GPUs | models (parameters, dtype) | weights / GPU | largest activation"
        " | peak / GPU | host |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        name, act = j.activation
        models = "; ".join(_part_text(p) for p in j.parts) or "none"
        peak = f"{j.peak / GB:.1f}"
        if j.unknown:
            peak = f"≥ {peak} (unknown: {', '.join(j.unknown)})"
        elif any(ph.activation is None for ph in j.phases) and act is None and j.parts:
            peak = f"{peak} (weights + {MODEL_MARGIN / GB:.0f} GB margin)"
        activation = "not modelled" if act is None else f"{name}: {act / GB:.2f}"
        lines.append(
            f"| {j.rule} | {j.target} | {j.gpus} | {models} | {j.weights / GB:.1f} "
            f"| {activation} | {peak} | {j.host / GB:.0f} |"
        )
    return "\n".join(lines)


# The schema key of each GPU rule's host memory (``{target}``: the job's expert).
MEM_KEYS = {
    "dedup": "dedup.resources.mem_mb",
    "captions": "captions.resources.mem_mb",
    "control_maps": "control.resources.mem_mb",
    "masks": "masks.resources.mem_mb",
    "filter_scores": "filters.resources.mem_mb",
    "judge_scores": "filters.judge.resources.mem_mb",
    "llm_answers": "models.llm.resources.mem_mb",
    "expert_pairs": "experts.{expert}.resources.mem_mb",
    "train_expert": "experts.{expert}.train.resources.mem_mb",
}


def host_mem_mb(job: Job) -> int:
    """The job's host-memory estimate as a SLURM ``mem_mb``: rounded up to 8 GB."""
    step = 8000
    return int(math.ceil(job.host / 1e6 / step) * step)
