"""Phones from words (core.speech) and the phone layer that makes the lips follow them (core.motion)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import LIBRIVOX_CLIP, LONGER_CLIP, shared_path

pytest.importorskip("pocketsphinx", reason="forced alignment needs pocketsphinx (requirements.txt)")


def _clip(relative: str = LONGER_CLIP):
    from core.audio import load_audio

    path = shared_path(relative)
    text = path.with_suffix(".txt")
    return load_audio(str(path)), text.read_text().strip() if text.is_file() else ""


def test_words_are_spelled_as_spoken_and_unknown_words_get_a_pronunciation():
    from core.speech.lexicon import letter_to_sound, number_words, spoken_words

    assert spoken_words("Mr. Dashwood paid $42.5 -- 100% & more") == \
        ["mr", "dashwood", "paid", "forty", "two", "point", "five", "one", "hundred", "percent", "and", "more"]
    assert number_words(1999) == ["one", "thousand", "nine", "hundred", "ninety", "nine"]
    guess = letter_to_sound("zyxwort").split()
    assert guess[0] == "Z" and all(p.isalpha() and p.isupper() for p in guess)
    # letters that are bilabials always give bilabial phones: the lips need them
    assert {"B", "M", "P"} <= set(letter_to_sound("bumpkin").split())


def test_a_given_transcript_aligns_every_word_and_an_unknown_word_still_aligns():
    from core.speech import speech_timing

    audio, text = _clip(LIBRIVOX_CLIP)  # "he was not an ill disposed young man"
    timing = speech_timing(audio, text)
    assert timing.source == "given" and not timing.warnings and timing.coverage == 1.0
    assert [w.text for w in timing.words] == ["he", "was", "not", "an", "ill", "disposed", "young", "man"]
    starts = [w.start_s for w in timing.words]
    assert starts == sorted(starts) and timing.words[-1].end_s <= timing.duration_s + 1e-6
    assert [p for p, _, _ in timing.phones if p in ("P", "B", "M")] == ["P", "M"]  # disPosed, Man
    # a name the dictionary lacks is given a pronunciation and aligned with the rest
    renamed = speech_timing(audio, text.replace("young", "zyoung"))
    assert "zyoung" in [w.text for w in renamed.words]


def test_words_not_in_the_audio_are_named_and_left_to_the_phonetic_head():
    from core.speech import speech_timing

    audio, _ = _clip("audio/codec2/big_dog.wav")  # "the big dog loved to chew on the old rag doll"
    timing = speech_timing(audio, "the big cat hated to eat an apple pie today")
    assert timing.warnings and all(w in timing.warnings[0] for w in ("cat", "hated", "eat", "pie"))
    unheard = [w for w in timing.words if not w.heard]
    assert {"cat", "hated", "eat", "pie"} <= {w.text for w in unheard} and "big" not in {w.text for w in unheard}
    covered = timing.covered_frames(int(timing.duration_s * 30), 30.0)
    for word in unheard:  # their stretch is left to the phonetic head
        assert not covered[int(np.ceil(word.start_s * 30)): int(word.end_s * 30)].any()
    # more words than the audio holds: the words Whisper hears there are aligned, the others named
    audio, text = _clip(LIBRIVOX_CLIP)
    longer = speech_timing(audio, text + " with a purple umbrella and a yellow hat in the morning")
    assert "purple" in longer.warnings[0] and "umbrella" in longer.warnings[0] and "disposed" not in longer.warnings[0]
    assert "disposed" in [w.text for w in longer.words] and longer.coverage > 0.9
    # an empty transcript covers nothing and says so
    empty = speech_timing(audio, "  ...  ")
    assert not empty.covered and "empty" in empty.warnings[0]


def test_whisper_transcribes_long_audio_in_pieces_cut_in_pauses():
    pytest.importorskip("ctranslate2", reason="transcription needs ctranslate2 (requirements.txt)")
    from core.speech import speech_timing
    from core.speech.transcribe import MAX_PIECE_S, pieces_at_pauses

    first, _ = _clip(LONGER_CLIP)
    second, _ = _clip(LIBRIVOX_CLIP)
    pause = np.zeros(int(0.6 * 16000), dtype=np.float32)
    audio = np.concatenate([first, pause, second, pause] * 3)  # 36 s: two pieces
    pieces = pieces_at_pauses(audio)
    assert len(pieces) == 2 and pieces[0].end_s <= MAX_PIECE_S
    cut = int(pieces[0].end_s * 16000)
    assert np.abs(audio[cut - 800: cut + 800]).max() < 1e-3  # the cut falls in a pause, not in a word
    timing = speech_timing(audio)
    assert timing.source == "whisper" and timing.coverage > 0.9
    words = [w.text for w in timing.words]
    assert words.count("young") == 3 and words.count("dashwood") == 3  # nothing lost or doubled at the seam
    assert all(w.start_s >= v.start_s for v, w in zip(timing.words, timing.words[1:]))


def test_speech_in_another_language_is_left_to_the_phonetic_head():
    pytest.importorskip("ctranslate2", reason="transcription needs ctranslate2 (requirements.txt)")
    from core.speech import speech_timing

    audio, _ = _clip("audio/a2f/Claire_joy_mandarin.wav")  # Mandarin: tiny.en writes a stock English line
    timing = speech_timing(audio)
    assert not timing.covered and not timing.phones
    assert "No English heard" in timing.warnings[0]
    english, _ = _clip("audio/a2f/Claire_neutral.wav")
    assert speech_timing(english).coverage > 0.9


def _layer_run(audio, speech, model=None):
    from core.flame import load_flame_mesh
    from core.models import Conditioning, load_model
    from core.pipeline import predict_motion

    template, triangles = load_flame_mesh(str(shared_path("flame/FLAME_sample.ply")))
    template = template.astype(np.float64)
    prediction = predict_motion(model or load_model("default"), audio, template, triangles, Conditioning(speech=speech))
    return template, template + prediction.vertex_offsets()


def test_the_phone_layer_seals_every_bilabial_parts_the_rest_and_rests_in_pauses():
    from core.evaluate import LineTally
    from core.speech import speech_timing

    audio, text = _clip(LONGER_CLIP)
    silence = np.zeros(16000, dtype=np.float32)  # a one-second pause after the sentence
    audio = np.concatenate([audio, silence, audio[: 16000 * 2]])
    timing = speech_timing(audio, text + " " + "and mister john dashwood had")
    template, vertices = _layer_run(audio, timing)
    tally = LineTally()
    tally.add(vertices, template, timing.phones)
    summary = tally.summary()
    assert summary["line_bilabials"] >= 7 and summary["line_seal_rate"] == 1.0
    assert summary["line_tongue_stops"] >= 5 and summary["line_seal_rate_tongue_stops"] == 0.0
    assert summary["pauses"] >= 1 and summary["pause_face_offset_max_mm"] <= 1.0
    assert abs(summary["pause_lip_gap_median_mm"]) <= 0.3
    assert summary["aperture_p95"] >= 0.15  # the mouth opens at the vowels


def test_without_words_the_face_still_rests_in_silence_and_never_moves_without_triangles():
    from core.flame import load_flame_mesh
    from core.models import Conditioning, load_model
    from core.pipeline import predict_motion

    audio, _ = _clip(LIBRIVOX_CLIP)
    audio = np.concatenate([np.zeros(24000, dtype=np.float32), audio])  # 1.5 s of silence first
    template, vertices = _layer_run(audio, None)
    offsets = np.linalg.norm(vertices - template, axis=2).max(axis=1)
    assert offsets[:40].max() < 1e-3 and offsets[50:].max() > 2e-3  # at rest, then speaking
    # a bare template (no triangles) gets the model's motion untouched
    model = load_model("default")
    plain = predict_motion(model, audio, template, None, Conditioning())
    assert plain.info.get("phones") is None


def test_transcribe_command_prints_words_and_phones_and_animate_takes_a_transcript_file(tmp_path, capsys):
    from core.cli import main

    wav = str(shared_path(LIBRIVOX_CLIP))
    assert main(["transcribe", "--audio", wav, "--transcript", "he was not an ill disposed young man"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["source"] == "given" and [w["word"] for w in printed["words"]][-1] == "man"
    assert {"phone", "start", "end"} <= set(printed["phones"][0])
    words = tmp_path / "words.txt"
    words.write_text("he was not an ill disposed young dog")  # one word wrong
    out = tmp_path / "m.npy"
    assert main(["animate", "--audio", wav, "--template", str(shared_path("flame/FLAME_sample.ply")),
                 "--out", str(out), "--transcript", f"@{words}", "--device", "cpu"]) == 0
    assert "dog" in capsys.readouterr().err  # warned, named, and animated all the same
    assert np.load(out).shape[1:] == (5023, 3)
    assert main(["animate", "--audio", wav, "--template", "x.ply", "--out", str(tmp_path / "n.npy"),
                 "--transcript", "@/no/such/file.txt"]) == 2


def test_the_phone_layer_stays_in_bounds_on_a_head_whose_lips_rest_overlapped():
    """Some heads rest with the lips overlapped by millimetres (a corpus speaker does): the lip
    line's 3D distance then first shrinks as the jaw opens, and nothing may run away."""
    from core.flame import load_flame_mesh
    from core.lips import LipSeal
    from core.models import Conditioning, load_model
    from core.pipeline import predict_motion
    from core.speech import speech_timing

    template, triangles = load_flame_mesh(str(shared_path("flame/FLAME_sample.ply")))
    overlapped = template + 0.004 * LipSeal(template, triangles).field  # each lip 2 mm further into the other
    audio, text = _clip(LIBRIVOX_CLIP)
    prediction = predict_motion(load_model("default"), audio, overlapped, triangles,
                                Conditioning(speech=speech_timing(audio, text)))
    offsets = np.linalg.norm(prediction.vertex_offsets(), axis=2)
    assert offsets.max() < 0.025  # a jaw can open 2.5 cm at most
    assert np.percentile(offsets.max(axis=1), 50) > 1e-3  # and it does speak
