"""The one small interface every model variant implements.

audio (16 kHz mono) + conditioning -> MotionPrediction (per-frame FLAME offsets at the model's
rate, plus the linear basis the offsets are made of when the model has one). Everything
downstream (resampling, shape keys, caches, files) works on MotionPrediction alone, so a new
model plugs in by implementing `predict` and registering its architecture name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

# progress(fraction in [0, 1], what is happening)
ProgressCallback = Callable[[float, str], None]
# returns True when the user asked to stop
CancelCheck = Callable[[], bool]

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful")
FROM_AUDIO = "from_audio"  # emotion models infer the emotion and its intensity from the voice
MAX_GUIDANCE = 20.0  # catches typos; the shipped diffusion model was tuned between 2 and 5


@dataclass
class Conditioning:
    """What the animator asks for besides the audio."""

    emotion: str = "neutral"
    intensity: float = 1.0
    style: str | None = None  # a speaking-style name the model knows, or None for its default
    seed: int = 0
    # classifier-free guidance of a model that samples: higher follows the audio more tightly, with
    # less variety between takes; None keeps the model's own
    guidance: float | None = None
    # per-frame intensity at the model's rate, when the animator keyframed it; overrides `intensity`
    intensity_curve: np.ndarray | None = None
    # a style adapted to an actor (core.styles.Style), resolved from `style` by the front end
    adapted_style: object | None = None
    # lip seal strength 0 (off) to 1: at /p b m/ the model's phonetic head hears, close the lips the
    # rest of the way to contact (core.lips.LipSeal); None keeps the model's own ("lip_seal" in config.json)
    lip_seal: float | None = None
    # what was said and when (core.speech.SpeechTiming): the phone layer (core.motion) seals, opens
    # and rests the lips by it; None leaves the lips to the model's phonetic head
    speech: object | None = None

    def validate(self) -> "Conditioning":
        from ..errors import ModelError

        if self.emotion not in EMOTIONS + (FROM_AUDIO,):
            raise ModelError(f"Unknown emotion '{self.emotion}'. Choose one of: {', '.join(EMOTIONS + (FROM_AUDIO,))}.")
        if not 0.0 <= float(self.intensity) <= 1.0:
            raise ModelError(f"Emotion intensity {self.intensity} is out of range; use a value from 0 to 1.")
        if self.guidance is not None and not 1.0 <= float(self.guidance) <= MAX_GUIDANCE:
            raise ModelError(f"Guidance {self.guidance} is out of range; use 1 (none) to {MAX_GUIDANCE:g}, "
                             "or leave it unset for the model's own.")
        if self.lip_seal is not None and not 0.0 <= float(self.lip_seal) <= 1.0:
            raise ModelError(f"Lip seal {self.lip_seal} is out of range; use 0 (off) to 1 (lips meet fully at /p b m/), "
                             "or leave it unset for the model's own.")
        return self


@dataclass
class MotionPrediction:
    """Per-frame vertex offsets from the template, in FLAME's canonical frame (metres).

    A model linear in a basis gives mean + basis + coefficients and no `offsets`: a 10-minute take
    is then a few MB instead of a GB, and the offsets are derived only where needed."""

    offsets: np.ndarray | None  # (T, V, 3) float32, or None when basis, coefficients and mean are given
    fps: float
    # offsets == mean + coefficients @ basis (flattened) when the model is linear in a basis
    basis: np.ndarray | None = None  # (K, V, 3)
    coefficients: np.ndarray | None = None  # (T, K)
    mean: np.ndarray | None = None  # (V, 3)
    # (T, len(phones.PHONE_CLASSES)) per-frame phone posteriors of a model with a phonetic head
    # (what the lip seal reads); None for models without one
    phone_probabilities: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int((self.offsets if self.offsets is not None else self.coefficients).shape[0])

    def vertex_offsets(self) -> np.ndarray:
        """(T, V, 3) offsets, derived from the basis when the model gave no `offsets`."""
        from ..basis import reconstruct

        return self.offsets if self.offsets is not None else reconstruct(self.mean, self.basis, self.coefficients)


class MotionModel(Protocol):
    """A speech-to-motion model as the product uses it."""

    name: str
    fps: float
    sample_rate: int
    styles: list[str]
    config: dict  # what config.json holds: architecture, encoder, sizes
    # weights whose columns are the speaking styles, in `styles` order (fine-tuning on other speakers
    # rearranges them)
    style_parameters: tuple[str, ...]
    emotion_control: bool  # takes Conditioning.emotion other than neutral

    def predict(
        self,
        audio: np.ndarray,
        template: np.ndarray,
        conditioning: Conditioning,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> MotionPrediction:
        """Offsets for `audio` (16 kHz mono float32) on `template` (V, 3), canonical frame."""
        ...
