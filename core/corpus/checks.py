"""The corpus's physical claims, measured on generated sequences (tests and benchmarks/bench_corpus.py).

Per clip: the inner-lip gap at each bilabial (should fall under 0.5 mm) and where its minimum
falls against the phone's span, the widest gap of each held open vowel (8-15 mm), how much each
held rounded vowel narrows the mouth (at least 15%), the smallest gap against the rest gap (lips
never cross) and the largest lip-vertex acceleration (mm per frame^2: no jumps).
"""

from __future__ import annotations

import json
import os

import numpy as np

from .articulation import BILABIALS, FPS, OPEN_VOWELS, FaceRig

CLAIMS = ("bilabial_gap_mm", "open_gap_mm", "rounding", "crossing_mm", "acceleration_mm", "alignment_s")


def measure_clip(rig: FaceRig, vertices: np.ndarray, phones, template: np.ndarray) -> dict[str, list[float]]:
    gap = rig.lip_gap(vertices) * 1000
    width = rig.mouth_width(vertices) / rig.mouth_width(template[None])[0]
    times = np.arange(len(gap)) / FPS
    stats = {name: [] for name in CLAIMS}
    stats["crossing_mm"].append(float(gap.min() - rig.rest_gap * 1000))
    stats["acceleration_mm"].append(float(np.abs(np.diff(vertices[:, rig.w_lips > 0.5], 2, axis=0)).max() * 1000))
    for phone, start, end in phones:
        near = (times >= start - 1 / FPS) & (times <= end + 1 / FPS)
        if not near.any():
            continue
        if phone in BILABIALS:
            stats["bilabial_gap_mm"].append(float(gap[near].min()))
            closed_at = times[near][np.argmin(gap[near])]
            stats["alignment_s"].append(float(closed_at - np.clip(closed_at, start, end)))
        elif phone in OPEN_VOWELS and end - start >= 0.1:
            stats["open_gap_mm"].append(float(gap[near].max()))
        elif phone in ("UW", "OW") and end - start >= 0.08:
            stats["rounding"].append(float(1 - width[near].min()))
    return stats


def measure_corpus(corpus: str, triangles: np.ndarray, every: int = 1) -> dict[str, np.ndarray]:
    """The claims over every `every`-th clip of all splits of a corpus written by `core corpus`."""
    from ..data import load_clips

    with open(os.path.join(corpus, "splits.json"), encoding="utf-8") as handle:
        splits = json.load(handle)
    stats = {name: [] for name in CLAIMS}
    for clip in load_clips(corpus, subjects=splits["train"] + splits["val"] + splits["test"])[::every]:
        rig = FaceRig(clip.template, triangles)
        for name, values in measure_clip(rig, clip.vertices(), clip.phones, clip.template).items():
            stats[name].extend(values)
    return {name: np.array(values) for name, values in stats.items()}
