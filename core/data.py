"""One loader for VOCASET-layout data: the synthetic corpus and real VOCASET as users have it.

    DIR/wav/<subject>_<sentence>.wav, DIR/vertices_npy/<subject>_<sentence>.npy, DIR/templates.pkl
    optional: DIR/meta/<subject>_<sentence>.json (phones, fps), DIR/splits.json

Real VOCASET (as prepared for FaceFormer) stores meshes at 60 fps and its templates.pkl is a
Python 2 pickle; both are handled. Without splits.json the VOCASET standard split is used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .errors import TalkingHeadError

MOTION_FPS = 30.0

# VOCASET's standard subject split (FaceFormer, CodeTalker, Imitator): train on sentences 1-40,
# validate and test on sentences 21-40
VOCASET_SPLIT = {
    "train": ["FaceTalk_170728_03272_TA", "FaceTalk_170904_00128_TA", "FaceTalk_170725_00137_TA",
              "FaceTalk_170915_00223_TA", "FaceTalk_170811_03274_TA", "FaceTalk_170913_03279_TA",
              "FaceTalk_170904_03276_TA", "FaceTalk_170912_03278_TA"],
    "val": ["FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"],
    "test": ["FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"],
}
VOCASET_SENTENCES = {"train": range(1, 41), "val": range(21, 41), "test": range(21, 41)}


class DataError(TalkingHeadError):
    """The data folder is not in VOCASET layout."""


@dataclass
class Clip:
    subject: str
    sentence: str
    wav_path: str
    vertices_path: str
    template: np.ndarray  # (5023, 3)
    phones: list | None  # [(phone, start, end)] when known
    source_fps: float
    emotion: str = "neutral"  # from meta/ when the data has it (the synthetic corpus)
    intensity: float = 0.0
    text: str | None = None

    def vertices(self) -> np.ndarray:
        """(T, 5023, 3) at 30 fps."""
        flat = np.load(self.vertices_path).astype(np.float32)
        step = int(round(self.source_fps / MOTION_FPS))
        return flat[::max(step, 1)].reshape(-1, self.template.shape[0], 3)


def _load_templates(path: str) -> dict:
    from .safe_pickle import load_arrays_pickle

    templates = load_arrays_pickle(path, "VOCASET templates")  # VOCASET's is a Python 2 pickle
    if not isinstance(templates, dict):
        raise DataError(f"{path} should map subjects to template vertices; it holds a {type(templates).__name__}.")
    return {k: np.asarray(v, dtype=np.float32).reshape(-1, 3) for k, v in templates.items()}


def read_splits(root: str) -> dict[str, list[str]]:
    path = os.path.join(root, "splits.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return {k: list(data.get(k, [])) for k in ("train", "val", "test")}
    return {k: list(v) for k, v in VOCASET_SPLIT.items()}


def load_clips(root: str, split: str | None = None, subjects: list[str] | None = None) -> list[Clip]:
    """Clips of `split` (train/val/test) or of the given subjects, sorted by name."""
    for required in ("wav", "vertices_npy", "templates.pkl"):
        if not os.path.exists(os.path.join(root, required)):
            raise DataError(f"{root} is not in VOCASET layout: {required} is missing "
                            "(expected wav/, vertices_npy/ and templates.pkl).")
    templates = _load_templates(os.path.join(root, "templates.pkl"))
    uses_standard_split = not os.path.isfile(os.path.join(root, "splits.json"))
    if subjects is None:
        subjects = read_splits(root)[split or "train"]
    wanted = set(subjects)
    clips = []
    for name in sorted(os.listdir(os.path.join(root, "vertices_npy"))):
        if not name.endswith(".npy"):
            continue
        stem = name[:-4]
        subject, _, sentence = stem.rpartition("_")
        if subject not in wanted:
            continue
        if uses_standard_split and split in VOCASET_SENTENCES:
            digits = "".join(c for c in sentence if c.isdigit())
            if digits and int(digits) not in VOCASET_SENTENCES[split]:
                continue
        wav = os.path.join(root, "wav", stem + ".wav")
        if not os.path.isfile(wav) or subject not in templates:
            continue
        meta_path = os.path.join(root, "meta", stem + ".json")
        phones, fps, meta = None, None, {}
        if os.path.isfile(meta_path):
            with open(meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
            phones, fps = meta.get("phones"), meta.get("fps")
        vertices_path = os.path.join(root, "vertices_npy", name)
        if fps is None:  # real VOCASET: tell 60 fps from 30 fps by the clip's length
            import soundfile

            n_frames = np.load(vertices_path, mmap_mode="r").shape[0]
            duration = soundfile.info(wav).duration
            fps = 60.0 if n_frames / max(duration, 1e-3) > 45 else 30.0
        clips.append(Clip(subject, sentence, wav, vertices_path, templates[subject], phones, float(fps),
                          meta.get("emotion", "neutral"), float(meta.get("intensity", 0.0)), meta.get("text")))
    if not clips:
        raise DataError(f"No clips for subjects {', '.join(sorted(wanted))} in {root}.")
    return clips
