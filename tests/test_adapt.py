"""Style adaptation: reference checks, style files, and that adaptation helps on unseen sentences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_tiny_model, shared_path


@pytest.fixture(scope="module")
def flame():
    from core.mesh_io import read_mesh

    return read_mesh(str(shared_path("flame/FLAME_sample.ply")))


def _speech(seconds: float) -> np.ndarray:
    from core.audio import load_audio

    audio = load_audio(str(shared_path("audio/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")))
    return audio[: int(seconds * 16000)]


def test_reference_clips_are_checked(flame):
    from core.adapt import ReferenceError, make_reference
    from core.errors import AudioError, TopologyError

    template, triangles = flame
    still = np.repeat(template[None], 150, axis=0)
    motion = still.copy()
    motion[:, ::7, 1] += 0.002 * np.sin(np.arange(150) / 3.0)[:, None]  # 2 mm of movement: a face that speaks
    make_reference(_speech(5.0), motion, template, triangles, 30.0, 30.0)  # fine
    with pytest.raises(ReferenceError, match="barely moves"):
        make_reference(_speech(5.0), still, template, triangles, 30.0, 30.0)
    with pytest.raises(ReferenceError, match="frame rate from 1 to 240"):
        make_reference(_speech(5.0), motion, template, triangles, float("inf"), 30.0)
    with pytest.raises(ReferenceError, match="at least 2 s"):
        make_reference(_speech(1.5), motion[:45], template, triangles, 30.0, 30.0)
    with pytest.raises(AudioError):
        make_reference(np.zeros(16000 * 5, np.float32), motion, template, triangles, 30.0, 30.0)
    with pytest.raises(ReferenceError, match="out of sync"):
        make_reference(_speech(5.0), motion[:100], template, triangles, 30.0, 30.0)
    with pytest.raises(ReferenceError, match="expected frames x 5023 x 3"):
        make_reference(_speech(5.0), motion[:, :100], template, triangles, 30.0, 30.0)
    with pytest.raises(TopologyError):
        make_reference(_speech(5.0), motion, template, (triangles + 1) % 5023, 30.0, 30.0)


def test_reference_motion_formats(tmp_path, flame):
    from core.adapt import read_motion
    from core.mesh_io import write_pc2

    template, triangles = flame
    frames = np.repeat(template[None], 3, axis=0) + np.arange(3, dtype=np.float32)[:, None, None] * 1e-3
    np.save(tmp_path / "flat.npy", frames.reshape(3, -1))
    write_pc2(str(tmp_path / "m.pc2"), frames)
    (tmp_path / "seq").mkdir()
    for i, f in enumerate(frames):
        lines = [f"v {x} {y} {z}" for x, y, z in f] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in triangles]
        (tmp_path / "seq" / f"frame_{i:03d}.obj").write_text("\n".join(lines))
    for path in ("flat.npy", "m.pc2", "seq"):
        loaded, _ = read_motion(str(tmp_path / path))
        assert np.allclose(loaded, frames, atol=1e-6), path


def _reference_from(model, audio, template, style_shift: float = 0.0):
    """A reference performance from a perturbed copy of `model`: another actor's way of moving."""
    import copy

    import torch

    from core.adapt import ReferenceClip
    from core.models import Conditioning

    actor = copy.deepcopy(model)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(7)
        actor.deformation_basis.weight.mul_(1.6).add_(torch.randn(actor.deformation_basis.weight.shape, generator=generator) * 1e-3)
        actor.style_embedding.weight.add_(style_shift)
    offsets = actor.predict(audio, template, Conditioning(style="alice")).vertex_offsets()
    return ReferenceClip(audio, offsets, 30.0)


def test_style_round_trip_and_refusal(tmp_path, flame):
    from core.adapt import AdaptOptions, adapt_style
    from core.errors import ModelError
    from core.models import Conditioning
    from core.styles import available_styles, load_style, resolve_style, save_style

    template, _ = flame
    model = make_tiny_model(seed=0)
    reference = _reference_from(model, _speech(5.0), template, style_shift=0.3)
    style = adapt_style(model, reference, "Ana", AdaptOptions(stage1_steps=30, stage2_steps=30))
    errors = style.info["held_back_error_mm2"]
    assert errors["final"] < errors["unadapted"]
    path = save_style(style, str(tmp_path / "Ana"))
    assert (tmp_path / "Ana.json").is_file() and (tmp_path / "Ana.safetensors").stat().st_size < 1_000_000
    with pytest.raises(ModelError, match="already exists"):
        save_style(style, str(tmp_path / "Ana"))
    loaded = load_style(path)
    assert loaded.name == "Ana" and set(loaded.tensors) == {"style", "basis_lora_a", "basis_lora_b"}
    assert available_styles([str(tmp_path)], model) == ["Ana"]

    audio = _speech(3.0)
    direct = model.predict(audio, template, Conditioning(adapted_style=style)).vertex_offsets()
    by_name = resolve_style(Conditioning(style="Ana"), model, [str(tmp_path)])
    assert np.allclose(model.predict(audio, template, by_name).vertex_offsets(), direct, atol=1e-6)

    other = make_tiny_model(seed=1)
    assert available_styles([str(tmp_path)], other) == []
    with pytest.raises(ModelError, match="was adapted from model 'tiny'"):
        resolve_style(Conditioning(style="Ana"), other, [str(tmp_path)])
    with pytest.raises(ModelError, match="No speaking style 'Bob'.*style files: Ana"):
        resolve_style(Conditioning(style="Bob"), model, [str(tmp_path)])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_adaptation_lowers_error_on_other_sentences_of_a_new_speaker(tiny_corpus, tmp_path):  # noqa: F811
    """A tiny model trained on the corpus' training speaker, adapted on one sentence of the unseen
    test speaker: its other sentences come out closer to the truth."""
    from core.adapt import AdaptOptions, adapt_style, make_reference
    from core.audio import load_audio
    from core.data import load_clips
    from core.models import Conditioning, load_model
    from core.train import TrainConfig, train

    config = TrainConfig(steps=150, batch=4, crop_frames=60, validate_every=1000, lr=3e-3,
                         model={"architecture": "imitator", "d_model": 32, "n_heads": 2, "ffn_dim": 64,
                                "mlp_hidden": 32, "n_basis": 16, "window_frames": 60, "overlap_frames": 15},
                         meta={"steps": 10, "clips_per_speaker": 2, "inner_style_steps": 3, "inner_lora_steps": 3})
    lines = []
    folder = train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append)
    assert (tmp_path / "run" / "model" / "adaptation.safetensors").is_file()
    assert any(line.startswith("meta step 10/10") for line in lines)
    model = load_model(folder)
    clips = load_clips(str(tiny_corpus), "test")
    reference_clip, others = clips[0], clips[1:]
    reference = make_reference(load_audio(reference_clip.wav_path), reference_clip.vertices(), reference_clip.template,
                               None, 30.0, model.fps)
    style = adapt_style(model, reference, "test_speaker", AdaptOptions(use_meta=True))
    assert style.info["meta_start"]

    def error(conditioning):
        errors = []
        for clip in others:
            truth = clip.vertices() - clip.template[None]
            pred = model.predict(load_audio(clip.wav_path), clip.template, conditioning).vertex_offsets()
            n = min(len(pred), len(truth))
            errors.append(np.linalg.norm(pred[:n] - truth[:n], axis=2).mean())
        return float(np.mean(errors))

    assert len(others) >= 3
    assert error(Conditioning(adapted_style=style)) < 0.9 * error(Conditioning())
    assert json.dumps(style.info)  # the record is JSON-able
