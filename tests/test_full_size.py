"""The experts at the paper's clip size (33 × 336 × 592, latent 9 × 42 × 74).

- CogVideoX-5B-I2V's learned positional table (made for 49 × 480 × 720) is resampled to the
  clip's latent grid; diffusers alone refuses any other height or width.
- The four experts built from the real checkpoints' configs on the meta device (no weights, no
  memory) have the published parameter counts and run one forward with the pipelines' shapes.
- ``benchmarks/experts_gpu.py --tiny`` runs, so the GPU benchmark cannot rot.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.utils import logging as diffusers_logging

from senorita.experts import CogVideoXControlNetModel, CogVideoXControlTransformer3DModel
from senorita.experts.full_size import (
    EXPERTS,
    build_on_meta,
    clip_inputs,
    forward,
    parameters,
    transformer_config,
)
from senorita.experts.transformer import learned_positions

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = REPO / "benchmarks" / "experts_gpu.py"

# -- learned positions (5B-I2V) at another size ----------------------------------------------------

# A 5B-I2V-like transformer: rotary AND learned positions; trained size 13 frames × 12 × 16
# latent pixels (4 latent frames of 6 × 8 tokens), 8 text tokens.
I2V_LIKE = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=8,
    out_channels=4,
    time_embed_dim=4,
    text_embed_dim=32,
    num_layers=2,
    sample_width=16,
    sample_height=12,
    sample_frames=13,
    patch_size=2,
    temporal_compression_ratio=4,
    max_text_seq_length=8,
    use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=True,
)


def i2v_like() -> CogVideoXControlTransformer3DModel:
    torch.manual_seed(0)
    model = CogVideoXControlTransformer3DModel(**I2V_LIKE).eval()
    with torch.no_grad():  # a table that is not sincos, as a trained one is not
        model.patch_embed.pos_embedding.normal_()
    return model


def run(model, frames: int, height: int, width: int, controlnet=None, seed: int = 1):
    from senorita.experts.transformer import rotary_embedding

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, frames, 8, height, width, generator=g)
    text = torch.randn(2, 8, 32, generator=g)
    t = torch.tensor([500, 500])
    rope = rotary_embedding(model.config, frames, height // 2, width // 2)
    extra = {}
    if controlnet is not None:
        control = torch.randn(2, frames, 12, height, width, generator=g)
        extra["control_residuals"] = controlnet(x, control, text, t, image_rotary_emb=rope)
    return model(x, text, t, image_rotary_emb=rope, **extra).sample


def test_learned_positions_run_at_another_size_where_diffusers_refuses():
    ours = i2v_like()
    plain = CogVideoXTransformer3DModel.from_config(ours.config).eval()
    plain.load_state_dict(ours.state_dict())
    # 3 latent frames of 8 × 12 latent pixels: neither the trained frames nor the trained size.
    with torch.no_grad(), pytest.raises(ValueError, match="different resolution"):
        run(plain, 3, 8, 12)
    out = run(ours, 3, 8, 12)
    assert out.shape == (2, 3, 4, 8, 12) and torch.isfinite(out).all()
    # The table is used, not dropped: another table gives another output.
    with torch.no_grad():
        other = run(ours, 3, 8, 12)
        ours.patch_embed.pos_embedding.mul_(2)
        assert not torch.allclose(other, run(ours, 3, 8, 12))
    # Training goes through the same forward: gradients reach the weights.
    ours.train()
    run(ours, 3, 8, 12).square().mean().backward()
    assert ours.patch_embed.proj.weight.grad.abs().sum() > 0


def test_learned_positions_at_the_trained_size_are_diffusers_own():
    ours = i2v_like()
    plain = CogVideoXTransformer3DModel.from_config(ours.config).eval()
    plain.load_state_dict(ours.state_dict())
    with torch.no_grad():
        assert torch.equal(run(ours, 4, 12, 16), run(plain, 4, 12, 16))
    table = ours.patch_embed.pos_embedding
    assert torch.equal(learned_positions(ours.patch_embed, 8, 4, 12, 16), table)


def test_learned_positions_are_the_table_sampled_where_the_rotary_embedding_puts_the_tokens():
    pe = i2v_like().float().patch_embed  # (the sincos-initialised table is float64)
    # A table linear in (frame, row, column), so interpolation reproduces it exactly.
    t, r, c = torch.meshgrid(torch.arange(4.0), torch.arange(6.0), torch.arange(8.0), indexing="ij")
    video = (100 * t + 10 * r + c).flatten()[:, None].expand(-1, pe.embed_dim)
    with torch.no_grad():
        pe.pos_embedding[0, :8] = -1
        pe.pos_embedding[0, 8:] = video
    got = learned_positions(pe, 8, 3, 8, 12)  # 3 frames of 4 × 6 tokens
    assert got.shape == (1, 8 + 3 * 4 * 6, pe.embed_dim)
    assert torch.equal(got[0, :8], torch.full((8, pe.embed_dim), -1.0))
    # The 4 × 6 grid fits the trained 6 × 8 grid as 5 × 8 from the top-left corner (diffusers'
    # resize-crop, as the rotary embedding): rows at 0..5·3/4, columns at 0..8·5/6; frames are
    # the table's first three (what the original CogVideoX code does for shorter videos).
    rows = torch.linspace(0, 3.75, 4)
    cols = torch.linspace(0, 20 / 3, 6)
    tt, rr, cc = torch.meshgrid(torch.arange(3.0), rows, cols, indexing="ij")
    want = (100 * tt + 10 * rr + cc).flatten()
    torch.testing.assert_close(got[0, 8:, 0], want)
    assert torch.equal(got[0, 8:, 0], got[0, 8:, -1])
    # Fewer frames at the trained height and width: exactly the table's first frames.
    assert torch.equal(learned_positions(pe, 8, 2, 12, 16), pe.pos_embedding[:, : 8 + 2 * 48])


def test_the_controlnet_resamples_learned_positions_too_and_starts_as_a_no_op():
    model = i2v_like()
    controlnet = CogVideoXControlNetModel.from_transformer(
        model, num_layers=1, control_channels=12
    ).eval()
    with torch.no_grad():
        plain = run(model, 3, 8, 12)
        assert torch.equal(run(model, 3, 8, 12, controlnet=controlnet), plain)
        for p in [controlnet.control_embed.weight, *(m.weight for m in controlnet.projections)]:
            p.add_(0.1)
        assert not torch.allclose(run(model, 3, 8, 12, controlnet=controlnet), plain)


# -- the four experts at full size, on the meta device ---------------------------------------------

# Published sizes (transformer, ControlNet of 6 blocks), in parameters.
PUBLISHED = {
    "THUDM/CogVideoX-2b": (1.69e9, 0.368e9),
    "THUDM/CogVideoX-5b-I2V": (5.57e9, 0.865e9),
}


def dense_flops(config: dict, layers: int, tokens: int, batch: int) -> float:
    """The matmul FLOPs of ``layers`` CogVideoX blocks: q, k, v, out (8·N·d²), the 4×
    feed-forward (16·N·d²) and attention (4·N²·d); embeddings and norms left out."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    return batch * layers * (24 * tokens * d * d + 4 * tokens * tokens * d)


@pytest.mark.parametrize("expert", list(EXPERTS))
def test_each_expert_at_full_size_has_the_published_size_and_runs_a_paper_clip(expert):
    from torch.utils.flop_counter import FlopCounterMode

    arch = EXPERTS[expert]
    transformer, controlnet = build_on_meta(expert)
    size, control_size = PUBLISHED[arch.base]
    assert parameters(transformer) == pytest.approx(size, rel=0.01)
    assert transformer.config.in_channels == (48 if arch.inpainting else 32)
    assert (controlnet is not None) == arch.controlnet
    if controlnet is not None:
        assert parameters(controlnet) == pytest.approx(control_size, rel=0.01)
        assert controlnet.config.num_layers == 6 and controlnet.config.control_channels == 48
    # 33 frames of 336 × 592: latent 9 × 42 × 74, CFG batch 2, 226 text tokens.
    inputs = clip_inputs(transformer, controlnet, 33, 336, 592, batch=2)
    assert inputs["hidden_states"].shape == (2, 9, transformer.config.in_channels, 42, 74)
    assert inputs["encoder_hidden_states"].shape == (2, 226, 4096)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = forward(transformer, controlnet, inputs)
    assert out.shape == (2, 9, 16, 42, 74) and out.device.type == "meta"
    config = transformer_config(expert)
    tokens = 226 + 9 * 21 * 37
    want = dense_flops(config, config["num_layers"], tokens, 2)
    if controlnet is not None:
        want += dense_flops(config, 6, tokens, 2)
    assert counter.get_total_flops() == pytest.approx(want, rel=0.01)


def test_the_builder_takes_a_config_dict_or_folder():
    from senorita.testing.real_configs import folder, real_config

    repo = "THUDM/CogVideoX-5b-I2V"
    by_folder, _ = build_on_meta("inpainter", folder(repo))
    by_dict, _ = build_on_meta("inpainter", real_config(repo, "transformer/config.json"))
    assert parameters(by_folder) == parameters(by_dict) == parameters(build_on_meta("inpainter")[0])
    with pytest.raises(FileNotFoundError, match=r"no transformer config\.json"):
        build_on_meta("inpainter", REPO / "no-such-folder")
    with pytest.raises(ValueError, match="unknown expert"):
        build_on_meta("colorizer")


# -- the GPU benchmark's CPU mode ------------------------------------------------------------------


def test_the_expert_benchmark_runs_at_twin_size_and_prints_its_table(monkeypatch, capsys):
    # In this process (the stack is imported already): its own would spend 8 s importing it.
    spec = importlib.util.spec_from_file_location("experts_gpu", BENCHMARK)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(sys, "argv", [str(BENCHMARK), "--tiny"])
    threads, verbosity = torch.get_num_threads(), diffusers_logging.get_verbosity()
    try:
        bench.main()
    finally:  # it sets one thread and quieter diffusers for itself
        torch.set_num_threads(threads)
        diffusers_logging.set_verbosity(verbosity)
    stdout = capsys.readouterr().out
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("expert "))
    names = lines[header].split()
    assert "s/step" in names and "TFLOP/step" in names and "x_floor" in names
    rows = {line.split()[0]: line.split() for line in lines[header + 1 : header + 1 + len(EXPERTS)]}
    assert set(rows) == set(EXPERTS)
    for name, cells in rows.items():
        step, tiles, clip, flops = (float(cells[i]) for i in (2, 3, 4, 6))
        assert tiles == (9 if name == "super_resolver" else 1)  # 2x in 3 x 3 tiles
        # The clip's seconds are printed to 2 decimals: within half of the last digit.
        assert step > 0 and flops > 0
        assert clip == pytest.approx(50 * step * tiles, rel=0.01, abs=0.005)
    # Controlled experts cost more FLOPs than their uncontrolled siblings.
    assert float(rows["local_stylizer"][6]) > float(rows["remover"][6])
    # The super-resolver's goal is the fastest expert's clip in the same run.
    fastest = min(float(c[4]) for n, c in rows.items() if n != "super_resolver")
    assert float(rows["super_resolver"][-2]) == pytest.approx(fastest, abs=0.01)
