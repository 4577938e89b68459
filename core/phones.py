"""The phone inventory (ARPAbet, as CMUdict, festival and pocketsphinx write it) and per-frame phone
labels: what a model's phonetic auxiliary loss learns to recognise at each motion frame."""

from __future__ import annotations

import numpy as np

ARPABET = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()
# class 0 is silence (between words, before and after speech); the rest are ARPAbet's 39 phones
PHONE_CLASSES = ("SIL",) + tuple(ARPABET)
SILENCES = ("SIL", "SP", "PAU", "H#", "")
IGNORED = -100  # torch's cross-entropy skips frames with this label


def phone_name(label) -> str:
    """A phone label as the inventory spells it: upper case, without stress digits or markers."""
    return "".join(c for c in str(label).upper() if c.isalpha())


def phone_class(label: str) -> int:
    """Index in PHONE_CLASSES of a phone label (stress digits and noise markers such as +SPN+ are
    read leniently); IGNORED for a label outside the inventory."""
    name = phone_name(label)
    if name in SILENCES:
        return 0
    return PHONE_CLASSES.index(name) if name in PHONE_CLASSES else IGNORED


def silences(phones, min_s: float = 0.0) -> list[tuple[float, float]]:
    """[(start s, end s)] of the silences among timed phones (touching SIL phones joined, as a
    word's silence and the phone after it are), those at least `min_s` long."""
    joined: list[list[float]] = []
    for label, start, end in phones:
        if phone_name(label) in SILENCES:
            if joined and start - joined[-1][1] < 1e-3:
                joined[-1][1] = end
            else:
                joined.append([start, end])
    return [(start, end) for start, end in joined if end - start >= min_s]


def frame_phone_labels(phones, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames,) int64: the class of the phone spoken at each frame's time; silence where no phone
    covers it, IGNORED where the phone is outside the inventory."""
    labels = np.zeros(n_frames, dtype=np.int64)
    times = np.arange(n_frames) / fps
    for label, start, end in phones:
        labels[(times >= start) & (times < end)] = phone_class(label)
    return labels
