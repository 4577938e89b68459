"""Forced alignment with pocketsphinx: phone times for audio whose words are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import LONGER_CLIP, shared_path

pytest.importorskip("pocketsphinx", reason="forced alignment needs: pip install pocketsphinx")


def test_alignment_matches_the_shipped_librivox_phones():
    from core.align import align_phones
    from core.audio import load_audio

    wav = shared_path(LONGER_CLIP)
    transcript = wav.with_suffix(".txt").read_text()
    reference = json.loads(wav.with_name(wav.stem + ".phone.json").read_text())
    expected = [(p["t"], p["b"], p["b"] + p["d"]) for w in reference["w"] for p in w["w"]]
    phones = align_phones(load_audio(str(wav)), transcript)
    assert [p for p, _, _ in phones] == [p for p, _, _ in expected]
    assert max(abs(a[1] - b[1]) for a, b in zip(phones, expected)) <= 0.02


def test_unknown_words_and_transcript_files(tmp_path):
    from core.align import AlignmentError, align_phones, read_transcripts, transcript_for

    with pytest.raises(AlignmentError, match="not in the pronouncing dictionary: zzxqv"):
        align_phones(np.zeros(16000, np.float32), "hello zzxqv")
    (tmp_path / "t.txt").write_text("sentence01 the cat sat\nFaceTalk_A_sentence02 a dog ran\n")
    transcripts = read_transcripts(str(tmp_path / "t.txt"))
    assert transcript_for(transcripts, "FaceTalk_B", "sentence01") == "the cat sat"
    assert transcript_for(transcripts, "FaceTalk_A", "sentence02") == "a dog ran"
    assert transcript_for(transcripts, "FaceTalk_B", "sentence02") is None
