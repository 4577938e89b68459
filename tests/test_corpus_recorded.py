"""Recorded speech as training audio (core.corpus.recorded): real acoustics, the rig's motion."""

import json
import os
import shutil

import pytest

from conftest import shared_path


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory):
    """Four aligned real recordings: the shared LibriVox clips (wav + pocketsphinx .phone.json)."""
    source = shared_path("audio/librivox")
    folder = tmp_path_factory.mktemp("recorded")
    for name in sorted(os.listdir(source)):
        if name.endswith((".wav", ".phone.json")):
            shutil.copy2(source / name, folder / name)
    return folder


def test_recorded_clips_join_the_training_speakers_and_seal_at_their_bilabials(tiny_corpus, speech_folder, tmp_path):
    from core.corpus.recorded import add_recorded_speech
    from core.data import load_clips
    from core.evaluate import lip_events
    from core.lips import LipContact, seal_rate
    from core.train import flame_triangles

    out = tmp_path / "with_speech"
    record = add_recorded_speech(str(tiny_corpus), str(out), [str(speech_folder)], flame_triangles(),
                                 speakers_per_recording=1, holdout=0.25, seed=0, progress=lambda m: None)
    n_recordings = len(list(speech_folder.glob("*.phone.json")))
    assert len(record["held_out"]) == round(n_recordings * 0.25)
    assert len(record["clips"]) == n_recordings - len(record["held_out"])
    held = {os.path.basename(p)[:-4] for p in record["held_out"]}
    splits = json.loads((out / "splits.json").read_text())
    base_clips = {c.sentence for c in load_clips(str(tiny_corpus), "train")}
    clips = load_clips(str(out), "train")
    recorded = [c for c in clips if c.sentence.startswith("rec-")]
    # the base corpus is all there, hard-linked (the feature cache knows a file by its size and time)
    assert base_clips <= {c.sentence for c in clips}
    base_wav = next(c.wav_path for c in clips if not c.sentence.startswith("rec-"))
    assert os.stat(base_wav).st_ino == os.stat(tiny_corpus / "wav" / os.path.basename(base_wav)).st_ino
    assert len(recorded) == len(record["clips"]) and all(c.subject in splits["train"] for c in recorded)
    assert not any(c.sentence[len("rec-"):] in held for c in recorded)
    bilabials = []
    for clip in recorded:
        vertices = clip.vertices()
        audio_seconds = os.path.getsize(clip.wav_path) / 32000  # 16-bit mono at 16 kHz
        assert abs(len(vertices) / 30.0 - audio_seconds) < 0.05  # motion as long as the recording
        excess = LipContact(clip.template, flame_triangles()).excess_mm(vertices)
        gaps, openings = lip_events(excess, clip.phones)
        bilabials += gaps
        assert max(openings) > 4.0  # the mouth opens on the recording's vowels
    assert len(bilabials) >= 5 and seal_rate(bilabials) >= 0.8


def test_recorded_speech_refuses_folders_without_alignments_and_an_existing_corpus(tiny_corpus, tmp_path):
    from core.cli import main

    empty = tmp_path / "no_alignments"
    empty.mkdir()
    (empty / "a.wav").write_bytes(b"")
    out = tmp_path / "new"
    assert main(["corpus-recorded", "--corpus", str(tiny_corpus), "--speech", str(empty), "--out", str(out)]) == 2
    assert not out.exists()  # refused before anything was written
    assert main(["corpus-recorded", "--corpus", str(tiny_corpus), "--speech", str(empty),
                 "--out", str(tiny_corpus)]) == 2


def test_a_broken_recording_half_way_leaves_no_corpus_behind(tiny_corpus, speech_folder, tmp_path, capsys):
    import shutil

    from core.cli import main

    speech = tmp_path / "speech"
    shutil.copytree(speech_folder, speech)
    broken = sorted(speech.glob("*.phone.json"))[-1]
    broken.write_text('{"w": [{"w": [{"t": "M", "b": 0.1}]}]}')  # a phone without its duration
    out = tmp_path / "new"
    assert main(["corpus-recorded", "--corpus", str(tiny_corpus), "--speech", str(speech), "--out", str(out),
                 "--holdout", "0"]) == 2
    message = capsys.readouterr().err
    assert "Cannot read the phone alignment" in message and broken.name in message
    assert not out.exists() and not (tmp_path / "new.partial").exists()


def test_seal_loss_is_zero_at_contact_and_grows_with_the_slit(flame_mesh):
    import torch

    from core.models.imitator import lip_seal_loss
    from core.train import lip_edge_fields

    fields = lip_edge_fields({"head": flame_mesh[0]})["head"]
    batch = {k: v[None] for k, v in fields.items()}
    batch["contact"] = torch.tensor([[0.1, 1.0, 1.0, 0.1]])  # two closure frames
    rest = torch.zeros(1, 4, len(flame_mesh[0]), 3, requires_grad=True)
    assert lip_seal_loss(rest, batch).item() < 1e-6
    losses = []
    for slit_mm in (0.5, 1.0, 2.0):
        apart = torch.zeros(1, 4, len(flame_mesh[0]), 3)
        apart[:, :, fields["edge_lower"], 1] -= slit_mm
        losses.append(lip_seal_loss(apart, batch).item())
    assert 0 < losses[0] < losses[1] < losses[2]
    pinched = torch.zeros(1, 4, len(flame_mesh[0]), 3)
    pinched[:, :, fields["edge_lower"], 1] -= 2.0
    pinched[:, :, fields["edge_lower"][0], 1] += 2.0  # one corner at rest, the rest of the mouth open
    assert lip_seal_loss(pinched, batch).item() > 0.3 * losses[2]  # touching at one point is no seal
    apart = torch.zeros(1, 4, len(flame_mesh[0]), 3)
    apart[:, 0, fields["edge_lower"], 1] -= 3.0  # open only where no closure is
    assert lip_seal_loss(apart, batch).item() < 1e-6
