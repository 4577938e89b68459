"""GLDiTalker: the motion VQ-VAE reconstructs, the sampler is deterministic per seed and differs across seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import accelerator_or_skip, shared_path

TINY = {"architecture": "gldit", "name": "tiny_gldit", "levels": 2, "graph_channels": [4, 8, 8], "latent_dim": 8, "code_groups": 2,
        "codebook_size": 32, "n_basis": 8, "d_model": 16, "n_heads": 2, "n_layers": 1, "sampling_steps": 4,
        "window_frames": 60, "overlap_frames": 16}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_vqvae_learns_to_reconstruct_and_takes_follow_the_seed(tiny_corpus, tmp_path):
    from core.models import Conditioning, load_model
    from core.train import TrainConfig, train

    shared_path("flame/FLAME_sample.ply")
    config = TrainConfig(steps=150, batch=2, crop_frames=40, validate_every=1000, lr=3e-3,
                         model={**TINY, "vq_share": 0.8})
    lines = []
    folder = train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append)
    assert " rec " in lines[0] and "denoise" in lines[-2], lines  # stage 1, then stage 2
    history = json.loads((tmp_path / "run" / "model" / "training.json").read_text())["history"]
    stage1 = [h["loss"] for h in history if "loss" in h][:1]
    model = load_model(folder)  # the mesh graph comes back from the weights

    from core.data import load_clips

    clip = load_clips(str(tiny_corpus), "train")[0]
    truth = torch.from_numpy(clip.vertices() - clip.template[None])[None, :40]
    with torch.no_grad():
        quantised, _, codes = model.vqvae.quantise(model.vqvae.encode(truth))
        rebuilt = model.vqvae.decode(quantised, 40)
    moving = truth.norm(dim=-1).amax(dim=(0, 1)) > 1e-3  # vertices that move over 1 mm: lips, jaw
    error_mm = (rebuilt - truth)[..., moving, :].norm(dim=-1).mean().item() * 1000
    still_mm = truth[..., moving, :].norm(dim=-1).mean().item() * 1000  # the error of predicting no motion
    assert error_mm < still_mm, (error_mm, still_mm, stage1)
    assert codes.shape == (1, 20, 2)  # 20 latent frames for 40 motion frames, 2 factors each

    audio = np.random.default_rng(0).normal(size=16000 * 3).astype(np.float32) * 0.1
    take = lambda seed: model.predict(audio, clip.template, Conditioning(seed=seed)).vertex_offsets()  # noqa: E731
    first, again, other = take(1), take(1), take(2)
    assert first.shape == (90, 5023, 3)
    assert np.array_equal(first, again)
    assert np.abs(first - other).max() > 0


def test_the_denoiser_stage_gets_its_own_learning_rate_schedule():
    from core.models import build_model
    from core.train import learning_rate_factor

    shared_path("flame/FLAME_sample.ply")
    starts = build_model({**TINY, "vq_share": 0.6}).training_stage_starts
    assert starts == (0.6,)
    rates = [learning_rate_factor(step, 1000, starts) for step in range(1000)]
    # stage 1 warms up and decays to the floor; stage 2 warms up again from its first step
    assert rates[599] == pytest.approx(0.02, abs=1e-3) and rates[600] < rates[620] == pytest.approx(1.02, abs=0.01)
    assert max(rates[:600]) == pytest.approx(1.02, abs=0.01) and rates[999] < 0.03
    # a model in one stage keeps one warm-up and one decay over the whole run
    single = [learning_rate_factor(step, 1000) for step in range(1000)]
    assert single[600] == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.6)) + 0.02)


def test_stage_two_lip_losses_train_the_denoiser_through_the_frozen_decoder():
    from core.models import build_model

    shared_path("flame/FLAME_sample.ply")
    torch.manual_seed(0)
    model = build_model({**TINY, "vq_share": 0.5, "weight_motion": 1.0, "weight_latent_velocity": 1.0})
    torch.nn.init.normal_(model.vqvae.basis.weight, std=1e-3)  # a trained stage 1 moves the mesh
    batch = {"features": torch.randn(2, 20, 80), "style": torch.ones(2, 1), "progress": 0.9,
             "target_mm": torch.randn(2, 20, 5023, 3), "lips": torch.zeros(2, 5023), "contact": torch.zeros(2, 20)}
    batch["lips"][:, :40] = 1.0
    batch["contact"][:, 6:10] = 1.0
    loss, parts = model.training_loss(batch)
    assert parts["stage"] == 2 and {"denoise", "latent_vel", "lip", "contact"} <= set(parts)
    loss.backward()
    assert all(p.grad is None for p in model.vqvae.parameters())
    assert model.denoiser.out.weight.grad.abs().sum() > 0
    # without them, the denoiser learns from the latent error alone, as before
    plain = build_model({**TINY, "vq_share": 0.5})
    assert set(plain.training_loss(batch)[1]) == {"stage", "denoise"}


def test_guidance_changes_the_take_and_is_refused_where_nothing_samples(diffusion_model, flame_mesh):
    from core.errors import ModelError
    from core.models import Conditioning, load_model
    from core.pipeline import animate_takes

    template, triangles = flame_mesh
    model = load_model(diffusion_model)
    audio = np.random.default_rng(1).normal(size=16000 * 2).astype(np.float32) * 0.1
    take = lambda **options: model.predict(audio, template, Conditioning(seed=3, **options))  # noqa: E731
    own, stated = take(), take(guidance=float(model.config["guidance"]))
    assert own.info["guidance"] == float(model.config["guidance"])
    assert np.array_equal(own.vertex_offsets(), stated.vertex_offsets())  # unset means the model's own
    loose, tight = take(guidance=1.0), take(guidance=8.0)
    assert tight.info["guidance"] == 8.0
    assert np.abs(loose.vertex_offsets() - tight.vertex_offsets()).max() > 1e-6

    with pytest.raises(ModelError, match="out of range"):
        Conditioning(guidance=0.5).validate()
    default = load_model(None)
    with pytest.raises(ModelError, match="does not sample"):
        animate_takes(audio, template, triangles, default, Conditioning(guidance=3.0), 30.0)


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_seed_gives_the_same_take_on_the_gpu(device, diffusion_model, flame_mesh):
    """The noise is drawn on the CPU from the seed, so the animator's take does not depend on the machine."""
    from core.models import Conditioning, load_model

    accelerator_or_skip(device)
    audio = np.random.default_rng(0).normal(size=16000 * 5).astype(np.float32) * 0.1
    on_cpu = load_model(diffusion_model, device="cpu").predict(audio, flame_mesh[0], Conditioning(seed=3))
    on_gpu = load_model(diffusion_model, device=device).predict(audio, flame_mesh[0], Conditioning(seed=3))
    assert np.abs(on_cpu.vertex_offsets() - on_gpu.vertex_offsets()).max() < 1e-5  # 0.01 mm
