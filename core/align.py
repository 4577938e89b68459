"""Phoneme timing from audio and its transcript: pocketsphinx forced alignment.

Used where phone times are not known: espeak-ng voices in the synthetic corpus, and real data
such as VOCASET, whose sentences users have as text. pocketsphinx's PyPI wheel carries a US
English acoustic model and the CMU dictionary, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from .errors import TalkingHeadError


class AlignmentError(TalkingHeadError):
    """The transcript cannot be aligned to the audio."""


_DECODERS: dict = {}  # one per process and setting: building one loads the acoustic model (about 0.3 s)


def _decoder(downsample: int = 1):
    """The aligner; `downsample` 2 scores the acoustic model every other 10 ms frame, which halves
    the time and moves phone boundaries by about 5 ms (a sixth of a 30 fps frame)."""
    if downsample not in _DECODERS:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise AlignmentError("Forced alignment needs pocketsphinx: pip install pocketsphinx") from exc
        # wide beams: alignment follows a fixed word sequence, so pruning only loses the path
        _DECODERS[downsample] = Decoder(samprate=16000, bestpath=False, loglevel="FATAL", beam=1e-200, wbeam=1e-200,
                                        pbeam=1e-200, maxhmmpf=-1, ds=downsample)
    return _DECODERS[downsample]


def words_of(transcript: str) -> list[str]:
    """Lower-case words as the CMU dictionary spells them (apostrophes kept, punctuation dropped)."""
    return re.findall(r"[a-z']+", transcript.lower().replace("-", " "))


def align_phones(audio: np.ndarray, transcript: str) -> list[tuple[str, float, float]]:
    """[(ARPAbet phone or SIL, start s, end s)] for 16 kHz mono `audio` saying `transcript`.

    The acoustic model's phones last at least 3 frames (30 ms); fast speech (synthesisers) can
    be shorter, so when alignment fails it is retried on a copy slowed 1.5x (pitch kept)."""
    try:
        return _align(audio, transcript)
    except AlignmentError as first:
        if "dictionary" in str(first) or "empty" in str(first):
            raise
        factor = 1.5
        try:
            phones = _align(_slowed(audio, factor), transcript)
        except AlignmentError:
            raise first from None
        return [(p, start / factor, end / factor) for p, start, end in phones]


def _slowed(audio: np.ndarray, factor: float) -> np.ndarray:
    import shutil
    import subprocess
    import tempfile

    if shutil.which("sox"):  # WSOLA keeps consonant bursts crisper than a phase vocoder
        import soundfile

        with tempfile.TemporaryDirectory(prefix="th_align_") as tmp:
            src, dst = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.wav")
            soundfile.write(src, audio, 16000, subtype="FLOAT")
            subprocess.run(["sox", "-D", src, dst, "tempo", "-s", f"{1 / factor:.5f}"], check=True, capture_output=True)
            return soundfile.read(dst, dtype="float32")[0]
    import librosa

    return librosa.effects.time_stretch(np.asarray(audio, dtype=np.float32), rate=1 / factor)


def _align(audio: np.ndarray, transcript: str) -> list[tuple[str, float, float]]:
    words = words_of(transcript)
    unknown = [w for w in words if _decoder().lookup_word(w) is None]
    if unknown:
        raise AlignmentError(f"Words not in the pronouncing dictionary: {', '.join(sorted(set(unknown)))}. "
                             "Spell them as they sound with dictionary words, or give the phone times in meta/.")
    phones = [phone for *_, word_phones in align_words(audio, words) for phone in word_phones]
    if not phones:
        raise AlignmentError("The alignment found no phones; check that the audio holds the transcript's speech.")
    return phones


def align_words(audio: np.ndarray, words: list[str], guess=None, downsample: int = 1
                ) -> list[tuple[str, float, float, float, list]]:
    """[(word, start s, end s, score per 10 ms frame, [(phone, start s, end s)])] for 16 kHz mono
    `audio` saying `words` in order (silences come as the word "<sil>"). Words the dictionary lacks
    are added with `guess(word)` (a space-separated ARPAbet pronunciation) when it is given.

    The score is the acoustic model's log-likelihood per frame (pocketsphinx's log units): a word
    the audio does not hold is forced into a stretch it fits badly, so its score falls far below
    the others'."""
    decoder = _decoder(downsample)
    if not words:
        raise AlignmentError("The transcript is empty; give the words that are spoken.")
    for word in set(words):
        if decoder.lookup_word(word) is None:
            if guess is None:
                raise AlignmentError(f"Word not in the pronouncing dictionary: {word}.")
            decoder.add_word(word, guess(word), True)
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1, 1) * 32767).astype(np.int16).tobytes()
    try:
        decoder.set_align_text(" ".join(words))
        for second_pass in (False, True):  # words first, then their phones
            if second_pass:
                decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
    except RuntimeError as exc:
        raise AlignmentError(f"The audio could not be aligned with its transcript ({exc}); check that they match.") from None
    alignment = decoder.get_alignment()
    if alignment is None:
        raise AlignmentError("The audio could not be aligned with its transcript; check that they match.")
    out = []
    for word in alignment:
        name = re.sub(r"\(\d+\)$", "", word.name)
        phones = [("SIL" if p.name in ("SIL", "+SPN+", "+NSN+") else p.name, p.start / 100.0,
                   (p.start + p.duration) / 100.0) for p in word]
        out.append((name, word.start / 100.0, (word.start + word.duration) / 100.0,
                    word.score / max(word.duration, 1), phones))
    return out


def read_transcripts(path: str) -> dict[str, str]:
    """Transcripts keyed by clip stem (`<subject>_<sentence>`) or by sentence name alone.

    A JSON object, or a text file of lines `KEY the spoken words`."""
    if not os.path.isfile(path):
        raise AlignmentError(f"Transcript file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.lower().endswith(".json"):
        return {str(k): str(v) for k, v in json.loads(text).items()}
    out = {}
    for line in text.splitlines():
        key, _, words = line.strip().partition(" ")
        if key and words:
            out[key] = words.strip()
    return out


def transcript_for(transcripts: dict[str, str], subject: str, sentence: str) -> str | None:
    return transcripts.get(f"{subject}_{sentence}", transcripts.get(sentence))
