"""Emotional expression for the synthetic rig: seven labels, each with an intensity in [0, 1].

An emotion acts on the whole face independently of what is said: brows (inner and outer raise,
frown), eyes (widening, squint), cheeks, mouth corners (up, down, stretched) and nose wrinkle,
as facial action units do (e.g. happy = cheek raiser + lip-corner puller). It also modulates the
articulation (sad speech moves less and slower, surprise drops the jaw) and the voice (pitch,
rate, loudness).

Regions are found from the head itself: the eyeballs are separate mesh components, whose centres
place the brows and cheeks; the mouth corners come from the articulation rig.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..models.base import EMOTIONS
from .speaker_style import FPS, SpeakingStyle

EXPRESSIONS = ("brow_inner_up", "brow_outer_up", "brow_down", "eye_wide", "squint", "cheek_raise",
               "corner_up", "corner_down", "corner_stretch", "nose_wrinkle")


@dataclass(frozen=True)
class EmotionProfile:
    face: dict  # expression -> activation at intensity 1
    amplitude: float = 1.0  # articulation size
    smoothing: float = 1.0  # articulation smoothing (sad speech is slurred)
    jaw_rest_mm: float = 0.0  # a held jaw opening
    spread: float = 0.0  # a held lip spread (smiling speech)
    lip_raise: float = 0.0  # a held upper-lip raise (disgust)
    pitch_cents: float = 0.0  # voice
    rate: float = 1.0  # speaking rate (>1 faster)
    volume: float = 1.0


PROFILES = {
    "neutral": EmotionProfile({}),
    "happy": EmotionProfile({"cheek_raise": 1.0, "corner_up": 1.0, "squint": 0.3, "brow_outer_up": 0.2},
                            amplitude=1.1, spread=0.35, pitch_cents=250, rate=1.08, volume=1.0),
    "sad": EmotionProfile({"brow_inner_up": 1.0, "brow_down": 0.25, "corner_down": 1.0, "squint": 0.2},
                          amplitude=0.75, smoothing=1.4, pitch_cents=-200, rate=0.85, volume=0.6),
    "angry": EmotionProfile({"brow_down": 1.0, "squint": 0.35, "corner_down": 0.35, "nose_wrinkle": 0.3},
                            amplitude=1.2, smoothing=0.8, pitch_cents=100, rate=1.1, volume=1.0),
    "surprised": EmotionProfile({"brow_inner_up": 1.0, "brow_outer_up": 1.0, "eye_wide": 1.0},
                                amplitude=1.1, jaw_rest_mm=3.0, pitch_cents=350, rate=1.05, volume=0.9),
    "disgusted": EmotionProfile({"nose_wrinkle": 1.0, "brow_down": 0.6, "squint": 0.4, "corner_down": 0.5,
                                 "cheek_raise": 0.4}, amplitude=0.9, lip_raise=0.5, pitch_cents=-100, rate=0.92),
    "fearful": EmotionProfile({"brow_inner_up": 1.0, "brow_outer_up": 0.5, "brow_down": 0.3, "eye_wide": 0.9,
                               "corner_stretch": 1.0}, amplitude=0.9, jaw_rest_mm=1.5, pitch_cents=300, rate=1.12,
                              volume=0.7),
}
assert set(PROFILES) == set(EMOTIONS)


def emotional_style(style: SpeakingStyle, emotion: str, intensity: float) -> SpeakingStyle:
    """The speaker's style as the emotion changes it (linearly in intensity)."""
    profile = PROFILES[emotion]
    return replace(style, amplitude=style.amplitude * (1 + (profile.amplitude - 1) * intensity),
                   smoothing=style.smoothing * (1 + (profile.smoothing - 1) * intensity))


def expression_curves(emotion: str, intensity: float, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(n_frames, len(EXPRESSIONS)) activations: the emotion's profile scaled by intensity, reached
    over the first 0.3 s and breathing slowly (+-10%) so a held expression is not frozen."""
    profile = PROFILES[emotion]
    target = np.array([profile.face.get(name, 0.0) for name in EXPRESSIONS]) * intensity
    onset = np.clip(np.arange(n_frames) / (0.3 * FPS), 0, 1)
    onset = 0.5 - 0.5 * np.cos(np.pi * onset)
    drift = 1.0 + 0.1 * np.tanh(gaussian_filter1d(rng.normal(size=(n_frames, 1)), sigma=FPS * 0.6, axis=0) * 8)
    return onset[:, None] * drift * target[None]


def articulation_bias(emotion: str, intensity: float) -> dict:
    """Held offsets of the articulation parameters: jaw opening (mm), spread, upper-lip raise."""
    profile = PROFILES[emotion]
    return {"jaw": profile.jaw_rest_mm * intensity, "spread": profile.spread * intensity,
            "raise": profile.lip_raise * intensity}


def _gaussian(points: np.ndarray, centre: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * np.sum(np.square((points - centre) / sigma), axis=1))


class ExpressionFields:
    """Per-expression offset fields (V, 3) in metres, for a head in the canonical frame (x right,
    y up, z forward), built from its eyeballs and the rig's mouth."""

    def __init__(self, rig):  # an articulation.FaceRig (not imported: articulation imports this module)
        v = rig.template
        t = rig.triangles
        n = len(v)
        edges = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
        _, labels = connected_components(coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)),
                                         directed=False)
        sizes = np.bincount(labels)
        head = labels == np.argmax(sizes)
        eyes = [v[labels == c].mean(axis=0) for c in np.argsort(sizes)[:-1][-2:]]  # the two eyeball components
        if len(eyes) == 2:
            eyes = sorted(eyes, key=lambda c: c[0])
            eye_y, eye_z, eye_dx = (eyes[0][1] + eyes[1][1]) / 2, (eyes[0][2] + eyes[1][2]) / 2, abs(eyes[1][0] - eyes[0][0]) / 2
        else:  # a head without eyeballs: FLAME's average proportions from the mouth
            eye_y, eye_z, eye_dx = rig.mouth_centre[1] + 0.068, rig.mouth_centre[2] - 0.012, 0.031
        self.rig = rig
        self.fields = {name: np.zeros_like(v) for name in EXPRESSIONS}
        front = head & (v[:, 2] > eye_z - 0.03)

        def patch(x: float, y: float, sigma: tuple, z_ahead: float = 0.0) -> np.ndarray:
            """Weight of a face patch centred at (x, y) on the face surface, on both sides."""
            weight = np.zeros(n)
            for side in (-1.0, 1.0):
                centre = np.array([side * x, y, 0.0])
                nearby = front & (np.abs(v[:, 0] - centre[0]) < 0.01) & (np.abs(v[:, 1] - y) < 0.01)
                centre[2] = v[nearby, 2].max() if nearby.any() else eye_z + z_ahead
                weight = np.maximum(weight, _gaussian(v, centre, np.array(sigma)))
            return weight * front

        brow_y = eye_y + 0.026
        inner = patch(eye_dx * 0.45, brow_y, (0.012, 0.011, 0.012))
        outer = patch(eye_dx * 1.35, brow_y - 0.002, (0.014, 0.011, 0.014))
        self.fields["brow_inner_up"][:, 1] = 0.0045 * inner
        self.fields["brow_outer_up"][:, 1] = 0.0045 * outer
        frown = patch(eye_dx * 0.45, brow_y - 0.004, (0.013, 0.010, 0.012))
        self.fields["brow_down"][:, 1] = -0.0035 * frown
        self.fields["brow_down"][:, 0] = -0.002 * frown * np.sign(v[:, 0])  # drawn together
        cheek = patch(eye_dx * 1.1, eye_y - 0.03, (0.016, 0.013, 0.016))
        self.fields["cheek_raise"][:, 1] = 0.003 * cheek
        self.fields["cheek_raise"][:, 2] = 0.0012 * cheek
        nose = patch(0.011, eye_y - 0.022, (0.007, 0.009, 0.01))
        self.fields["nose_wrinkle"][:, 1] = 0.002 * nose
        self.fields["nose_wrinkle"] += 0.0012 * np.array([0, 1.0, 0.3]) * rig.w_upper[:, None]  # the upper lip follows

        corners = np.zeros(n)
        for corner in rig.corners:
            corners = np.maximum(corners, _gaussian(v, v[corner], np.array([0.014, 0.012, 0.014])))
        corners *= front
        outward = np.sign(v[:, 0] - rig.mouth_centre[0])
        self.fields["corner_up"][:, 1] = 0.0035 * corners
        self.fields["corner_up"][:, 0] = 0.0025 * corners * outward
        self.fields["corner_up"][:, 2] = -0.0015 * corners
        self.fields["corner_down"][:, 1] = -0.003 * corners
        self.fields["corner_stretch"][:, 0] = 0.0035 * corners * outward
        self.fields["corner_stretch"][:, 1] = -0.001 * corners
        # eyes through the eyelid field: widening is a negative closure, squint a partial one
        self.eyelid_share = {"eye_wide": -0.35, "squint": 0.35}
        # the amplitudes above are for a moderate expression; acted emotion (as in 3D-RAVDESS) moves
        # brows and mouth corners further, 5-7 mm
        self.fields = {name: field * 1.4 for name, field in self.fields.items()}
        self.stack = np.stack([self.fields[name] for name in EXPRESSIONS])  # (E, V, 3)

    def offsets(self, curves: np.ndarray) -> np.ndarray:
        """(T, V, 3) offsets for activations (T, len(EXPRESSIONS))."""
        return np.einsum("te,evc->tvc", curves, self.stack)

    def eyelid_closure(self, curves: np.ndarray) -> np.ndarray:
        """(T,) the expression's share of eyelid closure (negative = eyes wider than rest)."""
        return sum(curves[:, EXPRESSIONS.index(name)] * share for name, share in self.eyelid_share.items())

