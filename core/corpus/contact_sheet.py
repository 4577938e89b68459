"""A contact sheet of the articulation rig's shapes so a person can judge them: one column per
viseme (mouth close-up) and below them one per emotion at full intensity (whole face), each
front view above side view, rendered in software from a FLAME head."""

from __future__ import annotations

import numpy as np

from ..preview import frame_bounds, grid, render, write_png
from .articulation import _TARGETS, PARAMS, FaceRig, SpeakingStyle

# one representative phone per viseme group, in the order a reader would expect
VISEMES = (("rest", "SIL"), ("p b m", "P"), ("f v", "F"), ("aa", "AA"), ("ae", "AE"), ("eh", "EH"),
           ("iy", "IY"), ("uw", "UW"), ("ow", "OW"), ("w", "W"), ("sh ch", "SH"), ("s z", "S"), ("th", "TH"),
           ("l", "L"))


def viseme_shapes(rig: FaceRig, style: SpeakingStyle | None = None) -> list[tuple[str, np.ndarray]]:
    """(label, vertices) of each viseme held at its full target."""
    style = style or SpeakingStyle()
    curves = np.array([[_TARGETS[phone][j] for j in range(len(PARAMS))] for _, phone in VISEMES], dtype=np.float64)
    vertices = rig.deform(curves, style)
    return [(label, vertices[i]) for i, (label, _) in enumerate(VISEMES)]


def emotion_shapes(rig: FaceRig, style: SpeakingStyle | None = None) -> list[tuple[str, np.ndarray]]:
    """(label, vertices) of each emotion at intensity 1, mouth at rest."""
    from ..models.base import EMOTIONS
    from .emotion import articulation_bias, emotional_style, expression_curves

    style = style or SpeakingStyle()
    shapes = []
    for emotion in EMOTIONS:
        curves = np.array([[_TARGETS["SIL"][j] for j in range(len(PARAMS))]], dtype=np.float64)
        bias = articulation_bias(emotion, 1.0)
        curves[0, 0] += bias["jaw"]
        curves[0, 3] += bias["spread"]
        curves[0, 5] += bias["raise"]
        # the held expression: the last frame of a second, after the onset
        expression = expression_curves(emotion, 1.0, 31, np.random.default_rng(0))[-1:] 
        vertices = rig.deform(curves, emotional_style(style, emotion, 1.0), np.zeros(1), expression)
        shapes.append((emotion, vertices[0]))
    return shapes


def render_contact_sheet(template: np.ndarray, triangles: np.ndarray, path: str, size: int = 160,
                         eyelids: np.ndarray | None = None) -> list[str]:
    """Write the sheet to `path` (PNG); returns the column labels, visemes then emotions."""
    rig = FaceRig(template, triangles, eyelids)
    shapes = viseme_shapes(rig)
    emotions = emotion_shapes(rig)
    _, half = frame_bounds(template)
    centre = rig.mouth_centre + np.array([0.0, -0.006, 0.0])
    side_centre = np.array([-(rig.mouth_centre[2] + 0.008), centre[1], 0.0])  # the lip profile, screen x = -z
    fronts = [render(v, triangles, "front", size, bounds=(centre, half), crop=0.28) for _, v in shapes]
    sides = [render(v, triangles, "side", size, bounds=(side_centre, half), crop=0.28) for _, v in shapes]
    # emotions: the face from chin to brows
    face_centre = rig.mouth_centre + np.array([0.0, 0.05, 0.0])
    face_side = np.array([-(rig.mouth_centre[2] + 0.006), face_centre[1], 0.0])
    blank = np.full((size, size), 255, dtype=np.uint8)
    padding = [blank] * (len(shapes) - len(emotions))
    emotion_fronts = [render(v, triangles, "front", size, bounds=(face_centre, half), crop=0.4) for _, v in emotions]
    emotion_sides = [render(v, triangles, "side", size, bounds=(face_side, half), crop=0.4) for _, v in emotions]
    write_png(path, grid(fronts + sides + emotion_fronts + padding + emotion_sides + padding, columns=len(shapes)))
    return [label for label, _ in shapes] + [label for label, _ in emotions]
