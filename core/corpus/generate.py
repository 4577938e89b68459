"""Write a synthetic 4D talking-head corpus in VOCASET's layout.

    python -m core corpus --out corpus/ --speakers 48 --sentences 40 --seed 0

    wav/<subject>_<sentence>.wav           16 kHz speech
    vertices_npy/<subject>_<sentence>.npy  (frames, 15069) float32 at 30 fps, metres
    templates.pkl                          subject -> (5023, 3) neutral head
    meta/<subject>_<sentence>.json         phones and times, voice, emotion and intensity, style, text
    splits.json                            train / val / test subjects

Deterministic for a seed: each clip's randomness comes from (seed, subject, sentence). Test and
validation speakers speak with voices held out of training and have their own styles. A share of
each speaker's sentences is spoken with an emotion (label and intensity), face and voice alike;
training speakers can also get augmented copies (`<sentence>a1`, ...) of every clip.
"""

from __future__ import annotations

import json
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..models.base import EMOTIONS
from .articulation import (FPS, J_JAW, J_RAISE, J_ROUND, J_SPREAD, FaceRig, SpeakingStyle, blink_curve, random_identity,
                           soften_jaw, viseme_curves)
from .augment import KINDS, augment_clip
from .emotion import PROFILES, articulation_bias, emotional_style, expression_curves
from .speech import HELD_OUT_VOICES, INSTALL_HINT, available_voices, require_tools, synthesise, synthesiser_of


SYNTHESISER_NAMES = {"festival": "festival", "espeak": "espeak-ng", "piper": "piper"}  # as clip metadata records them


@dataclass
class Speaker:
    name: str
    split: str
    base_head: str
    voice: str
    stretch: float
    pitch_cents: float
    style: SpeakingStyle


def plan_speakers(n_speakers: int, seed: int, heads: list[str], voices: list[str],
                  balance_synthesisers: bool = False) -> list[Speaker]:
    """Speakers with their split, head, voice, rate, pitch and style. Training speakers cycle through
    the training voices; with `balance_synthesisers` they cycle through the synthesisers first, so
    one with a single voice (Piper's) speaks for as many speakers as espeak-ng's fourteen together."""
    rng = np.random.default_rng([seed, 0])
    n_test = max(1, round(n_speakers / 6))
    n_val = max(1, round(n_speakers / 6)) if n_speakers >= 3 else 0
    train_voices = [v for v in voices if v not in HELD_OUT_VOICES] or voices
    heldout = [v for v in voices if v in HELD_OUT_VOICES] or voices
    engines = list(dict.fromkeys(synthesiser_of(v) for v in train_voices))
    speakers = []
    for i in range(n_speakers):
        split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        if split != "train":
            voice = heldout[i % len(heldout)]
        elif balance_synthesisers:
            j = i - n_test - n_val
            own = [v for v in train_voices if synthesiser_of(v) == engines[j % len(engines)]]
            voice = own[(j // len(engines)) % len(own)]
        else:
            voice = train_voices[i % len(train_voices)]
        speakers.append(Speaker(
            name=f"SYN{i + 1:02d}", split=split, base_head=heads[i % len(heads)], voice=voice,
            stretch=float(rng.uniform(0.85, 1.2)), pitch_cents=float(rng.uniform(-350, 350)),
            style=SpeakingStyle.random(rng),
        ))
    return speakers


def canonical_head(path: str, triangles: np.ndarray) -> np.ndarray:
    """A head turned upright and facing +z (some FLAME fits are tilted): the rig and the models work there."""
    from ..flame import load_template
    from ..head_frame import estimate_head_frame

    head = load_template(path)
    return estimate_head_frame(head, triangles).points_to_canonical(head)


_worker_rigs: dict[str, FaceRig] = {}  # per worker process: a speaker's rig is built once, not per clip


@dataclass
class ClipPlan:
    speaker: Speaker
    sentence_id: int
    text: str
    emotion: str
    intensity: float
    augment_copies: int
    augment_kinds: tuple


def plan_emotion(speaker_index: int, sentence_id: int, share: float, seed: int) -> tuple[str, float]:
    """Neutral, or one of the six emotions in turn (so every speaker has each), at 0.1-1 intensity:
    faint emotions too, or a model never sees how an expression grows out of neutral."""
    rng = np.random.default_rng([seed, speaker_index, sentence_id, 20_000])
    if rng.random() >= share:
        return "neutral", 0.0
    return EMOTIONS[1 + (speaker_index + sentence_id) % (len(EMOTIONS) - 1)], float(rng.uniform(0.1, 1.0))


def clip_rng(seed: int, subject: str, sentence_id: int) -> np.random.Generator:
    """A clip's randomness; its first draw seeds the clip's motion (blinks, expression timing)."""
    return np.random.default_rng([seed, int(subject[3:]), sentence_id])


def motion_from_meta(rig: FaceRig, meta: dict, n_frames: int, seed: int) -> np.ndarray:
    """(n_frames, V, 3) vertices of an original (not augmented) clip, rebuilt from its metadata and
    the corpus seed: what the generator wrote, up to the rounding of the phone times."""
    from .speech import Phone

    motion_seed = clip_rng(seed, meta["subject"], int(meta["sentence"])).integers(2**31)
    phones = [Phone(p, float(start), float(end)) for p, start, end in meta["phones"]]
    return _motion(rig, phones, n_frames, SpeakingStyle(**meta["style"]), meta["emotion"], float(meta["intensity"]),
                   np.random.default_rng(motion_seed))


def _motion(rig: FaceRig, phones, n_frames: int, style: SpeakingStyle, emotion: str, intensity: float,
            rng: np.random.Generator) -> np.ndarray:
    """(n_frames, V, 3) vertices: articulation from phones, the emotion on the whole face, blinks."""
    style = emotional_style(style, emotion, intensity)
    curves = viseme_curves(phones, n_frames, style)
    bias = articulation_bias(emotion, intensity)
    curves[:, J_JAW] = soften_jaw(curves[:, J_JAW] + bias["jaw"])
    curves[:, J_SPREAD] = np.minimum(curves[:, J_SPREAD] + bias["spread"] * (1 - np.clip(curves[:, J_ROUND], 0, 1)), 1.3)
    curves[:, J_RAISE] = np.minimum(curves[:, J_RAISE] + bias["raise"], 1.0)
    blinks = blink_curve(n_frames, style.blink_rate, rng)
    expression = expression_curves(emotion, intensity, n_frames, rng) if emotion != "neutral" else None
    return rig.deform(curves, style, blinks, expression)


def _write_clip(out: str, stem: str, audio: np.ndarray, vertices: np.ndarray, meta: dict) -> None:
    import soundfile

    soundfile.write(os.path.join(out, "wav", stem + ".wav"), audio, 16000, subtype="PCM_16")
    np.save(os.path.join(out, "vertices_npy", stem + ".npy"), vertices.reshape(len(vertices), -1).astype(np.float32))
    with open(os.path.join(out, "meta", stem + ".json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)


def _clip(job: tuple) -> str:
    out, plan = job[:2]
    stem = f"{plan.speaker.name}_sentence{plan.sentence_id:02d}"
    last = stem + (f"a{plan.augment_copies}" if plan.augment_copies else "")
    if os.path.isfile(os.path.join(out, "meta", last + ".json")):  # written last: the clip is complete
        return stem
    try:
        return _make_clip(*job)
    except Exception as exc:  # say which clip, so it can be reproduced
        raise RuntimeError(f"clip {stem} ({plan.speaker.voice}, '{plan.text}'): {exc}") from exc


def _make_clip(out: str, plan: ClipPlan, template: np.ndarray, triangles: np.ndarray, eyelids, seed: int) -> str:
    speaker = plan.speaker
    rng = clip_rng(seed, speaker.name, plan.sentence_id)
    profile = PROFILES[plan.emotion]
    # the voice carries the emotion too: pitch, rate and loudness
    stretch = speaker.stretch / (1 + (profile.rate - 1) * plan.intensity)
    pitch = speaker.pitch_cents + profile.pitch_cents * plan.intensity
    volume = 1 + (profile.volume - 1) * plan.intensity
    audio, phones = synthesise(plan.text, speaker.voice, stretch, pitch, volume)
    if speaker.name not in _worker_rigs:
        _worker_rigs[speaker.name] = FaceRig(template, triangles, eyelids)
    rig = _worker_rigs[speaker.name]
    stem = f"{speaker.name}_sentence{plan.sentence_id:02d}"
    meta = {
        "subject": speaker.name, "sentence": plan.sentence_id, "text": plan.text, "fps": FPS,
        "voice": {"synthesiser": SYNTHESISER_NAMES[synthesiser_of(speaker.voice)],
                  "name": speaker.voice, "stretch": stretch, "pitch_cents": pitch, "volume": volume,
                  # festival says when each phone is spoken; the others' times are forced alignments
                  "timing": "synthesiser" if synthesiser_of(speaker.voice) == "festival" else "pocketsphinx alignment"},
        "emotion": plan.emotion, "intensity": plan.intensity, "style": speaker.style.as_dict(),
        "base_head": os.path.basename(speaker.base_head),
    }
    motion_seed = rng.integers(2**31)
    for copy in range(plan.augment_copies + 1):
        clip_audio, clip_phones, record = audio, phones, None
        if copy:
            clip_audio, clip_phones, record = augment_clip(audio, phones, rng, plan.augment_kinds)
        n_frames = max(1, int(round(len(clip_audio) / 16000 * FPS)))
        vertices = _motion(rig, clip_phones, n_frames, speaker.style, plan.emotion, plan.intensity,
                           np.random.default_rng(motion_seed))
        _write_clip(out, stem + (f"a{copy}" if copy else ""), clip_audio, vertices, {
            **meta, "phones": [[p.phone, round(p.start, 4), round(p.end, 4)] for p in clip_phones],
            **({"augmentation": record, "augmented_from": stem} if copy else {})})
    return stem


def generate_corpus(out: str, n_speakers: int, n_sentences: int, seed: int, heads: list[str],
                    eyelids: np.ndarray | None = None, workers: int = 2, progress=print,
                    synthesisers: tuple[str, ...] = ("festival", "espeak"), emotional_share: float = 0.5,
                    augment_copies: int = 0, augment_kinds: tuple[str, ...] = KINDS,
                    balance_synthesisers: bool = False, distinct_sentences: bool = False) -> dict:
    """Generate the corpus into `out`; returns the split dict. With `distinct_sentences` each training
    speaker reads `n_sentences` sentences of its own from a wider vocabulary (ids after the shared
    ones), while validation and test speakers read the shared list, so their clips are the same as
    in a corpus without it."""
    from ..mesh_io import read_mesh
    from .sentences import SentenceGenerator

    require_tools()
    voices = available_voices(tuple(synthesisers))
    if not voices:
        raise RuntimeError(f"No voice found for {', '.join(synthesisers)}: {INSTALL_HINT}")
    for sub in ("wav", "vertices_npy", "meta"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    _, triangles = read_mesh(heads[0])
    neutral = []
    for head in heads:  # identities start from closed-mouth neutral heads; an open-mouth fit is not one
        gap_mm = FaceRig(canonical_head(head, triangles), triangles).rest_gap * 1000
        if gap_mm > 1.0:
            progress(f"skipping {os.path.basename(head)}: its mouth rests {gap_mm:.1f} mm open, not a neutral head")
        else:
            neutral.append(head)
    if not neutral:
        raise RuntimeError("None of the heads has a closed neutral mouth; pass --heads with neutral FLAME heads.")
    speakers = plan_speakers(n_speakers, seed, neutral, voices, balance_synthesisers)
    texts = SentenceGenerator(seed).sentences(n_sentences)
    sentences = dict(enumerate(texts, 1))
    readings = {sp.name: list(sentences) for sp in speakers}  # speaker -> the sentence ids it reads
    if distinct_sentences:
        trainees = [sp.name for sp in speakers if sp.split == "train"]
        own = SentenceGenerator(f"{seed}:wide", wide=True).sentences(n_sentences * len(trainees), set(texts))
        for j, name in enumerate(trainees):
            ids = range(n_sentences * (j + 1) + 1, n_sentences * (j + 2) + 1)
            sentences.update(zip(ids, own[j * n_sentences:(j + 1) * n_sentences]))
            readings[name] = list(ids)
    templates = {}
    jobs = []
    for index, speaker in enumerate(speakers):
        rng = np.random.default_rng([seed, int(speaker.name[3:]), 10_000])
        templates[speaker.name] = random_identity(canonical_head(speaker.base_head, triangles), rng)
        for k in readings[speaker.name]:
            text = sentences[k]
            emotion, intensity = plan_emotion(index, k, emotional_share, seed)
            copies = augment_copies if speaker.split == "train" else 0  # evaluation data stays clean
            plan = ClipPlan(speaker, k, text, emotion, intensity, copies, tuple(augment_kinds))
            jobs.append((out, plan, templates[speaker.name], triangles, eyelids, seed))
    with open(os.path.join(out, "templates.pkl"), "wb") as handle:
        pickle.dump(templates, handle)
    splits = {s: [sp.name for sp in speakers if sp.split == s] for s in ("train", "val", "test")}
    with open(os.path.join(out, "splits.json"), "w", encoding="utf-8") as handle:
        json.dump({**splits, "sentences": {str(k): t for k, t in sentences.items()},
                   "speakers": {sp.name: {"voice": sp.voice, "stretch": sp.stretch, "pitch_cents": sp.pitch_cents,
                                          "style": sp.style.as_dict(), "split": sp.split} for sp in speakers}},
                  handle, indent=1)
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, stem in enumerate(pool.map(_clip, jobs, chunksize=4), 1):
            if done % 20 == 0 or done == len(jobs):
                progress(f"{done}/{len(jobs)} clips ({stem})")
    return splits
