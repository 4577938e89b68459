"""Words as the aligner can say them: numbers spelled out, and a letter-to-sound guess for words
the pronouncing dictionary lacks (names, made-up words, fillers), so every word still aligns.

The guess is rule-based English spelling (digraphs first, then single letters). It is rough, but
an aligner only needs phones close enough to the sound to find the word's span; a bilabial
letter (p, b, m) always gives a bilabial phone, which is what the lips need.
"""

from __future__ import annotations

import re

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
        "seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> list[str]:
    """An integer as English words ("1984" -> nineteen eighty four is not tried: read as a number)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (number_words(n % 100) if n % 100 else [])
    for size, name in ((10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand")):
        if n >= size:
            return number_words(n // size) + [name] + (number_words(n % size) if n % size else [])
    return [str(n)]


def spoken_words(text: str) -> list[str]:
    """Lower-case words of `text` as spoken: digits spelled out ("42" -> forty two, "3.5" -> three
    point five, "%" -> percent, "&" -> and), apostrophes kept, other punctuation dropped."""
    text = text.lower().replace("%", " percent ").replace("&", " and ").replace("-", " ").replace("\u2019", "'")
    words: list[str] = []
    for token in re.findall(r"[a-z']+|\d+(?:[.,]\d+)*", text):
        if token[0].isdigit():
            whole, _, fraction = token.replace(",", "").partition(".")
            words += number_words(int(whole)) if len(whole) < 13 else [_ONES[int(d)] for d in whole]
            if fraction:
                words += ["point"] + [_ONES[int(d)] for d in fraction]
        else:
            token = token.strip("'")
            if token:
                words.append(token)
    return words


# letter groups to ARPAbet, longest first; a rough guess, not a dictionary
_GROUPS = [
    ("tch", "CH"), ("sch", "S K"), ("igh", "AY"), ("ough", "AO"), ("tion", "SH AH N"), ("sion", "ZH AH N"),
    ("ch", "CH"), ("sh", "SH"), ("th", "TH"), ("ph", "F"), ("wh", "W"), ("ck", "K"), ("ng", "NG"), ("qu", "K W"),
    ("gh", ""), ("kn", "N"), ("wr", "R"), ("mb", "M"), ("ee", "IY"), ("ea", "IY"), ("oo", "UW"), ("ou", "AW"),
    ("ow", "OW"), ("oa", "OW"), ("ai", "EY"), ("ay", "EY"), ("ey", "EY"), ("ei", "EY"), ("oi", "OY"), ("oy", "OY"),
    ("au", "AO"), ("aw", "AO"), ("ie", "IY"), ("ue", "UW"), ("ew", "UW"), ("er", "ER"), ("ir", "ER"), ("ur", "ER"),
    ("ar", "AA R"), ("or", "AO R"), ("ll", "L"), ("ss", "S"), ("tt", "T"), ("pp", "P"), ("bb", "B"), ("mm", "M"),
    ("nn", "N"), ("ff", "F"), ("dd", "D"), ("gg", "G"), ("rr", "R"), ("zz", "Z"), ("cc", "K"),
]
_LETTERS = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH", "j": "JH",
    "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R", "s": "S", "t": "T",
    "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "Y", "z": "Z",
}


def letter_to_sound(word: str) -> str:
    """A pronunciation guess (space-separated ARPAbet) for a word the dictionary lacks."""
    word = re.sub(r"[^a-z]", "", word.lower())
    phones: list[str] = []
    i = 0
    while i < len(word):
        if word[i] == "e" and i == len(word) - 1 and i > 1:  # silent final e ("mike")
            break
        if word[i] == "y" and i > 0:  # a vowel after a consonant ("mary", "myth")
            phones.append("IY" if i == len(word) - 1 else "IH")
            i += 1
            continue
        if word[i] == "c" and i + 1 < len(word) and word[i + 1] in "eiy":  # soft c ("cecil")
            phones.append("S")
            i += 1
            continue
        for group, sound in _GROUPS:
            if word.startswith(group, i):
                phones += sound.split()
                i += len(group)
                break
        else:
            phones += _LETTERS[word[i]].split()
            i += 1
    return " ".join(phones) or "AH"
