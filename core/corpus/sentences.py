"""Sentences for the synthetic corpus: a small grammar whose word choices balance English phonemes.

The word pools are this project's own; pronunciations come from the CMU dictionary that ships in
pocketsphinx's wheel (found at run time). Each slot is filled with the candidate word whose
phonemes are rarest so far, so bilabials, labiodentals, rounded vowels and the rare phonemes
(ZH, OY, TH, DH, UH) keep turning up in every corpus, not only the frequent ones.

The default grammar has about 140 words, and every speaker reads the same sentences, as VOCASET's
subjects do. `wide=True` adds several hundred more words and more sentence shapes, for corpora in
which training speakers read sentences of their own (`core corpus --distinct-sentences`): a decoder
that has heard 84 words 22 times each can learn the words instead of the sounds.
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

WIDE_WORDS = {  # more of everyday English, for `wide` generators; words missing from the dictionary are dropped
    "name": ("Abby Ben Carmen Dmitri Emma Felix Grace Harvey Imogen Jamal Kevin Lena Malcolm Naomi Oscar "
             "Priya Quentin Rosa Simon Tamsin Uma Vernon Wendy Xavier Yusuf Zoe Ambrose Bianca Cooper Desmond "
             "Eamon Philippa Thomas Morgan Barbara Jasmine Leopold Mabel Rupert Sophie").split(),
    "adj": ("ancient angry bitter bright broken busy careful cheerful clumsy crooked curious damp dizzy eager "
            "empty famous fancy fierce gentle giant golden grumpy handsome hollow humble icy itchy jolly "
            "lazy little lonely lucky magic mellow messy modern narrow noisy odd orange pale patient plump "
            "polite purple rapid rusty salty sharp silly simple sleepy slim sober soft sour spicy sticky "
            "sturdy sudden sweet tender thick thin tidy tiny tough ugly vast warmhearted wet wicked wise "
            "wooden young zealous humid brittle").split(),
    "noun": ("apple anchor basket blanket bottle butter cabbage camera candle carpet castle chimney cookie "
             "cupboard dragon drum engine envelope fabric fence fiddle garden giraffe guitar hammer helmet "
             "island jacket kettle kitten ladder lamp lemon letter magnet map marble meadow melon monkey "
             "needle notebook ocean onion paddle panther pebble pencil pepper piano pickle pirate planet "
             "plum pocket pumpkin rabbit ribbon robot rocket saddle salmon sandwich scarf shovel spider "
             "sponge stamp statue suitcase sweater tablet teapot ticket tiger toaster tomato trumpet "
             "tulip turtle wagon walnut whistle wizard zebra bamboo biscuit bishop compass mammoth "
             "emblem hamper lumber muffin napkin nugget pamphlet thimble vampire wombat").split(),
    "verb": ("admired baked believed bent blamed boiled bumped buried carried cleaned copied covered "
             "crushed delivered described dropped dusted emptied examined fetched filled followed "
             "gathered guarded hammered handled hid hugged imagined jumbled kept kicked knitted lifted "
             "locked mailed mended missed mixed nibbled noticed opened packed painted peeled pinched "
             "planted poked pulled punished rescued robbed rubbed sampled scribbled shipped shook "
             "signed skimmed smelled snapped squeezed stamped stirred stole stumbled tapped thumped "
             "tickled traded trimmed tugged wrapped whipped zipped").split(),
    "place": ("under the bed|beside the pond|inside the cupboard|across the valley|behind the barn|"
              "beyond the mountains|in the basement|on the rooftop|near the bakery|outside the palace|"
              "around the campfire|by the window|between the pillows|up the chimney|along the beach|"
              "past the temple|in the bathtub|under the umbrella|at the market|beneath the maple tree").split("|"),
    "time": ("last February|every April|at midnight|before breakfast|after lunch|on Wednesday|"
             "in the springtime|by Tuesday|most evenings|at dawn|during the storm|once upon a time|"
             "by the weekend|yesterday afternoon|next September").split("|"),
    "det": "a some this those no another each".split(),
}

WIDE_TEMPLATES = (
    "{det} {noun} is {adj}, so {name} {verb} it {place}.",
    "Did {name} say the {noun} was {adj} {time}?",
    "{name} never {verb} {det} {adj} {noun}; {name} did.",
    "If {det} {noun} looks {adj}, {name} {verb} {det} {noun}.",
    "{time}, {det} {adj} {noun} {verb} {det} {adj} {noun} {place}.",
    "How {adj} was {det} {noun} that {name} {verb}?",
)

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

    def __init__(self, seed: int | str = 0, dictionary: str | None = None, wide: bool = False):
        self.rng = random.Random(seed)
        self.words = {slot: list(pool) for slot, pool in WORDS.items()}
        self.templates = TEMPLATES
        self.candidates = 6  # words weighed per slot: more favours rare phonemes, fewer spreads the vocabulary
        if wide:
            self.candidates = 3
            self.words = {slot: pool + [w for w in WIDE_WORDS[slot] if w not in pool] for slot, pool in self.words.items()}
            self.templates = TEMPLATES + WIDE_TEMPLATES
        vocabulary = {w for pool in self.words.values() for entry in pool for w in _words_of(entry)}
        vocabulary |= {w for t in self.templates for w in _words_of(t.replace("{", " ").replace("}", " "))}
        self.pron = load_pronunciations(vocabulary, dictionary)
        if wide:  # espeak-ng clips are aligned with this dictionary: every word must be in it
            self.words = {slot: [e for e in pool if all(w in self.pron for w in _words_of(e))]
                          for slot, pool in self.words.items()}
        self.counts: Counter[str] = Counter({p: 1 for p in PHONEMES})

    def phonemes(self, text: str) -> list[str]:
        return [p for w in _words_of(text) for p in self.pron.get(w, [])]

    def _score(self, entry: str) -> float:
        phones = self.phonemes(entry)
        total = sum(self.counts.values())
        return sum(total / self.counts[p] for p in phones) / max(len(phones), 1) + self.rng.random() * 2.0

    def sentence(self) -> str:
        template = self.rng.choice(self.templates)
        filled = template
        for slot in ("name", "adj", "noun", "verb", "place", "time", "det"):
            while "{" + slot + "}" in filled:
                candidates = self.rng.sample(self.words[slot], k=min(self.candidates, len(self.words[slot])))
                best = max(candidates, key=self._score)
                filled = filled.replace("{" + slot + "}", best, 1)
        self.counts.update(self.phonemes(filled))
        return filled[0].upper() + filled[1:]

    def sentences(self, n: int, avoid: set[str] | frozenset = frozenset()) -> list[str]:
        """`n` different sentences, none of them in `avoid`."""
        seen: set[str] = set(avoid)
        out: list[str] = []
        while len(out) < n:
            s = self.sentence()
            if s not in seen:
                seen.add(s)
                out.append(s)
        return out
