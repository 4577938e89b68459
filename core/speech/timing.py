"""Timed words and phones for a clip: a given transcript or Whisper's, force-aligned piece by piece.

Where a stretch cannot be trusted (alignment failed, a word the audio does not hold, no English
heard) it is left uncovered and says so in `warnings`; the motion stage then falls back to the
model's own phonetic head there. Nothing here raises for a bad transcript: a clip always animates.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field

import numpy as np

from ..align import AlignmentError, align_words
from ..errors import TalkingHeadError
from .lexicon import letter_to_sound, spoken_words
from .transcribe import FRAME_S, MAX_PIECE_S, QUIET_DB, SAMPLE_RATE, Piece, Transcriber, frame_levels_db

# a word whose acoustic score per 10 ms frame falls below this was forced into audio that does not
# hold it (pocketsphinx log units, the aligner downsampled by 2). Heard words score about -15 (median);
# short function words at a sentence's end reach -50; words not said -48 to -130, mostly below -70
UNHEARD_SCORE = -60.0
UNHEARD_MARGIN_S = 0.05
ALIGN_DOWNSAMPLE = 2  # half the aligner's time for ~5 ms on phone boundaries
WHOLE_CLIP_S = 120.0
# short, unstressed words: they fit badly when said fast or shouted, and a wrong one hardly moves the lips
FUNCTION_WORDS = frozenset(("a an the of to in on at by as for with from and or but nor so if is was are were be been am "
                            "i you he she it we they me him her us them my his its our your their there then than "
                            "that this these those had has have do did not no would could should can will shall may "
                            "might must just").split())
MIN_WORD_RATE = 1.0  # words per second of voiced audio below which a transcribed piece is not English
MIN_VOICED_S = 2.0  # a given transcript of a clip up to this long is aligned in one go  # the stretch left to the phonetic head reaches this far past such a word


@dataclass
class Word:
    text: str
    start_s: float
    end_s: float
    heard: bool = True  # False: forced into audio that does not hold it; its stretch is uncovered


@dataclass
class SpeechTiming:
    """What was said and when, over a clip of `duration_s`."""

    duration_s: float
    words: list[Word] = field(default_factory=list)
    phones: list[tuple[str, float, float]] = field(default_factory=list)  # ARPAbet or SIL, covered stretches only
    covered: list[tuple[float, float]] = field(default_factory=list)  # where the phones are trusted
    transcript: str = ""
    source: str = "none"  # "given", "whisper" or "none"
    warnings: list[str] = field(default_factory=list)

    def covered_frames(self, n_frames: int, fps: float) -> np.ndarray:
        """(n_frames,) bool: frames whose time falls in a covered stretch."""
        times = np.arange(n_frames) / fps
        mask = np.zeros(n_frames, dtype=bool)
        for start, end in self.covered:
            mask |= (times >= start) & (times < end)
        return mask

    @property
    def coverage(self) -> float:
        return sum(e - s for s, e in self.covered) / self.duration_s if self.duration_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "duration_s": round(self.duration_s, 3), "source": self.source, "transcript": self.transcript,
            "coverage": round(self.coverage, 3),
            "words": [{"word": w.text, "start": round(w.start_s, 3), "end": round(w.end_s, 3), "heard": w.heard}
                      for w in self.words],
            "phones": [{"phone": p, "start": round(s, 3), "end": round(e, 3)} for p, s, e in self.phones],
            "covered": [[round(s, 3), round(e, 3)] for s, e in self.covered],
            "warnings": self.warnings,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1)


def read_transcript_option(value: str | None) -> str | None:
    """A --transcript value: "@FILE" reads the words from a text file, anything else is the words
    themselves; None means "transcribe them"."""
    if value is None or not value.startswith("@"):
        return value
    path = value[1:]
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TalkingHeadError(f"Cannot read the transcript file {path} ({type(exc).__name__}); give a UTF-8 text "
                               "file of the spoken words, or the words themselves without '@'.") from None


def _distribute(words: list[str], pieces: list[Piece]) -> list[list[str]]:
    """The given transcript's words shared over pieces that Whisper transcribed, piece by piece:
    each piece takes the given words up to the last one matching what Whisper heard in it (looked
    for just ahead, so a line said twice is not matched to its second saying), plus as many as
    Whisper heard after that match."""
    out: list[list[str]] = [[] for _ in pieces]
    position = 0
    for k, piece in enumerate(pieces):
        if k == len(pieces) - 1:
            out[k] = words[position:]
            break
        heard = spoken_words(piece.text) if piece.has_speech else []
        if not heard:
            continue
        window = words[position: position + 2 * len(heard) + 10]
        blocks = [b for b in difflib.SequenceMatcher(a=window, b=heard, autojunk=False).get_matching_blocks() if b.size]
        if blocks:
            last = blocks[-1]
            end = position + last.a + last.size + (len(heard) - last.b - last.size)
        else:
            end = position + len(heard)
        out[k] = words[position:end]
        position = min(end, len(words))
    return out


def speech_timing(audio: np.ndarray, transcript: str | None = None, transcribe: bool = True,
                  should_cancel=None, transcriber: Transcriber | None = None) -> SpeechTiming:
    """Timed words and phones of 16 kHz mono `audio`.

    `transcript`: the words spoken (None: transcribe them with Whisper when `transcribe`, else
    nothing is covered). An empty transcript is warned about and nothing is covered."""
    duration = len(audio) / SAMPLE_RATE
    timing = SpeechTiming(duration_s=duration)
    if transcript is not None:
        words = spoken_words(transcript)
        timing.source, timing.transcript = "given", transcript.strip()
        if not words:
            timing.warnings.append("The transcript is empty, so the phonetic head places the lips for the whole "
                                   "clip; type the spoken words, or clear the field to transcribe them.")
            return timing
        if duration <= WHOLE_CLIP_S:
            whole = SpeechTiming(duration_s=duration, transcript=timing.transcript, source="given")
            _align_piece(audio, Piece(0.0, duration), words, whole, transcriber)
            if whole.covered or duration <= MAX_PIECE_S + 5:
                return whole
        # long audio (or a whole clip the aligner gave up on): Whisper finds where the given words
        # fall, so each piece aligns on its own
        try:
            pieces = (transcriber or Transcriber.shared()).transcribe(audio, should_cancel)
            shares = _distribute(words, pieces)
        except TalkingHeadError:
            pieces, shares = [Piece(0.0, duration)], [words]
    elif transcribe:
        try:
            pieces = (transcriber or Transcriber.shared()).transcribe(audio, should_cancel)
        except TalkingHeadError as exc:
            timing.warnings.append(f"{exc} The phonetic head places the lips instead.")
            return timing
        timing.source = "whisper"
        for piece in pieces:
            _check_word_rate(audio, piece, timing)
        shares = [spoken_words(p.text) if p.has_speech else [] for p in pieces]
        timing.transcript = " ".join(p.text for p in pieces if p.has_speech).strip()
    else:
        return timing
    for piece, share in zip(pieces, shares):
        if should_cancel and should_cancel():
            break
        _align_piece(audio, piece, share, timing, transcriber)
    if not timing.words and timing.source == "whisper" and not timing.warnings:
        timing.warnings.append("No English speech was heard, so the phonetic head places the lips; give the "
                               "transcript if there are words.")
    return timing


def _check_word_rate(audio: np.ndarray, piece: Piece, timing: SpeechTiming) -> None:
    """Whisper tiny.en writes a stock English line ("Thank you for watching!") over speech in other
    languages: English runs 2-6 words a second of voiced audio, such lines under 1. A piece that
    slow is left to the phonetic head."""
    if not piece.has_speech:
        return
    segment = audio[int(piece.start_s * SAMPLE_RATE): int(piece.end_s * SAMPLE_RATE)]
    voiced_s = float((frame_levels_db(segment) > QUIET_DB).sum()) * FRAME_S
    if voiced_s >= MIN_VOICED_S and len(spoken_words(piece.text)) / voiced_s < MIN_WORD_RATE:
        timing.warnings.append(f"No English heard at {piece.start_s:.1f}-{piece.end_s:.1f} s (the transcriber "
                               f"heard only \"{piece.text}\"), so the phonetic head places the lips there; give "
                               "the transcript if there are English words.")
        piece.has_speech = False


def _align_piece(audio: np.ndarray, piece: Piece, words: list[str], timing: SpeechTiming,
                 transcriber: "Transcriber | None | bool" = None) -> None:
    if not words:
        return
    segment = audio[int(piece.start_s * SAMPLE_RATE): int(piece.end_s * SAMPLE_RATE)]
    try:
        aligned = align_words(segment, words, guess=letter_to_sound, downsample=ALIGN_DOWNSAMPLE)
    except AlignmentError as exc:
        if timing.source == "given" and transcriber is not False:
            # more words than the audio can hold: align what Whisper hears there instead, and name
            # the given words it did not hear
            try:
                heard = spoken_words((transcriber or Transcriber.shared()).transcribe_piece(segment)[0])
                aligned = align_words(segment, heard, guess=letter_to_sound, downsample=ALIGN_DOWNSAMPLE) if heard else None
            except TalkingHeadError:
                aligned = None
            if aligned:
                matcher = difflib.SequenceMatcher(a=words, b=heard, autojunk=False)
                kept = {i for block in matcher.get_matching_blocks() for i in range(block.a, block.a + block.size)}
                missing = [w for i, w in enumerate(words) if i not in kept]
                named = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
                timing.warnings.append(f"Not heard in the audio at {piece.start_s:.1f}-{piece.end_s:.1f} s: {named}. "
                                       "The words heard there were aligned instead; check the transcript.")
                _add_aligned(aligned, piece, timing)
                return
        timing.warnings.append(f"{piece.start_s:.1f}-{piece.end_s:.1f} s could not be aligned ({exc}); the "
                               "phonetic head places the lips there.")
        return
    _add_aligned(aligned, piece, timing)


def _add_aligned(aligned, piece: Piece, timing: SpeechTiming) -> None:
    unheard_spans, unheard_words = [], []
    for name, start, end, score, phones in aligned:
        start, end = start + piece.start_s, end + piece.start_s
        if name in ("<sil>", "<s>", "</s>", "[NOISE]"):
            timing.phones.append(("SIL", start, end))
            continue
        heard = score >= UNHEARD_SCORE
        timing.words.append(Word(name, start, end, heard))
        if heard:
            timing.phones += [(p, s + piece.start_s, e + piece.start_s) for p, s, e in phones]
        else:
            unheard_words.append(name)
            unheard_spans.append((start - UNHEARD_MARGIN_S, end + UNHEARD_MARGIN_S))
    spans = [(piece.start_s, piece.end_s)]
    for cut_start, cut_end in unheard_spans:
        spans = [part for s, e in spans for part in ((s, min(e, cut_start)), (max(s, cut_end), e)) if part[1] > part[0]]
    timing.covered += spans
    # a given word that fits badly is worth a look; short function words fit badly in fast or
    # shouted speech all the time, and Whisper's own words need no checking by the animator
    worth_naming = [w for w in unheard_words if w not in FUNCTION_WORDS]
    if worth_naming and timing.source == "given":
        timing.warnings.append(f"Not heard in the audio, so the phonetic head places the lips there: "
                               f"{', '.join(worth_naming)}. Check the transcript.")
