"""Write a synthetic 4D talking-head corpus in VOCASET's layout.

    python -m core corpus --out corpus/ --speakers 48 --sentences 40 --seed 0

    wav/<subject>_<sentence>.wav           16 kHz speech
    vertices_npy/<subject>_<sentence>.npy  (frames, 15069) float32 at 30 fps, metres
    templates.pkl                          subject -> (5023, 3) neutral head
    meta/<subject>_<sentence>.json         phones and times, voice, style, text
    splits.json                            train / val / test subjects

Deterministic for a seed: each clip's randomness comes from (seed, subject, sentence). Test and
validation speakers speak with a voice held out of training and have their own styles.
"""

from __future__ import annotations

import json
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from .articulation import FPS, FaceRig, SpeakingStyle, blink_curve, random_identity, viseme_curves
from .speech import available_voices, require_tools, synthesise

HELD_OUT_VOICE = "ked"  # validation and test speakers only: their voice is unseen in training


@dataclass
class Speaker:
    name: str
    split: str
    base_head: str
    voice: str
    stretch: float
    pitch_cents: float
    style: SpeakingStyle


def plan_speakers(n_speakers: int, seed: int, heads: list[str], voices: list[str]) -> list[Speaker]:
    rng = np.random.default_rng([seed, 0])
    n_test = max(1, round(n_speakers / 6))
    n_val = max(1, round(n_speakers / 6)) if n_speakers >= 3 else 0
    train_voices = [v for v in voices if v != HELD_OUT_VOICE] or voices
    heldout = [HELD_OUT_VOICE] if HELD_OUT_VOICE in voices else voices
    speakers = []
    for i in range(n_speakers):
        split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        pool = heldout if split != "train" else train_voices
        speakers.append(Speaker(
            name=f"SYN{i + 1:02d}", split=split, base_head=heads[i % len(heads)], voice=pool[i % len(pool)],
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


def _clip(job: tuple) -> str:
    out, speaker, template, triangles, eyelids, sentence_id, text, seed = job
    import soundfile

    rng = np.random.default_rng([seed, int(speaker.name[3:]), sentence_id])
    audio, phones = synthesise(text, speaker.voice, speaker.stretch, speaker.pitch_cents)
    n_frames = max(1, int(round(len(audio) / 16000 * FPS)))
    if speaker.name not in _worker_rigs:
        _worker_rigs[speaker.name] = FaceRig(template, triangles, eyelids)
    rig = _worker_rigs[speaker.name]
    curves = viseme_curves(phones, n_frames, speaker.style)
    vertices = rig.deform(curves, speaker.style, blink_curve(n_frames, speaker.style.blink_rate, rng))
    stem = f"{speaker.name}_sentence{sentence_id:02d}"
    soundfile.write(os.path.join(out, "wav", stem + ".wav"), audio, 16000, subtype="PCM_16")
    np.save(os.path.join(out, "vertices_npy", stem + ".npy"), vertices.reshape(n_frames, -1).astype(np.float32))
    meta = {
        "subject": speaker.name, "sentence": sentence_id, "text": text, "fps": FPS,
        "phones": [[p.phone, round(p.start, 4), round(p.end, 4)] for p in phones],
        "voice": {"synthesiser": "festival", "name": speaker.voice, "stretch": speaker.stretch,
                  "pitch_cents": speaker.pitch_cents},
        "emotion": "neutral", "intensity": 0.0, "style": speaker.style.as_dict(),
        "base_head": os.path.basename(speaker.base_head),
    }
    with open(os.path.join(out, "meta", stem + ".json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)
    return stem


def generate_corpus(out: str, n_speakers: int, n_sentences: int, seed: int, heads: list[str],
                    eyelids: np.ndarray | None = None, workers: int = 2, progress=print) -> dict:
    """Generate the corpus into `out`; returns the split dict."""
    from ..mesh_io import read_mesh
    from .sentences import SentenceGenerator

    require_tools()
    voices = available_voices()
    if not voices:
        raise RuntimeError("No festival voice found: apt-get install festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts")
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
    speakers = plan_speakers(n_speakers, seed, neutral, voices)
    texts = SentenceGenerator(seed).sentences(n_sentences)
    templates = {}
    jobs = []
    for speaker in speakers:
        rng = np.random.default_rng([seed, int(speaker.name[3:]), 10_000])
        templates[speaker.name] = random_identity(canonical_head(speaker.base_head, triangles), rng)
        for k, text in enumerate(texts, 1):
            jobs.append((out, speaker, templates[speaker.name], triangles, eyelids, k, text, seed))
    with open(os.path.join(out, "templates.pkl"), "wb") as handle:
        pickle.dump(templates, handle)
    splits = {s: [sp.name for sp in speakers if sp.split == s] for s in ("train", "val", "test")}
    with open(os.path.join(out, "splits.json"), "w", encoding="utf-8") as handle:
        json.dump({**splits, "sentences": {str(k): t for k, t in enumerate(texts, 1)},
                   "speakers": {sp.name: {"voice": sp.voice, "stretch": sp.stretch, "pitch_cents": sp.pitch_cents,
                                          "style": sp.style.as_dict(), "split": sp.split} for sp in speakers}},
                  handle, indent=1)
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, stem in enumerate(pool.map(_clip, jobs, chunksize=4), 1):
            if done % 20 == 0 or done == len(jobs):
                progress(f"{done}/{len(jobs)} clips ({stem})")
    return splits
