"""A contact sheet of the articulation rig's shapes so a person can judge them: one column per
viseme, front view above side view, rendered in software from a FLAME head."""

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


def render_contact_sheet(template: np.ndarray, triangles: np.ndarray, path: str, size: int = 160) -> list[str]:
    """Write the sheet to `path` (PNG); returns the column labels, left to right."""
    rig = FaceRig(template, triangles)
    shapes = viseme_shapes(rig)
    _, half = frame_bounds(template)
    centre = rig.mouth_centre + np.array([0.0, -0.006, 0.0])
    side_centre = np.array([-(rig.mouth_centre[2] + 0.008), centre[1], 0.0])  # the lip profile, screen x = -z
    fronts = [render(v, triangles, "front", size, bounds=(centre, half), crop=0.28) for _, v in shapes]
    sides = [render(v, triangles, "side", size, bounds=(side_centre, half), crop=0.28) for _, v in shapes]
    write_png(path, grid(fronts + sides, columns=len(shapes)))
    return [label for label, _ in shapes]
