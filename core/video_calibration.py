"""Showing the tracker the actor's own head before it reads the video.

MediaPipe's landmarks sit a few millimetres from where the FLAME embedding puts them, and by an
amount that changes with the mouth's shape. Rendering the actor's head (their template) in known
poses of the rig and tracking those pictures tells core.video_motion.LandmarkFit how the tracker
sees this head; its regression then reads the video in the rig's terms. The renders are front-on
and orthographic with FLAME's texture where it is at hand (`texture_mesh.obj` and `.png` beside
the landmark embedding or in ../shared/flame), grey shading otherwise.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .flame import SHARED_FLAME
from .video_motion import LandmarkFit, embedding_path

RENDER_SIZE = 320  # pixels; a phone video's face is larger, and the alignment removes the scale
FACE_HALF_WIDTH_M = 0.105  # forehead to chin fills the picture
TEXTURE_FILES = ("texture_mesh.obj", "texture_mesh.png")


def texture_paths(landmarks: str | None = None) -> tuple[str, str] | None:
    """FLAME's texture (OBJ with UVs, PNG) beside the landmark embedding or in ../shared/flame, if there."""
    for folder in (os.path.dirname(embedding_path(landmarks)), SHARED_FLAME):
        paths = tuple(os.path.join(folder, name) for name in TEXTURE_FILES)
        if all(os.path.isfile(p) for p in paths):
            return paths
    return None


def calibrate_fit(fit: LandmarkFit, triangles: np.ndarray, landmarks: str | None = None,
                  progress: Callable[[float, str], None] | None = None,
                  should_cancel: Callable[[], bool] | None = None) -> None:
    """Render `fit`'s head in its calibration poses, track each picture and calibrate the fit."""
    from .face_tracking import detect_faces
    from .preview import render, texture_colours

    report = progress or (lambda fraction, message: None)
    textures = texture_paths(landmarks)
    colours = texture_colours(*textures) if textures else None
    poses = fit.calibration_poses()
    centre = fit.rig.mouth_centre + np.array([0.0, 0.035, 0.0])  # between mouth and eyes
    pictures = (render(pose, triangles, "front", RENDER_SIZE, bounds=(centre, FACE_HALF_WIDTH_M), colours=colours)
                for pose in poses)
    pictures = (np.repeat(p[..., None], 3, axis=2) if p.ndim == 2 else p for p in pictures)
    [(tracked, _)] = detect_faces(pictures, len(poses), lambda f, m: report(f, f"Calibrating on the actor's head, "
                                                                               f"pose {int(f * len(poses)) + 1} of "
                                                                               f"{len(poses)}"),
                                  should_cancel, static_modes=(True,))
    fit.calibrate(tracked)
    report(1.0, "Calibrated")
