"""Lip contact: the seal measure (core.lips) on hand-built meshes and on FLAME, and the lip seal at inference."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluate import SealTally, lip_events
from core.lips import SEALED_MM, LipContact, LipSeal, edge_gap, seal_rate


def _slab_lips(gap_mm: float, shift_z_mm: float = 0.0) -> np.ndarray:
    """Four vertices by hand: two upper-lip edge points at y=0 and two lower ones `gap_mm` below
    (optionally pushed back in z), 5 mm apart side to side."""
    upper = [[-0.0025, 0.0, 0.0], [0.0025, 0.0, 0.0]]
    lower = [[-0.0025, -gap_mm / 1000, -shift_z_mm / 1000], [0.0025, -gap_mm / 1000, -shift_z_mm / 1000]]
    return np.array(upper + lower)


@pytest.mark.parametrize("gap_mm, shift_mm, expected_mm", [(0.0, 0.0, 0.0), (1.5, 0.0, 1.5), (3.0, 4.0, 5.0)])
def test_edge_gap_is_the_smallest_3d_distance_between_the_lips(gap_mm, shift_mm, expected_mm):
    verts = _slab_lips(gap_mm, shift_mm)
    assert edge_gap(verts, np.array([0, 1]), np.array([2, 3]))[0] * 1000 == pytest.approx(expected_mm, abs=1e-9)


def test_a_seal_a_slit_and_an_open_mouth_on_hand_built_lips():
    rest = edge_gap(_slab_lips(0.2), np.array([0, 1]), np.array([2, 3]))[0]
    frames = np.stack([_slab_lips(0.2), _slab_lips(0.6), _slab_lips(1.5), _slab_lips(8.0)])  # sealed, pressed-ish, slit, open
    excess = (edge_gap(frames, np.array([0, 1]), np.array([2, 3])) - rest) * 1000
    np.testing.assert_allclose(excess, [0.0, 0.4, 1.3, 7.8], atol=1e-9)
    assert seal_rate(list(excess)) == 0.5  # 0.4 mm over rest is sealed, a 1.3 mm slit is not
    assert SEALED_MM == 0.5


def test_the_seal_is_judged_within_60_ms_of_the_consonant():
    excess = np.full(30, 3.0)
    excess[10] = 0.2  # sealed at 0.333 s
    near = lip_events(excess, [("M", 0.36, 0.40)])[0]  # 27 ms after the sealed frame: counts
    far = lip_events(excess, [("M", 0.45, 0.50)])[0]  # 117 ms after it: the lips were apart there
    assert seal_rate(near) == 1.0 and seal_rate(far) == 0.0


@pytest.fixture(scope="module")
def speech(speech_path):
    from core.audio import load_audio

    return load_audio(str(speech_path))


@pytest.fixture(scope="module")
def flame(flame_mesh):
    verts, tris = flame_mesh
    return verts.astype(np.float64), tris


def _rig(flame):
    from core.corpus.articulation import FaceRig

    return FaceRig(*flame)


def test_flame_lip_edges_belong_to_the_lips_they_are_said_to(flame):
    """Checked on motion: opening the jaw moves the lower edge down and leaves the upper one."""
    from core.corpus.articulation import PARAMS, SpeakingStyle

    rig = _rig(flame)
    contact = LipContact(*flame)
    curves = np.zeros((2, len(PARAMS)))
    curves[1, 0] = 10.0  # a 10 mm opening
    opened = rig.deform(curves, SpeakingStyle())[1]
    moved = opened - flame[0]
    assert np.all(moved[contact.lower, 1] < -0.005)  # the lower edge drops more than 5 mm
    assert np.all(np.abs(moved[contact.upper]) < 0.0005)  # the upper edge stays
    assert contact.excess_mm(flame[0][None])[0] == pytest.approx(0.0, abs=1e-9)


def test_flame_seal_measure_grows_with_the_opening_and_reads_a_slit(flame):
    from core.corpus.articulation import PARAMS, SpeakingStyle

    rig = _rig(flame)
    contact = LipContact(*flame)
    openings = np.array([0.0, 0.5, 1.5, 3.0, 6.0, 10.0]) + rig.rest_gap * 1000  # vertical gap over rest
    curves = np.zeros((len(openings), len(PARAMS)))
    curves[:, 0] = openings
    excess = contact.excess_mm(rig.deform(curves, SpeakingStyle()))
    assert np.all(np.diff(excess) > 0)
    assert excess[0] <= SEALED_MM and excess[2] > SEALED_MM  # a 1.5 mm slit is not a seal
    assert excess[-1] > 7.5  # the rig's U-shaped jaw: the lip edges part ~0.8 mm per mm of vertical gap


def _slit_frames(flame, rig, gaps_mm):
    from core.corpus.articulation import PARAMS, SpeakingStyle

    curves = np.zeros((len(gaps_mm), len(PARAMS)))
    curves[:, 0] = np.asarray(gaps_mm) + rig.rest_gap * 1000
    return rig.deform(curves, SpeakingStyle()).astype(np.float64)


def test_the_lip_seal_closes_a_slit_where_a_bilabial_is_heard_and_nowhere_else(flame):
    rig = _rig(flame)
    seal = LipSeal(*flame)
    frames = _slit_frames(flame, rig, [1.5] * 14 + [8.0] * 5)  # a slit, then an open vowel
    heard = np.zeros(len(frames))
    heard[2:5] = 0.6  # /m/ heard at frames 2-4
    heard[16] = 0.6  # a spurious /m/ inside the open vowel
    amounts = seal.amounts(frames[:, seal.edges], heard, strength=1.0)
    sealed = frames + amounts[:, None, None] * seal.field[None]
    excess, before = seal.contact.excess_mm(sealed), seal.contact.excess_mm(frames)
    assert np.all(before[:14] > 1.1)  # a visible slit to begin with
    assert np.all(excess[2:5] <= SEALED_MM)  # sealed where heard
    np.testing.assert_allclose(excess[9:12], before[9:12], atol=0.01)  # left alone where nothing is heard (10 µm)
    np.testing.assert_allclose(excess[14:], before[14:], atol=1e-6)  # an open mouth never snaps shut
    assert np.all(np.abs(np.diff(amounts)) < 0.0012)  # eased in and out, no jump of a whole slit in one frame
    half = seal.amounts(frames[:, seal.edges], heard, strength=0.5)
    np.testing.assert_allclose(half, amounts / 2, rtol=1e-5, atol=1e-9)
    assert not seal.amounts(frames[:, seal.edges], heard, strength=0.0).any()


def test_seal_tally_counts_bilabials_tongue_stops_and_openings():
    tally = SealTally()
    excess = np.full(60, 2.0)
    excess[9:12] = 0.1  # sealed at the /m/ (0.3-0.4 s)
    excess[40:45] = 9.0  # open at the /aa/ (1.35-1.5 s)
    phones = [("M", 0.3, 0.4), ("AA", 1.35, 1.5), ("T", 0.8, 0.9)]
    tally.add(excess, phones, truth=np.zeros(60))
    summary = tally.summary()
    assert summary["seal_rate"] == 1.0 and summary["seal_rate_tongue_stops"] == 0.0
    assert summary["open_vowel_over_rest_mm"] == 9.0
    assert summary["seal_rate_ground_truth"] == 1.0 and summary["seal_rate_tongue_stops_ground_truth"] == 1.0


def test_predict_motion_adds_the_seal_as_its_own_shape_and_refuses_what_it_cannot_do(flame_mesh, speech):
    from core.errors import ModelError
    from core.models import Conditioning
    from core.pipeline import predict_motion
    from tests.conftest import make_tiny_model

    verts, tris = flame_mesh
    hearing = make_tiny_model(weight_phone=1.0)  # a phonetic head: the seal can hear /p b m/
    plain = predict_motion(hearing, speech, verts, tris, Conditioning(lip_seal=0.0))
    sealed = predict_motion(hearing, speech, verts, tris, Conditioning(lip_seal=1.0))
    # the phone layer's shapes come last: the model's mean, the jaw field, the seal field
    assert sealed.basis.shape == plain.basis.shape and sealed.info["lip_seal"] == 1.0
    assert not np.any(plain.coefficients[:, -1])  # seal 0: the seal shape never moves
    np.testing.assert_array_equal(sealed.coefficients[:, :-1], plain.coefficients[:, :-1])  # all else untouched
    assert sealed.phone_probabilities.shape == (plain.n_frames, 40)
    deaf = make_tiny_model()  # no phonetic head
    with pytest.raises(ModelError, match="no phonetic head"):
        predict_motion(deaf, speech, verts, tris, Conditioning(lip_seal=1.0))
    with pytest.raises(ModelError, match="needs the head's triangles"):
        predict_motion(hearing, speech, verts, None, Conditioning(lip_seal=0.5))
    with pytest.raises(ModelError, match="out of range"):
        Conditioning(lip_seal=1.5).validate()
    assert not np.any(predict_motion(deaf, speech, verts, tris, Conditioning()).coefficients[:, -1])


def _one_aligned_clip(tmp_path):
    """A speech folder holding one LibriVox clip with its pocketsphinx alignment."""
    import shutil

    from tests.conftest import LIBRIVOX_CLIP, shared_path

    speech = tmp_path / "speech"
    speech.mkdir()
    for suffix in (".wav", ".phone.json"):
        shutil.copy(shared_path(LIBRIVOX_CLIP[: -len(".wav")] + suffix), speech / f"clip{suffix}")
    return speech


def test_fit_phones_refits_only_the_phonetic_head_on_real_speech(tmp_path, flame_mesh):
    import torch

    from core.cli import main
    from core.models import Conditioning, load_model, save_model
    from tests.conftest import make_tiny_model

    speech = _one_aligned_clip(tmp_path)
    save_model(make_tiny_model(weight_phone=1.0), str(tmp_path / "base"))
    out = tmp_path / "fitted"
    assert main(["fit-phones", "--model", str(tmp_path / "base"), "--speech", str(speech), "--out", str(out),
                 "--steps", "30", "--lip-seal", "0.7", "--device", "cpu"]) == 0
    base, fitted = load_model(str(tmp_path / "base")), load_model(str(out))
    changed = {k for k, v in fitted.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert changed == {"phone_head.weight", "phone_head.bias"}
    assert fitted.config["lip_seal"] == 0.7
    audio = np.zeros(16000, dtype=np.float32)
    audio[::40] = 0.1
    np.testing.assert_array_equal(fitted.predict(audio, flame_mesh[0], Conditioning()).coefficients,
                                  base.predict(audio, flame_mesh[0], Conditioning()).coefficients)
    # a second run into the same folder is refused, and an empty speech folder says how to make one
    assert main(["fit-phones", "--model", str(tmp_path / "base"), "--speech", str(speech), "--out", str(out)]) == 2
    assert main(["fit-phones", "--speech", str(tmp_path), "--out", str(tmp_path / "x")]) == 2


def test_real_speech_tool_spells_prompts_as_words_and_writes_alignments_evaluate_reads(tmp_path):
    import json
    import sys

    from core.evaluate import read_phone_alignment
    from tests.conftest import REPO

    sys.path.insert(0, str(REPO / "tools"))
    import real_speech

    assert real_speech.spoken("Press 1 for sales, or # to go back.") == "press one for sales or pound to go back"
    assert real_speech.spoken("[this is a simple beep tone]") is None  # not speech
    assert real_speech.spoken("Dial 555-1234 now") is None  # a number the aligner cannot say as words
    phones = [("SIL", 0.0, 0.2), ("M", 0.2, 0.3), ("AA", 0.3, 0.5)]
    path = tmp_path / "x.phone.json"
    path.write_text(json.dumps(real_speech.alignment_json(phones, "ma")))
    assert read_phone_alignment(str(path)) == [(p, pytest.approx(s), pytest.approx(e)) for p, s, e in phones]
    # refused, with nothing written: data never goes inside the repository (or the sources are missing)
    assert real_speech.main(["--out", str(REPO / "inside")]) == 2 and not (REPO / "inside").exists()


def test_pick_gate_takes_the_most_seals_within_the_tongue_stop_limit_and_refuses_when_none_fits():
    from core.errors import OutputError
    from core.seal_tuning import pick_gate

    scores = [{"gate": {"p_low": p}, "sealed": sealed, "tongue_stops_sealed": stops}
              for p, sealed, stops in [(0.1, 0.95, 0.30), (0.2, 0.90, 0.10), (0.3, 0.90, 0.05), (0.4, 0.70, 0.02)]]
    assert pick_gate(scores, 0.10)["gate"]["p_low"] == 0.3  # 0.1 seals more but closes 30% of tongue stops
    assert pick_gate(scores, 0.50)["gate"]["p_low"] == 0.1
    with pytest.raises(OutputError, match="--max-tongue-stops"):
        pick_gate(scores, 0.01)


def test_tune_seal_writes_the_gate_into_a_new_model_that_prediction_then_uses(tmp_path, flame_mesh, speech):
    import json

    from core.cli import main
    from core.lips import SealGate
    from core.models import Conditioning, load_model, save_model
    from core.pipeline import predict_motion
    from tests.conftest import make_tiny_model

    recordings = _one_aligned_clip(tmp_path)
    save_model(make_tiny_model(weight_phone=1.0), str(tmp_path / "base"))
    out = tmp_path / "tuned"
    assert main(["tune-seal", "--model", str(tmp_path / "base"), "--speech", str(recordings), "--out", str(out),
                 "--max-tongue-stops", "1.0", "--device", "cpu"]) == 0
    tuned = load_model(str(out))
    record = json.loads((out / "training.json").read_text())["seal_gate"]
    assert tuned.config["seal_gate"] == record["picked"]["gate"] and len(record["grid"]) > 1
    assert record["picked"]["sealed"] == max(s["sealed"] for s in record["grid"])  # any tongue stops allowed
    SealGate(**tuned.config["seal_gate"])  # a gate the seal can be built with
    # prediction reads the gate from the model: a gate that never hears /p b m/ adds no seal
    verts, tris = flame_mesh
    tuned.config["seal_gate"] = {"p_low": 2.0, "p_high": 3.0}
    shut = predict_motion(tuned, speech, verts, tris, Conditioning(lip_seal=1.0))
    assert not np.any(shut.coefficients[:, -1])
    # a folder already there is refused, and so is a limit that is not a share
    assert main(["tune-seal", "--model", str(tmp_path / "base"), "--speech", str(recordings), "--out", str(out)]) == 2
    assert main(["tune-seal", "--model", str(tmp_path / "base"), "--speech", str(recordings),
                 "--out", str(tmp_path / "x"), "--max-tongue-stops", "5"]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()
