"""What the articulation rig and the emotion model share: the motion rate and a synthetic
speaker's style (kept here, below both, so neither imports the other to get them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FPS = 30.0


@dataclass
class SpeakingStyle:
    """What makes one synthetic speaker move differently from another."""

    amplitude: float = 1.0  # overall articulation size
    jaw_share: float = 1.0  # >1: more jaw, less lip shaping; <1: the reverse
    asymmetry: float = 0.0  # left-right imbalance of the lips, -0.3..0.3
    anticipation: float = 1.0  # how early upcoming visemes take over (>1: earlier)
    smoothing: float = 1.0  # temporal smoothing in frames (Gaussian sigma)
    blink_rate: float = 15.0  # blinks per minute

    @classmethod
    def random(cls, rng: np.random.Generator) -> "SpeakingStyle":
        return cls(
            amplitude=float(rng.uniform(0.82, 1.18)),
            jaw_share=float(rng.uniform(0.8, 1.2)),
            asymmetry=float(rng.uniform(-0.25, 0.25)),
            anticipation=float(rng.uniform(0.7, 1.4)),
            smoothing=float(rng.uniform(0.6, 1.6)),
            blink_rate=float(rng.uniform(8.0, 24.0)),
        )

    def as_dict(self) -> dict:
        return asdict(self)
