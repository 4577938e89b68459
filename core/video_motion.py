"""From tracked face landmarks to motion of a FLAME-topology head.

The 105 MediaPipe landmarks embedded on FLAME's triangles (`mediapipe_landmark_embedding.npz`)
tie the video to the mesh. Per frame: the head pose is removed by a similarity transform fitted on
landmarks the face's movements leave still (nose bridge, eye corners, forehead); what moves then
relative to the clip's rest pose (its most closed-mouth frames) is explained by the corpus rig's
controls (jaw, lip closure, rounding, spreading, tuck, raise, and the expression fields), fitted by
bounded, regularised Gauss-Newton and smoothed over time. The rig turns the controls into a full
FLAME deformation, so the lips, jaw and cheeks move as one face, lip closure included.
"""

from __future__ import annotations

import os

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .corpus.articulation import J_JAW, PARAMS, FaceRig, SpeakingStyle
from .corpus.emotion import EXPRESSIONS
from .errors import TopologyError
from .flame import SHARED_FLAME

EMBEDDING_FILE = "mediapipe_landmark_embedding.npz"
JAW_MAX_MM = 30.0
STILL_MM = 0.3  # a landmark moved less than this by every control counts as still (pose reference)
REGULARISATION = 2e-5  # per control, in squared metres of landmark error (a control moves landmarks by mm)
SMOOTHING_FRAMES = 1.0  # Gaussian sigma over time (tracking jitter is frame to frame)
# MediaPipe's depth is inferred, not seen: it counts for less than the image-plane positions
DEPTH_WEIGHT = 0.3
EXPRESSION_MAX = 1.0  # upper bound of the expression controls (0: articulation only)
REST_QUANTILE = 0.05  # the clip's most closed-mouth frames that define its rest pose


def embedding_path(path: str | None = None) -> str:
    """The landmark embedding to use: the given file, else TALKING_HEAD_LANDMARKS, else ../shared/flame.
    It is not shipped (its licence is non-commercial): users fetch it from metrical-tracker."""
    return path or os.environ.get("TALKING_HEAD_LANDMARKS") or os.path.join(SHARED_FLAME, EMBEDDING_FILE)


def load_embedding(path: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FLAME triangle per landmark, barycentric weights (N, 3), MediaPipe landmark index per landmark)."""
    path = embedding_path(path)
    if not os.path.isfile(path):
        raise TopologyError(f"The landmark embedding {path} is missing: it maps MediaPipe's face landmarks onto FLAME "
                            f"({EMBEDDING_FILE}, from metrical-tracker). Give its path (--landmarks, the preferences' "
                            "Landmark Embedding, or TALKING_HEAD_LANDMARKS).")
    try:
        with np.load(path, allow_pickle=False) as data:
            faces, bary, index = (data["lmk_face_idx"].astype(np.int64), data["lmk_b_coords"].astype(np.float64),
                                  data["landmark_indices"].astype(np.int64))
    except Exception as exc:
        raise TopologyError(f"Cannot read the landmark embedding {path} ({exc}); get the original file.") from None
    if not (len(faces) == len(bary) == len(index)) or bary.shape[1:] != (3,):
        raise TopologyError(f"The landmark embedding {path} has inconsistent arrays; get the original file.")
    return faces, bary, index


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R, translation t with s R source + t ~ target (Umeyama, no reflection)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    a, b = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    correction = np.diag([1.0, 1.0, d])
    rotation = u @ correction @ vt
    scale = float(np.trace(np.diag(sigma) @ correction) / max((a ** 2).sum(), 1e-12))
    return scale, rotation, mu_t - scale * rotation @ mu_s


class LandmarkFit:
    """Fits the rig's controls of one head (canonical frame) to tracked landmarks."""

    def __init__(self, template: np.ndarray, triangles: np.ndarray, embedding: str | None = None):
        self.rig = FaceRig(template, triangles)
        self.expressions = self.rig.expression_fields()
        faces, bary, self.mediapipe_index = load_embedding(embedding)
        corners = np.asarray(triangles)[faces]
        self.corners, self.bary = corners, bary
        self.rest = self.landmarks(self.rig.template[None])[0]
        self.n_controls = len(PARAMS) + len(EXPRESSIONS)
        self.upper = np.max([self.rig.w_upper[c] for c in corners.T], axis=0) > 0.5
        self.lower = np.max([self.rig.w_lower[c] for c in corners.T], axis=0) > 0.5
        self.lower &= ~self.upper
        influence = np.zeros(len(self.rest))
        for control in range(self.n_controls):
            moved = self.landmarks(self.deform(self._unit(control)[None]))[0] - self.rest
            influence = np.maximum(influence, np.linalg.norm(moved, axis=1))
        self.still = influence < STILL_MM / 1000.0
        if self.still.sum() < 6:
            raise TopologyError("Too few still landmarks on this head to remove the head's pose; is it FLAME?")

    def _unit(self, control: int) -> np.ndarray:
        unit = np.zeros(self.n_controls)
        unit[control] = 10.0 if control == J_JAW else 1.0  # the jaw control is in millimetres of lip gap
        return unit

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """(T, N, 3) landmark positions on meshes (T, V, 3)."""
        return np.einsum("tnkc,nk->tnc", vertices[:, self.corners], self.bary)

    def deform(self, controls: np.ndarray) -> np.ndarray:
        articulation, expression = controls[:, :len(PARAMS)], controls[:, len(PARAMS):]
        return self.rig.deform(articulation, SpeakingStyle(), None, expression).astype(np.float64)

    def align(self, tracked: np.ndarray) -> np.ndarray:
        """Tracked landmarks (T, 478, 3) in image axes -> (T, N, 3) in the template's canonical frame,
        head pose and camera distance removed."""
        points = tracked[:, self.mediapipe_index] * np.array([1.0, -1.0, -1.0])  # image (x, down, in) -> (x, up, out)
        aligned = np.empty_like(points)
        for t, frame in enumerate(points):
            scale, rotation, shift = _similarity(frame[self.still], self.rest[self.still])
            aligned[t] = scale * frame @ rotation.T + shift
        return aligned

    def fit(self, tracked: np.ndarray, iterations: int = 6) -> np.ndarray:
        """Controls (T, n_controls) whose landmark movement matches the tracked movement."""
        aligned = self.align(tracked)
        opening = aligned[:, self.upper, 1].mean(1) - aligned[:, self.lower, 1].mean(1)
        closed = opening <= np.quantile(opening, REST_QUANTILE)
        movement = aligned - np.median(aligned[closed], axis=0)[None]  # relative to the clip's rest pose
        target = self.rest[None] + movement
        lower_bound = np.zeros(self.n_controls)
        upper_bound = np.ones(self.n_controls)
        upper_bound[len(PARAMS):] = EXPRESSION_MAX
        upper_bound[J_JAW] = JAW_MAX_MM
        controls = np.zeros((len(target), self.n_controls))
        weight = np.array([1.0, 1.0, DEPTH_WEIGHT])
        for _ in range(iterations):
            current = self.landmarks(self.deform(controls))
            residual = ((target - current) * weight).reshape(len(target), -1)
            jacobian = np.empty((len(target), residual.shape[1], self.n_controls))
            for k in range(self.n_controls):
                step = 0.1 if k == J_JAW else 0.02
                probe = controls.copy()
                probe[:, k] += step
                moved = (self.landmarks(self.deform(probe)) - current) * weight
                jacobian[:, :, k] = moved.reshape(len(target), -1) / step
            scale = np.array([1e-3 if k == J_JAW else 1.0 for k in range(self.n_controls)])  # jaw in mm
            normal = np.einsum("tmk,tml->tkl", jacobian, jacobian) + REGULARISATION * np.diag(scale ** 2)[None]
            gradient = np.einsum("tmk,tm->tk", jacobian, residual) - REGULARISATION * controls * scale ** 2
            controls = np.clip(controls + np.linalg.solve(normal, gradient[..., None])[..., 0], lower_bound, upper_bound)
        return gaussian_filter1d(controls, SMOOTHING_FRAMES, axis=0, mode="nearest")

    def motion(self, tracked: np.ndarray) -> np.ndarray:
        """(T, V, 3) canonical-frame vertices of the head moving as the tracked face does."""
        return self.deform(self.fit(tracked)).astype(np.float32)
