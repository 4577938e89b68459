"""Training clips with recorded speech: real acoustics, the corpus rig's motion.

    python -m core corpus-recorded --corpus corpus32i --speech ../data/real_speech/asterisk --out corpus32r

A model trained on synthetic voices only hears real speech as something new: at real /p b m/ it
opens the lips millimetres short of a seal. This writes a new corpus: the base corpus's clips
(hard-linked, so no space is taken and the feature cache still knows them) plus, for each recorded
prompt with a forced alignment (`<name>.wav` beside `<name>.phone.json`, as tools/real_speech.py
prepares them), clips in which training speakers say it: the recording's audio, and the rig
driving that speaker's head and speaking style from the aligned phone times. A seeded share of the
recordings is held out (the same split `fit-phones --holdout` makes with the same seed) and listed
in `recorded.json`, so what tunes on them stays apart from what trained on them.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np

from ..errors import OutputError
from ..outputs import folder_in_place
from .articulation import FPS, FaceRig, SpeakingStyle
from .generate import _motion, _write_clip, clip_rng
from .speech import Phone

RECORDED_SENTENCE_BASE = 100_000  # recorded clips' sentence ids start here, clear of any text corpus's


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def check_base_corpus(base: str) -> None:
    for required in ("splits.json", "templates.pkl", "wav", "vertices_npy", "meta"):
        if not os.path.exists(os.path.join(base, required)):
            raise OutputError(f"{base} is not a corpus written by `python -m core corpus` ({required} is missing).")


def link_base_corpus(base: str, out: str) -> dict:
    """`out` as a copy of the corpus `base` (clip files hard-linked); returns base's splits.json."""
    for sub in ("wav", "vertices_npy", "meta"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(base, sub))):
            _link_or_copy(os.path.join(base, sub, name), os.path.join(out, sub, name))
    with open(os.path.join(base, "splits.json"), encoding="utf-8") as handle:
        return json.load(handle)


def clip_stem(subject: str, recording: str) -> str:
    """`<subject>_rec-<recording>`, with the recording's name kept to letters, digits and hyphens
    (the loader splits subject from sentence at the last underscore)."""
    return f"{subject}_rec-{re.sub(r'[^A-Za-z0-9-]+', '-', recording)}"


def add_recorded_speech(base: str, out: str, speech_folders: list[str], triangles: np.ndarray,
                        eyelids: np.ndarray | None = None, speakers_per_recording: int = 2,
                        holdout: float = 0.2, seed: int = 0, progress=print) -> dict:
    """Write the new corpus into `out` (new, or an empty folder); returns what recorded.json records."""
    from ..phone_fit import aligned_recordings

    if speakers_per_recording < 1:
        raise OutputError("--speakers-per-recording must be at least 1.")
    if not 0.0 <= holdout < 1.0:
        raise OutputError("--holdout is a share: give a value from 0 to below 1.")
    pairs = aligned_recordings(speech_folders)  # refuses folders without aligned recordings, before any writing
    check_base_corpus(base)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise OutputError(f"{out} already exists and is not empty; choose a new --out folder.")
    with folder_in_place(out) as partial:  # a bad recording half-way leaves nothing behind
        return _write_recorded_corpus(base, partial, pairs, speech_folders, triangles, eyelids,
                                      speakers_per_recording, holdout, seed, progress)


def _write_recorded_corpus(base: str, out: str, pairs: list[tuple[str, str]], speech_folders: list[str],
                           triangles: np.ndarray, eyelids: np.ndarray | None, speakers_per_recording: int,
                           holdout: float, seed: int, progress) -> dict:
    from ..audio import load_audio
    from ..evaluate import read_phone_alignment
    from ..phone_fit import split_holdout
    from ..safe_pickle import load_arrays_pickle

    splits = link_base_corpus(base, out)
    shutil.copy2(os.path.join(base, "templates.pkl"), os.path.join(out, "templates.pkl"))
    templates = load_arrays_pickle(os.path.join(out, "templates.pkl"), "corpus templates")
    speakers = splits.get("speakers", {})
    trainees = [name for name in splits["train"] if name in speakers and name in templates]
    if not trainees:
        raise OutputError(f"{base} has no training speakers with a speaking style in splits.json.")
    fit, held = split_holdout(pairs, holdout, seed)
    rng = np.random.default_rng([seed, 30_000])
    rigs: dict[str, FaceRig] = {}
    written = []
    order = [trainees[i % len(trainees)] for i in rng.permutation(len(fit) * speakers_per_recording)]
    for index, (wav, alignment) in enumerate(fit):
        audio = load_audio(wav)
        phones = read_phone_alignment(alignment)
        n_frames = max(1, int(round(len(audio) / 16000 * FPS)))
        recording = os.path.splitext(os.path.basename(wav))[0]
        with open(alignment, encoding="utf-8") as handle:
            text = json.load(handle).get("t", "")
        chosen = list(dict.fromkeys(order[index * speakers_per_recording:(index + 1) * speakers_per_recording]))
        for subject in chosen:
            if subject not in rigs:
                rigs.clear()  # a rig holds a few MB of fields; one at a time is enough
                rigs[subject] = FaceRig(np.asarray(templates[subject], dtype=np.float64), triangles, eyelids)
            style = SpeakingStyle(**speakers[subject]["style"])
            sentence = RECORDED_SENTENCE_BASE + index
            # as core.corpus.generate.motion_from_meta seeds it, so the clip can be rebuilt from its meta
            motion_rng = np.random.default_rng(clip_rng(seed, subject, sentence).integers(2**31))
            vertices = _motion(rigs[subject], [Phone(p, s, e) for p, s, e in phones], n_frames, style,
                               "neutral", 0.0, motion_rng)
            stem = clip_stem(subject, recording)
            _write_clip(out, stem, audio, vertices, {
                "subject": subject, "sentence": sentence, "text": text, "fps": FPS,
                "voice": {"synthesiser": "recorded", "name": os.path.abspath(wav), "timing": "pocketsphinx alignment"},
                "emotion": "neutral", "intensity": 0.0, "style": style.as_dict(),
                "phones": [[p, round(s, 4), round(e, 4)] for p, s, e in phones]})
            written.append(stem)
        if (index + 1) % 50 == 0 or index + 1 == len(fit):
            progress(f"{index + 1}/{len(fit)} recordings ({len(written)} clips)")
    record = {"base": os.path.abspath(base), "speech": [os.path.abspath(f) for f in speech_folders],
              "seed": seed, "holdout": holdout, "speakers_per_recording": speakers_per_recording,
              "clips": written, "held_out": [os.path.abspath(w) for w, _ in held]}
    with open(os.path.join(out, "recorded.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    with open(os.path.join(out, "splits.json"), "w", encoding="utf-8") as handle:
        json.dump(splits, handle, indent=1)  # written last: the corpus is complete
    return record
