"""Face landmarks per video frame with MediaPipe's face mesh (478 points; its model ships inside the
`mediapipe` wheel, so this runs offline).

Frames where the face is lost are filled by interpolating their neighbours when the gaps are
short; a clip with no face, with several faces, or that loses the face too often is refused.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Callable, Iterable, Sequence

import numpy as np

from .errors import Cancelled
from .video import VideoError

MAX_LOST_SHARE = 0.2  # of the frames
MAX_GAP_S = 0.5  # the longest run of lost frames that is interpolated
MAX_SEVERAL_SHARE = 0.1  # frames showing two faces before the clip counts as having several


def track_faces(frames: Iterable[np.ndarray], n_frames: int, fps: float, name: str = "the video",
                progress: Callable[[float, str], None] | None = None,
                should_cancel: Callable[[], bool] | None = None,
                static_modes: Sequence[bool] = (False,)) -> list[np.ndarray]:
    """(T, 478, 3) landmarks in pixels (x right, y down, z into the image, in x's scale), lost frames
    filled in, one array per entry of `static_modes` (see detect_faces); raises VideoError when the
    clip cannot give one actor's face."""
    return [fill_lost_frames(tracked, fps, several, name)
            for tracked, several in detect_faces(frames, n_frames, progress, should_cancel, static_modes)]


def detect_faces(frames: Iterable[np.ndarray], n_frames: int, progress: Callable[[float, str], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None, static_modes: Sequence[bool] = (False,)
                 ) -> list[tuple[list[np.ndarray | None], int]]:
    """Per entry of `static_modes`: (landmarks (478, 3) per frame or None where no face was found,
    frames showing several faces). False tracks each frame from the last, True finds every frame
    afresh (unrelated pictures); several modes read the same frames, so they are decoded once."""
    try:
        import mediapipe as mp
    except ImportError:
        raise VideoError("Adapting from video needs the mediapipe package: tick Video Adaptation Packages and press "
                         "Install Dependencies in the preferences, or pip install mediapipe==0.10.21 av==18.1.0.") from None
    report = progress or (lambda fraction, message: None)
    tracked: list[list[np.ndarray | None]] = [[] for _ in static_modes]
    several = [0 for _ in static_modes]
    with ExitStack() as stack:
        meshes = [stack.enter_context(mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, max_num_faces=2, refine_landmarks=True,
            min_detection_confidence=0.5, min_tracking_confidence=0.5)) for static in static_modes]
        for index, image in enumerate(frames):
            if should_cancel and should_cancel():
                raise Cancelled("Adaptation cancelled; no style was written.")
            height, width = image.shape[:2]
            image = np.ascontiguousarray(image)
            for k, mesh in enumerate(meshes):
                found = mesh.process(image).multi_face_landmarks or []
                several[k] += len(found) > 1
                faces = [np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark]) for face in found]
                # the actor is the larger face (the nearer one), if a second appears in the background
                tracked[k].append(max(faces, key=lambda f: np.ptp(f[:, 0]) * np.ptp(f[:, 1])) if faces else None)
            if index % 10 == 0:
                report(min(0.99, (index + 1) / max(n_frames, 1)), f"Tracking the face, frame {index + 1} of {n_frames}")
    return list(zip(tracked, several))


def fill_lost_frames(tracked: list[np.ndarray | None], fps: float, several: int = 0, name: str = "the video") -> np.ndarray:
    """Interpolate short runs of frames without a face; refuse clips where it is mostly missing."""
    if not tracked or all(t is None for t in tracked):
        raise VideoError(f"No face found in {name}. Give a clip where the actor's face is in view, lit, and facing "
                         "the camera.")
    if several > MAX_SEVERAL_SHARE * len(tracked):
        raise VideoError(f"{name} shows several faces ({several} of {len(tracked)} frames); give a clip of the actor "
                         "alone, or trim it to frames where only they are in view.")
    lost = np.array([t is None for t in tracked])
    longest, run = 0, 0
    for missing in lost:
        run = run + 1 if missing else 0
        longest = max(longest, run)
    if lost.mean() > MAX_LOST_SHARE or longest > MAX_GAP_S * fps:
        raise VideoError(f"The face is lost in {lost.mean():.0%} of {name}'s frames (longest gap {longest / fps:.2f} s); "
                         f"at most {MAX_LOST_SHARE:.0%} and {MAX_GAP_S} s can be filled in. Trim the clip to where the "
                         "face is clearly in view.")
    shape = next(t for t in tracked if t is not None).shape
    values = np.stack([np.full(shape, np.nan) if t is None else t for t in tracked])
    if lost.any():
        known = np.where(~lost)[0]
        flat = values.reshape(len(values), -1)
        for column in range(flat.shape[1]):
            flat[lost, column] = np.interp(np.where(lost)[0], known, flat[known, column])
        values = flat.reshape(values.shape)
    return values
