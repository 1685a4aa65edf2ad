"""The expert model classes and the four pipelines, on tiny random weights (CPU).

Random weights make no claim on quality; what is checked is what the design promises: the
ControlNet and the widened patch embedder start as no-ops, the pipelines round-trip through
diffusers' folder format, produce the requested frames and size, are seeded, and paste the
background back exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from senorita.experts import (
    PIPELINES,
    CogVideoXControlNetModel,
    CogVideoXControlTransformer3DModel,
    widen_input,
)
from senorita.experts.pipeline import cpu_generator
from senorita.testing.tiny import EXPERTS, build_tiny_models, tiny_transformer

T, H, W = 9, 64, 112  # 8k+1 frames, multiples of 16


def inputs(channels: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, channels, 8, 14, generator=g)
    text = torch.randn(1, 16, 32, generator=g)
    return x, text, torch.tensor([500])


@pytest.mark.parametrize("rotary", [False, True])
def test_the_controlnet_changes_nothing_until_its_weights_do(rotary):
    torch.manual_seed(0)
    transformer = tiny_transformer(4, rotary=rotary).eval()
    controlnet = CogVideoXControlNetModel.from_transformer(
        transformer, num_layers=1, control_channels=12
    ).eval()
    x, text, t = inputs(4)
    control = torch.randn(1, 3, 12, 8, 14)
    rope = None
    if rotary:
        from diffusers.models.embeddings import get_3d_rotary_pos_embed

        rope = get_3d_rotary_pos_embed(16, ((0, 0), (4, 7)), (4, 7), 3)
    with torch.no_grad():
        plain = transformer(x, text, t, image_rotary_emb=rope).sample
        residuals = controlnet(x, control, text, t, image_rotary_emb=rope)
        assert len(residuals) == 1 and residuals[0].shape == (1, 3 * 4 * 7, 32)
        steered = transformer(x, text, t, image_rotary_emb=rope, control_residuals=residuals)
        assert torch.equal(plain, steered.sample)
        # Its shared parts are copies of the transformer's.
        assert torch.equal(controlnet.patch_embed.proj.weight, transformer.patch_embed.proj.weight)
        for p in [controlnet.control_embed.weight, *(m.weight for m in controlnet.projections)]:
            p.add_(0.1)
        residuals = controlnet(x, control, text, t, image_rotary_emb=rope)
        moved = transformer(x, text, t, image_rotary_emb=rope, control_residuals=residuals)
        assert not torch.allclose(plain, moved.sample)


def stages(transformer, residuals):
    """What enters each main block and the final norm, and what each block returns, in a forward
    with ``residuals``: ([(video, text) into block k] + [video into norm_final], [(video, text)
    out of block k])."""
    into, out = [], []
    hooks = []
    for block in transformer.transformer_blocks:
        hooks.append(
            block.register_forward_pre_hook(
                lambda m, args, kw: into.append((kw["hidden_states"], kw["encoder_hidden_states"])),
                with_kwargs=True,
            )
        )
        hooks.append(block.register_forward_hook(lambda m, args, result: out.append(result)))
    hooks.append(
        transformer.norm_final.register_forward_pre_hook(
            lambda m, args: into.append((args[0], None))
        )
    )
    try:
        with torch.no_grad():
            transformer(*inputs(4), control_residuals=residuals)
    finally:
        for hook in hooks:
            hook.remove()
    return into, out


@pytest.mark.parametrize(
    ("blocks", "n", "used"),
    [
        (5, 2, [0, 1, 0, 1, 0]),  # more main blocks than residuals: they cycle
        (2, 3, [0, 1]),  # fewer: the last residual is not used
        (3, 3, [0, 1, 2]),
    ],
)
def test_control_block_k_mod_n_feeds_main_block_k(blocks, n, used):
    torch.manual_seed(0)
    config = dict(tiny_transformer(4, rotary=False).config, num_layers=blocks)
    transformer = CogVideoXControlTransformer3DModel.from_config(config).eval()
    g = torch.Generator().manual_seed(1)
    residuals = [torch.randn(1, 3 * 4 * 7, 32, generator=g) for _ in range(n)]
    if n == 2:
        residuals[1] = torch.zeros_like(residuals[1])  # a zero residual adds nothing
    plain, plain_out = stages(transformer, None)
    into, out = stages(transformer, residuals)
    assert len(into) == blocks + 1 and len(out) == blocks
    assert torch.equal(into[0][0], plain[0][0])  # nothing is added before the first block
    for k in range(blocks):
        video, text = out[k]
        # Main block k's output plus control residual k mod n goes on to the next stage...
        assert torch.equal(into[k + 1][0], video + residuals[used[k]]), k
        if not residuals[used[k]].any():
            assert torch.equal(into[k + 1][0], video), k
        if k + 1 < blocks:
            assert torch.equal(into[k + 1][1], text), k  # ...and the text tokens get none.
        # Without residuals each block's output goes on as it is.
        assert torch.equal(plain[k + 1][0], plain_out[k][0]), k


def test_the_widened_transformer_equals_its_base_on_the_base_channels():
    torch.manual_seed(0)
    base = tiny_transformer(4, rotary=False).eval()
    wide = widen_input(base, 12).eval()
    assert isinstance(wide, CogVideoXControlTransformer3DModel)
    assert wide.config.in_channels == 12 and wide.config.out_channels == 4
    x, text, t = inputs(4)
    extra = torch.cat([x, torch.zeros(1, 3, 8, 8, 14)], dim=2)
    with torch.no_grad():
        assert torch.allclose(base(x, text, t).sample, wide(extra, text, t).sample, atol=1e-6)
        weight = wide.patch_embed.proj.weight
        assert torch.equal(weight[:, :4], base.patch_embed.proj.weight)
        assert not weight[:, 4:].any()
    with pytest.raises(ValueError, match="narrow"):
        widen_input(base, 2)


def test_the_controlnet_round_trips_through_save_pretrained(tmp_path):
    torch.manual_seed(0)
    net = CogVideoXControlNetModel.from_transformer(tiny_transformer(4, False), 1, 12)
    net.save_pretrained(tmp_path)
    back = CogVideoXControlNetModel.from_pretrained(tmp_path)
    assert back.config.control_channels == 12 and back.config.num_layers == 1
    for (name, a), (_, b) in zip(net.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


# -- the pipelines ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    root = tmp_path_factory.mktemp("experts")
    folders = build_tiny_models(root, EXPERTS)
    pipes = {}
    for name, folder in folders.items():
        pipe = PIPELINES[name].from_pretrained(folder)
        pipe.set_progress_bar_config(disable=True)
        pipes[name] = pipe
    return pipes


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    mask = np.zeros((T, H, W), bool)
    mask[:, 16:48, 20:70] = True
    return frames, mask


def run(name, pipe, frames, mask, seed, **kw):
    """The expert's pipeline on the clip, called as the expert job calls it (keywords)."""
    kw.update(video=frames, num_inference_steps=2, generator=cpu_generator(seed))
    if name == "remover":
        return pipe(mask_video=mask, prompt="Remove dog", negative_prompt="Generate dog", **kw)
    if name == "local_stylizer":
        controls = [frames, frames, frames]
        return pipe(mask_video=mask, control_video=controls, prompt="It's a golden dog.", **kw)
    if name == "global_stylizer":
        kw.pop("paste_back", None)
        controls = [frames, frames, frames]
        prompt = "a dog, in ukiyo-e style."
        return pipe(image=frames[0], control_video=controls, prompt=prompt, **kw)
    return pipe(mask_video=mask, image=frames[0], prompt="It's cat.", **kw)


@pytest.mark.parametrize("name", EXPERTS)
def test_each_expert_pipeline_makes_the_requested_video_and_is_seeded(experts, clip, name):
    frames, mask = clip
    pipe = experts[name]
    assert type(pipe).__name__ == PIPELINES[name].__name__
    assert (pipe.controlnet is not None) == (name in ("local_stylizer", "global_stylizer"))
    out = run(name, pipe, frames, mask, seed=3)
    assert out.frames.shape == (T, H, W, 3) and out.frames.dtype == np.uint8
    again = run(name, pipe, frames, mask, seed=3)
    assert np.array_equal(out.frames, again.frames)
    other = run(name, pipe, frames, mask, seed=4)
    assert not np.array_equal(out.generated, other.generated)


@pytest.mark.parametrize("name", ["remover", "local_stylizer", "inpainter"])
def test_paste_back_keeps_every_pixel_outside_the_mask(experts, clip, name):
    frames, mask = clip
    out = run(name, experts[name], frames, mask, seed=0, paste_back=True)
    assert np.array_equal(out.frames[~mask], frames[~mask])
    assert np.array_equal(out.frames[mask], out.generated[mask])
    raw = run(name, experts[name], frames, mask, seed=0, paste_back=False)
    assert np.array_equal(raw.frames, raw.generated)
    assert not np.array_equal(raw.frames[~mask], frames[~mask])  # the model repaints everything


def test_pipelines_round_trip_through_save_pretrained(experts, clip, tmp_path):
    frames, mask = clip
    experts["local_stylizer"].save_pretrained(tmp_path)
    back = PIPELINES["local_stylizer"].from_pretrained(tmp_path)
    back.set_progress_bar_config(disable=True)
    a = run("local_stylizer", experts["local_stylizer"], frames, mask, seed=1)
    b = run("local_stylizer", back, frames, mask, seed=1)
    assert np.array_equal(a.frames, b.frames)


def test_frames_the_vae_cannot_take_are_refused(experts, clip):
    frames, mask = clip
    for t in (8, 5):  # 5 is 4k+1, but makes an even number of latent frames
        with pytest.raises(ValueError, match="8k\\+1"):
            experts["remover"](
                video=frames[:t], mask_video=mask[:t], prompt="Remove dog", num_inference_steps=1
            )


def test_the_frame_zero_editors_round_trip_and_are_seeded(tmp_path, clip):
    from senorita.models.frame_editors import FrameFiller, FrameStylizer

    folders = build_tiny_models(tmp_path, ("frame_filler", "frame_stylizer"))
    frames, mask = clip
    common = {"revision": "main", "dtype": "auto", "device": "cpu", "steps": 2}
    filler = FrameFiller.load(
        {**common, "id": str(folders["frame_filler"]), "guidance": 30.0, "max_sequence_length": 16}
    )

    def fill(seed):
        return filler(
            image=frames[0], mask_image=mask[0], prompt="a cat", generator=cpu_generator(seed)
        )

    filled = fill(1)
    assert filled.shape == (H, W, 3) and filled.dtype == np.uint8
    assert np.array_equal(filled, fill(1))
    stylizer = FrameStylizer.load(
        {**common, "id": str(folders["frame_stylizer"]), "guidance": 7.5, "controlnet": None}
    )

    def style(seed):
        prompt = "a dog, in ukiyo-e style"
        return stylizer(image=frames[0], prompt=prompt, generator=cpu_generator(seed))

    styled = style(1)
    assert styled.shape == (H, W, 3) and styled.dtype == np.uint8
    assert np.array_equal(styled, style(1))
    assert not np.array_equal(styled, style(2))
