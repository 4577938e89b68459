"""From tracked face landmarks to motion of a FLAME-topology head.

The 105 MediaPipe landmarks embedded on FLAME's triangles (`mediapipe_landmark_embedding.npz`)
tie the video to the mesh. Per frame, the head pose is removed by a weighted similarity transform
fitted on landmarks the face's movements leave still (nose, eye corners, brows; not the eyelids,
which blink). MediaPipe does not put its landmarks where the embedding does, and the difference
changes as the mouth moves (its lip contour slides over the lips as they open), so the head is
calibrated first: the actor's own head is shown to the tracker in poses of the corpus rig
(`calibration_poses`, rendered and tracked by core.video_calibration), and a ridge regression
from what the tracker reports to the rig's controls (jaw, lip closure, rounding, spreading, tuck,
raise, the expression fields) is learned from them. The video is tracked twice, frame to frame
and each frame afresh as the calibration renders are (the two readings' errors are partly
independent, so they are averaged); that goes through the regression, expressions weaker than
the tracker resolves on this head are dropped, the controls are smoothed over time, and the rig
turns them into a full FLAME deformation, so the lips, jaw and cheeks move as one face, lip
closure included.

On the synthetic speakers, tracking without calibration (a rest pose taken from the clip's most
closed-mouth frames) left 1.5-2.3 mm of lip error, most of it static, which adaptation learned as
the actor's style; with it, 0.59-0.84 mm on the validation speakers (BENCHMARKS.md, adapting from video).
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
STILL_MM = 1.0  # a landmark moved less than this by every control can serve as a pose reference
STILL_SOFTNESS_MM = 0.2  # pose reference weight 1 / (this + the most any control moves the landmark)^2
SMOOTHING_FRAMES = 1.0  # Gaussian sigma over time (tracking jitter is frame to frame)
EXPRESSION_MAX = 1.0  # upper bound of the expression controls (0: articulation only)
CALIBRATION_POSES = 80  # about 20 s to render and track; 160 gave more lip error on the validation speakers
CALIBRATION_RIDGE = 1e-4  # chosen on the validation speakers (1e-3: 0.07 mm more lip error)
# How often each articulation control is active in a calibration pose, and the expressions' share:
# speech-like mixtures, so the regression sees the combinations it will be asked about
ACTIVE_SHARE = {"close": 0.25, "round": 0.4, "spread": 0.4, "tuck": 0.12, "raise": 0.4}
EXPRESSION_SHARE, EXPRESSION_POSE_MAX = 0.15, 0.6
REST_POSES = 3
CALIBRATION_FOLDS = 5  # cross-validation of the calibration: how precisely the tracker reads each control
EXPRESSION_NOISE_MULTIPLE = 2.0  # expression activations below this many times their reading noise are dropped
# MediaPipe face mesh's eye-contour landmarks: blinks move them by up to 2 mm and the rig has no
# eyelids, so they would tilt the head pose at every blink
EYELID_LANDMARKS = frozenset((7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246, 249, 263,
                              362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466))


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


def _ridge(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(feature mean, target mean, weights) of a ridge regression of `targets` on `features`."""
    mean_x, mean_y = features.mean(0), targets.mean(0)
    x = features - mean_x
    weights = np.linalg.solve(x.T @ x + CALIBRATION_RIDGE * np.eye(x.shape[1]), x.T @ (targets - mean_y))
    return mean_x, mean_y, weights


def _predict(regression: tuple[np.ndarray, np.ndarray, np.ndarray], features: np.ndarray) -> np.ndarray:
    mean_x, mean_y, weights = regression
    return (features - mean_x) @ weights + mean_y


def _similarity(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None
                ) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R, translation t with s R source + t ~ target (weighted Umeyama, no reflection)."""
    w = np.ones(len(source)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_t = w @ source, w @ target
    a, b = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd((b * w[:, None]).T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    correction = np.diag([1.0, 1.0, d])
    rotation = u @ correction @ vt
    scale = float(np.trace(np.diag(sigma) @ correction) / max((w[:, None] * a ** 2).sum(), 1e-12))
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
        eyelid = np.isin(self.mediapipe_index, list(EYELID_LANDMARKS))
        self.still = (influence < STILL_MM / 1000.0) & ~eyelid
        self.still_weight = 1.0 / (STILL_SOFTNESS_MM / 1000.0 + influence[self.still]) ** 2
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
            scale, rotation, shift = _similarity(frame[self.still], self.rest[self.still], self.still_weight)
            aligned[t] = scale * frame @ rotation.T + shift
        return aligned

    def calibration_controls(self, n_poses: int = CALIBRATION_POSES, seed: int = 0) -> np.ndarray:
        """(n_poses, n_controls) rig controls to show the tracker: the rest pose, then random
        speech-like mixtures (the jaw open 0-14 mm, lip shapes on and off, a few expressions)."""
        rng = np.random.default_rng(seed)
        controls = np.zeros((n_poses, self.n_controls))
        controls[:, J_JAW] = rng.uniform(0.0, 14.0, n_poses) * (rng.random(n_poses) > 0.1)
        for name, share in ACTIVE_SHARE.items():
            k = PARAMS.index(name)
            controls[:, k] = rng.uniform(0.0, 1.0, n_poses) * (rng.random(n_poses) < share)
        n_expressions = self.n_controls - len(PARAMS)
        controls[:, len(PARAMS):] = (rng.uniform(0.0, EXPRESSION_POSE_MAX * EXPRESSION_MAX, (n_poses, n_expressions))
                                     * (rng.random((n_poses, n_expressions)) < EXPRESSION_SHARE))
        controls[:REST_POSES] = 0.0
        return controls

    def calibration_poses(self, controls: np.ndarray | None = None) -> np.ndarray:
        """(P, V, 3) canonical-frame vertices of the head in its calibration poses."""
        return self.deform(self.calibration_controls() if controls is None else controls)

    def calibrate(self, tracked_poses: list[np.ndarray | None], controls: np.ndarray | None = None) -> None:
        """Learn how the tracker sees this head: `tracked_poses` (478, 3) per calibration pose (None
        where it found no face) against the controls that made them."""
        controls = self.calibration_controls() if controls is None else controls
        found = [k for k, t in enumerate(tracked_poses) if t is not None]
        if len(found) < 0.75 * len(controls) or any(tracked_poses[k] is None for k in range(REST_POSES)):
            raise TopologyError(f"The face tracker found this head in only {len(found)} of its {len(controls)} "
                                "calibration renders; is the template a FLAME head facing +Z with a normal face?")
        features = self._features(self.align(np.stack([tracked_poses[k] for k in found])))
        targets = controls[found] / self._control_scale
        self._regression = _ridge(features, targets)
        # how far the tracker's reading of each control strays on poses it was not calibrated on
        folds = np.arange(len(found)) % CALIBRATION_FOLDS
        held_out = np.empty_like(targets)
        for fold in range(CALIBRATION_FOLDS):
            regression = _ridge(features[folds != fold], targets[folds != fold])
            held_out[folds == fold] = _predict(regression, features[folds == fold])
        self.control_noise = np.sqrt(np.mean((held_out - targets) ** 2, axis=0)) * self._control_scale

    @property
    def calibrated(self) -> bool:
        return getattr(self, "_regression", None) is not None

    @property
    def _control_scale(self) -> np.ndarray:
        """Controls in comparable units: the jaw in centimetres of lip gap, the others 0..1."""
        return np.array([10.0 if k == J_JAW else 1.0 for k in range(self.n_controls)])

    def _features(self, aligned: np.ndarray) -> np.ndarray:
        return (aligned - self.rest[None]).reshape(len(aligned), -1)

    def fit(self, *views: np.ndarray) -> np.ndarray:
        """Controls (T, n_controls) for tracked landmarks (T, 478, 3), smoothed over time. Several
        views (the same frames tracked in different ways) are averaged once aligned: their errors
        are partly independent."""
        if not self.calibrated:
            raise RuntimeError("LandmarkFit.calibrate() must run before fit(): the tracker's view of this head is "
                               "not known yet (core.video_calibration.calibrate_fit does both)")
        if not views or len({v.shape for v in views}) != 1:
            raise ValueError("fit() takes one or more tracked views of the same frames, (T, 478, 3) each")
        aligned = np.mean([self.align(view) for view in views], axis=0)
        controls = _predict(self._regression, self._features(aligned)) * self._control_scale
        upper = np.full(self.n_controls, 1.0)
        upper[len(PARAMS):] = EXPRESSION_MAX
        upper[J_JAW] = JAW_MAX_MM
        controls = np.clip(controls, 0.0, upper)
        # an expression read at less than the tracker resolves on this head is its noise, not the
        # actor's: left in, a faint constant brow raise or smile was learnt as the actor's style
        expression = controls[:, len(PARAMS):]
        controls[:, len(PARAMS):] = np.maximum(expression - EXPRESSION_NOISE_MULTIPLE
                                               * self.control_noise[len(PARAMS):], 0.0)
        return gaussian_filter1d(controls, SMOOTHING_FRAMES, axis=0, mode="nearest")

    def motion(self, *views: np.ndarray) -> np.ndarray:
        """(T, V, 3) canonical-frame vertices of the head moving as the tracked face does."""
        return self.deform(self.fit(*views)).astype(np.float32)
