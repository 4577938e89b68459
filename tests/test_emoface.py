"""EmoFace: SpiralConv3D, Mesh Attention fusion, emotion conditioning and training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import shared_path

TINY = {"architecture": "emoface", "name": "tiny_emo", "d_model": 16, "n_heads": 2, "ffn_dim": 32, "n_basis": 8,
        "attention_channels": 4, "attention_layers": 1, "position_dim": 2, "feature_reduce": 2,
        "window_frames": 60, "overlap_frames": 15}


def test_spiral_conv_3d_gathers_spirals_of_this_and_the_previous_frame():
    from core.models.emoface import SpiralConv3D

    spirals = torch.tensor([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    conv = SpiralConv3D(1, 1, 3)
    x = torch.arange(2 * 3, dtype=torch.float32).reshape(1, 2, 3, 1)  # frame 0: 0 1 2, frame 1: 3 4 5
    with torch.no_grad():
        conv.linear.weight.copy_(torch.tensor([[1.0, 10.0, 100.0, 1000.0, 1e4, 1e5]]))
        conv.linear.bias.zero_()
    out = conv(x, spirals)[0, :, :, 0]
    # vertex 1 at frame 1: current spiral (4, 5, 3), previous frame's spiral (1, 2, 0), interleaved per spiral slot
    current, previous = [4.0, 5.0, 3.0], [1.0, 2.0, 0.0]
    features = [v for pair in zip(current, previous) for v in pair]
    assert out[1, 1].item() == pytest.approx(sum(f * w for f, w in zip(features, [1, 10, 100, 1000, 1e4, 1e5])))
    assert out[0, 1].item() == pytest.approx(sum(f * w for f, w in zip([1, 1, 2, 2, 0, 0], [1, 10, 100, 1000, 1e4, 1e5])))


def _tiny_model(seed=0):
    from core.models import build_model

    shared_path("flame/FLAME_sample.ply")
    torch.manual_seed(seed)
    model = build_model(dict(TINY))
    for basis in (model.content_basis, model.emotion_basis):
        torch.nn.init.normal_(basis.weight, std=2e-3)
    return model


def test_emotion_changes_the_output_and_from_audio_names_one():
    from core.models import Conditioning

    model = _tiny_model()
    audio = np.random.default_rng(0).normal(size=16000 * 2).astype(np.float32) * 0.1
    template = np.zeros((5023, 3), np.float32)
    neutral = model.predict(audio, template, Conditioning()).vertex_offsets()
    happy = model.predict(audio, template, Conditioning(emotion="happy", intensity=1.0)).vertex_offsets()
    assert neutral.shape == (60, 5023, 3) and np.abs(happy - neutral).max() > 1e-5
    ramp = Conditioning(emotion="happy", intensity_curve=np.linspace(0, 1, 60))
    ramped = model.predict(audio, template, ramp).vertex_offsets()
    assert np.abs(ramped[0] - neutral[0]).max() < np.abs(ramped[-1] - neutral[-1]).max()
    guessed = model.predict(audio, template, Conditioning(emotion="from_audio"))
    assert guessed.info["emotion_from_audio"] in ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_emoface_trains_on_the_emotional_corpus(tiny_corpus, tmp_path):  # noqa: F811
    from core.models import load_model
    from core.train import TrainConfig, train

    config = TrainConfig(steps=60, batch=2, crop_frames=45, validate_every=1000, lr=3e-3, model=dict(TINY))
    folder = train(str(tiny_corpus), str(tmp_path / "run"), config, log=lambda m: None)
    history = json.loads((tmp_path / "run" / "model" / "training.json").read_text())["history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0], losses
    assert load_model(folder).config["architecture"] == "emoface"


def test_content_branch_is_supervised_on_neutral_clips_only():
    """With content_from_neutral, an emotional clip teaches the content branch nothing through its own
    (intermediate) loss: the content basis gets the same gradient as with no branch losses at all."""
    model = _tiny_model()
    model.eval()  # no dropout, so the three passes see the same network
    frames = 12
    rng = torch.Generator().manual_seed(0)
    emotion = torch.zeros(2, 7)
    emotion[0, 1], emotion[1, 3] = 1.0, 0.6  # happy, angry: no neutral clip in the batch
    batch = {"features": torch.randn(2, frames, model.encoder.feature_dim, generator=rng),
             "target_mm": torch.randn(2, frames, 5023, 3, generator=rng) * 0.5, "emotion": emotion, "progress": 0.3,
             "lips": torch.zeros(2, 5023, dtype=torch.bool), "contact": torch.zeros(2, frames)}
    batch["lips"][:, :50] = True
    batch["contact"][:, 4:7] = 1.0

    def content_gradient(**overrides) -> torch.Tensor:
        saved = dict(model.config)
        model.config.update(overrides)
        model.zero_grad()
        model.training_loss(batch)[0].backward()
        model.config.clear()
        model.config.update(saved)
        return model.content_basis.weight.grad.clone()

    without_branch_losses = content_gradient(weight_branches=0.0)
    assert torch.allclose(content_gradient(content_from_neutral=True), without_branch_losses, atol=1e-9)
    assert not torch.allclose(content_gradient(content_from_neutral=False), without_branch_losses, atol=1e-9)
    # nor through the branch lip terms
    assert torch.allclose(content_gradient(branch_lip_losses=True, weight_lip_region=2.0, weight_branches=0.0),
                          content_gradient(weight_lip_region=2.0, weight_branches=0.0), atol=1e-9)
    batch["emotion"] = torch.zeros(2, 7)  # neutral clips do supervise it
    assert not torch.allclose(content_gradient(content_from_neutral=True), content_gradient(weight_branches=0.0), atol=1e-9)
    assert not torch.allclose(content_gradient(branch_lip_losses=True, weight_branches=0.0),
                              content_gradient(weight_branches=0.0), atol=1e-9)


def test_branch_lip_losses_reach_each_branch_at_the_lips_only():
    """The emotion branch gets the lip terms on its own output: they change its basis's gradient on the
    lip vertices' rows and nowhere else, by the contact and lip-region errors of that branch alone."""
    model = _tiny_model()
    model.eval()
    frames = 10
    rng = torch.Generator().manual_seed(1)
    emotion = torch.zeros(1, 7)
    emotion[0, 2] = 0.8
    batch = {"features": torch.randn(1, frames, 80, generator=rng),
             "target_mm": torch.randn(1, frames, 5023, 3, generator=rng), "emotion": emotion, "progress": 0.5,
             "lips": torch.zeros(1, 5023, dtype=torch.bool), "contact": torch.zeros(1, frames)}
    batch["lips"][:, :50] = True
    batch["contact"][:, 3:6] = 1.0

    def emotion_gradient(on: bool) -> tuple[torch.Tensor, dict]:
        model.config.update(branch_lip_losses=on, weight_lip_region=2.0)
        model.zero_grad()
        loss, parts = model.training_loss(batch)
        loss.backward()
        return model.emotion_basis.weight.grad.clone(), parts

    (plain, plain_parts), (with_branches, parts) = emotion_gradient(False), emotion_gradient(True)
    difference = (with_branches - plain).abs().sum(1).reshape(5023, 3).sum(1)
    # elsewhere only float summation noise (many threads sum in another order): 3e-8 against 200+
    assert difference[:50].min() > 0 and difference[50:].max() < 1e-6 * difference[:50].min()
    assert parts["lip"] > plain_parts["lip"] and parts["lip_region"] > plain_parts["lip_region"]


def test_branch_band_keeps_each_frame_to_its_neighbourhood():
    """With a band, a change of the speech at frame 40 leaves the branch features of frame 10 alone
    (band 2 x 1 layer + the audio convolution's 2 frames = 4 frames of reach); without one it does not."""
    features = torch.randn(1, 60, 80, generator=torch.Generator().manual_seed(1))
    changed = features.clone()
    changed[0, 40] += 3.0
    still = torch.zeros(1, 60, 7)
    for band, reaches in ((2, False), (0, True)):
        model = _tiny_model()
        model.config.update(branch_band=band)
        with torch.no_grad():
            before, after = model.branches(features, still), model.branches(changed, still)
        moved = (before["content_features"] - after["content_features"]).abs().amax(-1)[0]
        assert bool(moved[10] > 1e-6) == reaches, band
        assert moved[40] > 1e-3
        if not reaches:
            assert moved[:40 - 4].max() == 0 and moved[40 + 4 + 1:].max() == 0  # nothing beyond the reach


def test_lip_region_loss_weighs_the_lips_on_every_frame():
    model = _tiny_model()
    model.eval()
    frames = 10
    rng = torch.Generator().manual_seed(0)
    batch = {"features": torch.randn(1, frames, 80, generator=rng),
             "target_mm": torch.randn(1, frames, 5023, 3, generator=rng), "emotion": torch.zeros(1, 7),
             "progress": 0.5, "lips": torch.zeros(1, 5023, dtype=torch.bool), "contact": torch.zeros(1, frames)}
    batch["lips"][:, :50] = True
    model.config.update(weight_lip_region=0.0)
    without, parts = model.training_loss(batch)
    assert parts["lip"] == 0.0 and parts["lip_region"] > 0  # no bilabials: only the every-frame term sees the lips
    model.config.update(weight_lip_region=2.0)
    with_region = model.training_loss(batch)[0]
    assert with_region.item() == pytest.approx(without.item() + 2.0 * parts["lip_region"], rel=1e-5)


def test_expression_fusion_adds_the_emotion_onto_the_content_branch_articulation():
    """With "fusion": "expression", neutral speech (and intensity 0) is exactly the content branch's
    articulation; an emotion adds Mesh Attention's share of the emotion branch's expression to it."""
    from core.models import Conditioning
    from core.models.emoface import FUSIONS

    assert FUSIONS == ("blend", "expression")
    model = _tiny_model()
    model.config.update(fusion="expression")
    model.eval()
    audio = np.random.default_rng(1).normal(size=16000 * 2).astype(np.float32) * 0.1
    template = np.zeros((5023, 3), np.float32)
    neutral = model.predict(audio, template, Conditioning()).vertex_offsets()
    still = model.predict(audio, template, Conditioning(emotion="sad", intensity=0.0)).vertex_offsets()
    sad = model.predict(audio, template, Conditioning(emotion="sad", intensity=1.0)).vertex_offsets()
    features = torch.randn(1, 20, 80, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        content = model.branches(features, torch.zeros(1, 20, 7))["content"]
        assert torch.equal(model(features, torch.zeros(1, 20, 7)), content)
        sad_track = torch.zeros(1, 20, 7)
        sad_track[..., 2] = 1.0
        parts = model.branches(features, sad_track)
        neutral_emotion = model.branches(features, torch.zeros(1, 20, 7))["emotion"]
        assert torch.allclose(parts["expression"], parts["emotion"] - neutral_emotion, atol=1e-7)
        weights = model.mesh_attention(parts["content"], parts["emotion"], torch.zeros_like(content),
                                       parts["content_features"], parts["emotion_features"])
        fused = model.fuse(parts, torch.zeros_like(content))
        assert torch.allclose(fused, content + weights[..., 1:] * parts["expression"], atol=1e-7)
    np.testing.assert_array_equal(still, neutral)
    assert np.abs(sad - neutral).max() > 1e-5
    # training reaches both branches and Mesh Attention through the fused output
    batch = {"features": features.repeat(2, 1, 1), "target_mm": torch.randn(2, 20, 5023, 3) * 0.5,
             "emotion": torch.tensor([[0, 0, 1.0, 0, 0, 0, 0], [0.0] * 7]), "progress": 0.5,
             "lips": torch.zeros(2, 5023, dtype=torch.bool), "contact": torch.zeros(2, 20)}
    batch["lips"][:, :50] = True
    model.zero_grad()
    model.training_loss(batch)[0].backward()
    for module in (model.content_basis, model.emotion_basis, model.mesh_attention.out):
        assert module.weight.grad.abs().sum() > 0


def test_unknown_fusion_is_refused_naming_the_choices():
    from core.errors import ModelError
    from core.models import build_model

    with pytest.raises(ModelError, match="blend, expression"):
        build_model({**TINY, "fusion": "average"})


def test_evaluation_tells_a_model_with_emotion_control_each_clips_emotion(tiny_corpus):  # noqa: F811
    from core.data import load_clips
    from core.evaluate import evaluate_dataset
    from core.flame import load_flame_mesh

    model = _tiny_model()
    told = []
    predict = model.predict
    model.predict = lambda audio, template, conditioning, *rest: told.append(conditioning) or predict(audio, template, conditioning, *rest)
    _, triangles = load_flame_mesh(str(shared_path("flame/FLAME_sample.ply")))
    masks = str(shared_path("flame/FLAME_masks.pkl"))
    clips = load_clips(str(tiny_corpus), "train")  # the tiny test split is all neutral
    assert {c.emotion for c in clips} != {"neutral"}
    evaluate_dataset(model, str(tiny_corpus), "train", masks, triangles)
    assert [(c.emotion, c.intensity) for c in told] == [(c.emotion, c.intensity) for c in clips]
    told.clear()
    model.emotion_control = False  # as a model without it: every clip neutral
    evaluate_dataset(model, str(tiny_corpus), "train", masks, triangles)
    assert {c.emotion for c in told} == {"neutral"} and len(told) == len(clips)
