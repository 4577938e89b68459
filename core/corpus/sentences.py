"""Sentences for the synthetic corpus: a small grammar whose word choices balance English phonemes.

The word pools are this project's own; pronunciations come from the CMU dictionary that ships in
pocketsphinx's wheel (found at run time). Each slot is filled with the candidate word whose
phonemes are rarest so far, so bilabials, labiodentals, rounded vowels and the rare phonemes
(ZH, OY, TH, DH, UH) keep turning up in every corpus, not only the frequent ones.
"""

from __future__ import annotations

import os
import random
from collections import Counter

from ..phones import ARPABET as PHONEMES

WORDS = {
    "name": "Bob Maria Victor Ruth Joan Owen Fiona Paul Boyd Martha Vivian Hugo Judith Shaun Moira Beth".split(),
    "adj": ("blue smooth warm brave foolish vivid proud moody quiet heavy yellow shiny woolen rough bumpy "
            "usual joyful bored cheap fresh thoughtful gloomy hopeful pleasant ").split(),
    "noun": ("boat bubble window feather mirror puppet measure vision oyster violin museum pillow jewel "
             "thumb rhythm voyage fountain zoo moon hook garage treasure mouth bridge umbrella orange "
             "feathers parachute coffee mountain shoes wolf"
             ).split(),
    "verb": ("moved pushed brought found viewed measured bought folded mopped grabbed borrowed "
             "chose loved fixed washed threw spoiled forgot polished juggled"
             ).split(),
    "place": ("by the harbour|beneath the bridge|over the moon|in the museum|through the woods|"
              "above the boathouse|behind the garage|near the fountain|on the balcony|at the zoo").split("|"),
    "time": ("every Monday|this morning|before sunrise|in the evening|on Thursday|at noon|"
             "by November|after the voyage|all summer|without a doubt").split("|"),
    "det": "the my your our his her that every one".split(),
}

TEMPLATES = (
    "{name} {verb} {det} {adj} {noun} {place}.",
    "{det} {adj} {noun} {verb} {det} {noun} {time}.",
    "{time}, {name} {verb} {det} {adj} {noun}.",
    "Why was {det} {noun} so {adj} {place}?",
    "Maybe {name} {verb} {det} {noun} and {det} {adj} {noun}.",
    "{name} and {name} {verb} {det} {adj} {noun} {time}.",
    "Please move {det} {adj} {noun} {place}, {name}.",
    "We found {det} {noun} {place}, but {det} {noun} was {adj}.",
)


def find_cmudict() -> str | None:
    """pocketsphinx's CMU dictionary, if pocketsphinx is installed."""
    try:
        import pocketsphinx
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(pocketsphinx.__file__), "model", "en-us", "cmudict-en-us.dict")
    return path if os.path.isfile(path) else None


def load_pronunciations(words: set[str], path: str | None = None) -> dict[str, list[str]]:
    """word -> phonemes (stress removed) for the words we use; first pronunciation wins."""
    path = path or find_cmudict()
    if path is None:
        raise RuntimeError("The CMU dictionary comes with pocketsphinx: pip install pocketsphinx")
    wanted = {w.lower() for w in words}
    pron: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            parts = line.split()
            if parts and parts[0] in wanted and parts[0] not in pron:
                pron[parts[0]] = ["".join(c for c in p if not c.isdigit()) for p in parts[1:]]
    return pron


def _words_of(text: str) -> list[str]:
    return [w.strip(".,?!").lower() for w in text.split() if w.strip(".,?!")]


class SentenceGenerator:
    """Deterministic, phoneme-balanced sentences from the grammar above."""

    def __init__(self, seed: int = 0, dictionary: str | None = None):
        self.rng = random.Random(seed)
        vocabulary = {w for pool in WORDS.values() for entry in pool for w in _words_of(entry)}
        vocabulary |= {w for t in TEMPLATES for w in _words_of(t.replace("{", " ").replace("}", " "))}
        self.pron = load_pronunciations(vocabulary, dictionary)
        self.counts: Counter[str] = Counter({p: 1 for p in PHONEMES})

    def phonemes(self, text: str) -> list[str]:
        return [p for w in _words_of(text) for p in self.pron.get(w, [])]

    def _score(self, entry: str) -> float:
        phones = self.phonemes(entry)
        total = sum(self.counts.values())
        return sum(total / self.counts[p] for p in phones) / max(len(phones), 1) + self.rng.random() * 2.0

    def sentence(self) -> str:
        template = self.rng.choice(TEMPLATES)
        filled = template
        for slot in ("name", "adj", "noun", "verb", "place", "time", "det"):
            while "{" + slot + "}" in filled:
                candidates = self.rng.sample(WORDS[slot], k=min(6, len(WORDS[slot])))
                best = max(candidates, key=self._score)
                filled = filled.replace("{" + slot + "}", best, 1)
        self.counts.update(self.phonemes(filled))
        return filled[0].upper() + filled[1:]

    def sentences(self, n: int) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        while len(out) < n:
            s = self.sentence()
            if s not in seen:
                seen.add(s)
                out.append(s)
        return out
