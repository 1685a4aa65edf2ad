"""Tiny randomly initialised models of every family the registry loads, saved in each family's own
format, so the production loading and inference code runs on CPU with no network (the embedded
default and the tests point the registry here). Their outputs are meaningless; their shapes,
dtypes, file formats and code paths are the real ones.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import torch

from senorita.atomic import atomic_path

log = logging.getLogger(__name__)


def build_depth(out: Path) -> Path:
    """Depth Anything (DPT head on a 4-layer, 16-wide DINOv2), with its image processor."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    backbone = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        patch_size=14,
        image_size=56,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 16, 16, 16],
        fusion_hidden_size=16,
        head_hidden_size=8,
        patch_size=14,
        depth_estimation_type="relative",
    )
    model = DepthAnythingForDepthEstimation(config)
    # The real model's preprocessing (keep aspect, multiples of 14, ImageNet statistics), smaller.
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_pad=False,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_hed(out: Path) -> Path:
    """ControlNetHED with 4–8 channels per stage, saved as a state dict like the real one."""
    from senorita.models.hed import DEFAULT_FILENAME, DEPTHS, ControlNetHED

    net = ControlNetHED(widths=(4, 8, 8, 8, 8), depths=DEPTHS)
    with torch.no_grad():
        net.norm.copy_(torch.tensor([123.7, 116.3, 103.5]).view(1, 3, 1, 1))
    path = out / DEFAULT_FILENAME
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(net.state_dict(), tmp)
    return path


def tiny_byte_tokenizer():
    """A byte-level BPE tokenizer with no merges (every byte one token), like OPT's in format."""
    from transformers import GPT2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    specials = ["</s>", "<pad>", "<unk>"]
    vocab = {t: i for i, t in enumerate([*specials, *bytes_to_unicode().values()])}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return GPT2Tokenizer(
            str(Path(tmp) / "vocab.json"),
            str(Path(tmp) / "merges.txt"),
            bos_token="</s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
        )


def build_captioner(out: Path) -> Path:
    """BLIP-2 (1-layer ViT, Q-Former and OPT, 16 wide, 4 query tokens) with its processor."""
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        OPTConfig,
    )

    tokenizer = tiny_byte_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.image_token = "<image>"
    vocab = len(tokenizer)
    text = OPTConfig(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        word_embed_proj_dim=16,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Blip2Config(
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        qformer_config={
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "encoder_hidden_size": 16,
            "vocab_size": vocab,
        },
        text_config=text.to_dict(),
        num_query_tokens=4,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    model = Blip2ForConditionalGeneration(config)
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        num_query_tokens=4,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_clip_tokenizer():
    """CLIP's byte-level BPE with no merges (every byte is a token), built in memory."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    words = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    vocab = {w: i for i, w in enumerate(words)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_clip_text_encoder(tokenizer):
    """A 1-layer, 16-wide CLIP text tower."""
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = tokenizer.get_vocab()
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    return CLIPTextModel(config)


def build_clip(out: Path) -> Path:
    """CLIP (2-layer, 16-wide text and vision towers), its tokenizer and image processor.

    The tokenizer is CLIP's byte-level BPE with no merges (every byte is a token), built in memory;
    the image processor is CLIP's (short side, centre crop, CLIP's mean and std) at 32 px.
    """
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = tiny_clip_tokenizer()
    vocab = tokenizer.get_vocab()
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    # CLIPImageProcessor falls back to its PIL version without torchvision (as here): same steps.
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPModel(config).save_pretrained(out)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    return out


# A minimal chat template in the shape of the real ones: role tags, image and text parts.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_vlm(out: Path) -> Path:
    """LLaVA (2-layer CLIP vision tower, 1-layer Llama) with a chat-template processor: the
    image-text-to-text chat interface any newer VLM offers."""
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = tiny_byte_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    config = LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=CHAT_TEMPLATE,
    )
    LlavaForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_detector(out: Path) -> Path:
    """Grounding DINO (1-block-per-stage Swin, 1-layer BERT, 32-wide transformer) with its
    processor. Traps: d_model a multiple of 32 (GroupNorm), at least two decoder layers."""
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        ".",
        *letters,
        *("##" + c for c in letters),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer(str(Path(tmp) / "vocab.txt"))
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin",
            "embed_dim": 16,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 1, 1],
            "window_size": 4,
            "image_size": 128,
            "out_features": ["stage2", "stage3", "stage4"],
            "out_indices": [2, 3, 4],
        },
        text_config={
            "model_type": "bert",
            "vocab_size": len(words),
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 64,
        },
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=20,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
    )
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(
            size={"shortest_edge": 128, "longest_edge": 224}
        ),
        tokenizer=tokenizer,
    )
    GroundingDinoForObjectDetection(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


# SAM 2.1 tiny's config shrunk with hydra overrides (0.9 M parameters, 128 px). Traps: a global
# attention block must not open a stage, and the memory encoder's in_dim and mask_downsampler
# embed_dim default to 256.
_M = "++model."
SAM2_TINY_OVERRIDES = [
    f"{_M}image_size=128",
    f"{_M}num_maskmem=3",
    f"{_M}image_encoder.trunk.embed_dim=16",
    f"{_M}image_encoder.trunk.stages=[1,1,2,1]",
    f"{_M}image_encoder.trunk.global_att_blocks=[3]",
    f"{_M}image_encoder.trunk.window_spec=[4,4,4,4]",
    f"{_M}image_encoder.neck.d_model=32",
    f"{_M}image_encoder.neck.position_encoding.num_pos_feats=32",
    f"{_M}image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    f"{_M}memory_attention.d_model=32",
    f"{_M}memory_attention.num_layers=1",
    f"{_M}memory_attention.layer.d_model=32",
    f"{_M}memory_attention.layer.dim_feedforward=64",
    f"{_M}memory_attention.layer.self_attention.embedding_dim=32",
    f"{_M}memory_attention.layer.self_attention.feat_sizes=[8,8]",
    f"{_M}memory_attention.layer.cross_attention.embedding_dim=32",
    f"{_M}memory_attention.layer.cross_attention.feat_sizes=[8,8]",
    f"{_M}memory_attention.layer.cross_attention.kv_in_dim=32",
    f"{_M}memory_encoder.out_dim=32",
    f"{_M}memory_encoder.in_dim=32",
    f"{_M}memory_encoder.position_encoding.num_pos_feats=32",
    f"{_M}memory_encoder.mask_downsampler.embed_dim=32",
    f"{_M}memory_encoder.fuser.layer.dim=32",
    f"{_M}memory_encoder.fuser.num_layers=1",
]
SAM2_TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def build_segmenter(out: Path) -> Path:
    """SAM 2.1 in its own format: a state dict under "model" plus the config and overrides."""
    from sam2.build_sam import build_sam2_video_predictor

    from senorita.models.segmenter import MANIFEST

    predictor = build_sam2_video_predictor(
        SAM2_TINY_CONFIG, None, device="cpu", hydra_overrides_extra=SAM2_TINY_OVERRIDES
    )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.pt") as tmp:
        torch.save({"model": predictor.state_dict()}, tmp)
    meta = {"config": SAM2_TINY_CONFIG, "checkpoint": "model.pt", "overrides": SAM2_TINY_OVERRIDES}
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


# -- the four experts (CogVideoX pipelines), sharing one tiny T5, VAE and scheduler -------------


def tiny_t5():
    """A 2-layer, 32-wide T5 encoder and a character-level T5 tokenizer built in memory."""
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", "▁", *(chr(c) for c in range(32, 127))]
    tokenizer = T5Tokenizer(vocab=[(p, 0.0) for p in pieces], extra_ids=0)
    config = T5Config(
        vocab_size=len(pieces), d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4
    )
    return tokenizer, T5EncoderModel(config)


def tiny_vae():
    """CogVideoX's 3D VAE with four 8-channel blocks and 4 latent channels (×8 space, ×4 time)."""
    from diffusers import AutoencoderKLCogVideoX

    return AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )


def tiny_scheduler():
    """CogVideoX-2B's scheduler settings (v-prediction, zero terminal SNR, trailing steps)."""
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
    )


def tiny_transformer(in_channels: int, rotary: bool):
    """A 2-block CogVideoX transformer; ``rotary`` as the 5B models (2B uses sincos positions)."""
    from senorita.experts.transformer import CogVideoXControlTransformer3DModel

    return CogVideoXControlTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,  # rotary embeddings split it in 1/4 + 3/8 + 3/8: even parts
        in_channels=in_channels,
        out_channels=4,
        time_embed_dim=4,
        text_embed_dim=32,
        num_layers=2,
        sample_width=74,
        sample_height=42,
        sample_frames=33,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
        use_rotary_positional_embeddings=rotary,
    )


def build_expert(out: Path, name: str) -> Path:
    """One expert pipeline, made the way the real ones are: a base transformer (2B-like with
    sincos positions, or 5B-I2V-like with rotary ones), widened to 3 × latent channels for the
    inpainting experts, and a ControlNet copied from its first block for the stylizers."""
    from senorita.experts import PIPELINES, CogVideoXControlNetModel, widen_input

    latent = 4
    i2v = name in ("global_stylizer", "inpainter")
    base = tiny_transformer(2 * latent if i2v else latent, rotary=i2v)
    transformer = base if name == "global_stylizer" else widen_input(base, 3 * latent)
    controlnet = None
    if name in ("local_stylizer", "global_stylizer"):
        controlnet = CogVideoXControlNetModel.from_transformer(
            transformer, num_layers=1, control_channels=3 * latent
        )
    tokenizer, text_encoder = tiny_t5()
    pipe = PIPELINES[name](
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_vae(),
        transformer=transformer,
        scheduler=tiny_scheduler(),
        controlnet=controlnet,
    )
    pipe.save_pretrained(out)
    return out


def build_llm(out: Path) -> Path:
    """A 1-layer, 16-wide Llama with a byte-level tokenizer and a chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_byte_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_frame_filler(out: Path) -> Path:
    """FLUX.1-Fill (one double and one single block, a one-block VAE with 2 latent channels).
    Its transformer takes 8 × latent + 4 × vae_scale² channels and predicts 4 × latent."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
    )

    tokenizer = tiny_clip_tokenizer()
    tokenizer_2, text_encoder_2 = tiny_t5()
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        block_out_channels=(8,),
        latent_channels=2,
        norm_num_groups=2,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=20,
        out_channels=8,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=16,
        axes_dims_rope=[4, 6, 6],
    )
    FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=tiny_clip_text_encoder(tokenizer),
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    ).save_pretrained(out)
    return out


def build_frame_stylizer(out: Path) -> Path:
    """Stable Diffusion 1.5 with a ControlNet (two-level 8/16-wide UNet and ControlNet)."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        StableDiffusionControlNetPipeline,
        UNet2DConditionModel,
    )

    blocks = {
        "block_out_channels": (8, 16),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "cross_attention_dim": 16,
        "norm_num_groups": 4,
        "attention_head_dim": 2,
    }
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        **blocks,
    )
    controlnet = ControlNetModel(
        in_channels=4, conditioning_embedding_out_channels=(4, 8), **blocks
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
    )
    tokenizer = tiny_clip_tokenizer()
    StableDiffusionControlNetPipeline(
        vae=vae,
        text_encoder=tiny_clip_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=unet,
        controlnet=controlnet,
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(out)
    return out


def build_cogvideox_base(out: Path, i2v: bool) -> Path:
    """A base CogVideoX pipeline as the hub ships one (diffusers' own classes): the 2B-like
    text-to-video (sincos positions, latent-channel input) or the 5B-I2V-like image-to-video
    (rotary positions, video and image latents in). Training builds the experts from these."""
    from diffusers import (
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    latent = 4
    template = tiny_transformer(2 * latent if i2v else latent, rotary=i2v)
    transformer = CogVideoXTransformer3DModel.from_config(template.config)
    transformer.load_state_dict(template.state_dict())
    tokenizer, text_encoder = tiny_t5()
    cls = CogVideoXImageToVideoPipeline if i2v else CogVideoXPipeline
    cls(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_vae(),
        transformer=transformer,
        scheduler=tiny_scheduler(),
    ).save_pretrained(out)
    return out


# -- what the tiny_models rule builds --------------------------------------------------------------

# The model registry's families (config models.*), which the embedded default points here.
FAMILIES = ("depth", "hed", "captioner", "clip", "vlm", "detector", "segmenter", "llm")
EXPERTS = ("remover", "local_stylizer", "global_stylizer", "inpainter")
FRAME_EDITORS = ("frame_filler", "frame_stylizer")
BASES = ("cogvideox_2b", "cogvideox_5b_i2v")  # what the experts are trained from

BUILDERS = {
    "depth": build_depth,
    "hed": build_hed,
    "captioner": build_captioner,
    "clip": build_clip,
    "vlm": build_vlm,
    "detector": build_detector,
    "segmenter": build_segmenter,
    "llm": build_llm,
    **{name: (lambda out, _name=name: build_expert(out, _name)) for name in EXPERTS},
    "frame_filler": build_frame_filler,
    "frame_stylizer": build_frame_stylizer,
    "cogvideox_2b": lambda out: build_cogvideox_base(out, i2v=False),
    "cogvideox_5b_i2v": lambda out: build_cogvideox_base(out, i2v=True),
}
ALL = tuple(BUILDERS)


def build_tiny_models(out: Path, families: tuple[str, ...] = ALL, seed: int = 0) -> dict:
    """Build each named tiny model in ``out/<name>``; returns the folders."""
    folders = {}
    for family in families:
        torch.manual_seed(seed)
        folder = out / family
        BUILDERS[family](folder)
        folders[family] = folder
        log.info("tiny %s model written to %s", family, folder)
    return folders
