"""A procedural articulation model of a FLAME head, built from the mesh alone.

The mouth opening is one of the mesh's two boundary loops; its two halves between the corners
give the upper and lower lip, and geodesic distance over the mesh from each half gives the lip
and jaw regions. On those regions act deformation fields: jaw rotation about an axis behind the
mouth, lip closure (solved per frame so bilabials really close), rounding and protrusion,
spreading, lower-lip tuck for /f v/, upper-lip raise, and blinks.

Phonemes become viseme targets; coarticulation blends them with dominance functions
(Cohen & Massaro), so a rounded vowel's rounding spreads over the consonants before it.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..lips import lip_sides, lip_weights, smoothstep, upper_side
from .emotion import ExpressionFields
from .speaker_style import FPS, SpeakingStyle  # noqa: F401 (FPS is also read from here)
PARAMS = ("jaw", "close", "round", "spread", "tuck", "raise")
J_JAW, J_CLOSE, J_ROUND, J_SPREAD, J_TUCK, J_RAISE = range(len(PARAMS))

# viseme targets: jaw = lip gap in mm the jaw opens to; the others are 0..1 activations
_TARGETS = {
    "SIL": (0, 0, 0, 0, 0, 0),
    "P": (2, 1, 0, 0, 0, 0), "B": (2, 1, 0, 0, 0, 0), "M": (2, 1, 0, 0, 0, 0),
    "F": (3, 0, 0, 0.1, 1, 0.2), "V": (3, 0, 0, 0.1, 1, 0.2),
    "AA": (12, 0, 0, 0, 0, 0.2), "AE": (10.5, 0, 0, 0.3, 0, 0.2), "AH": (9, 0, 0, 0, 0, 0.1),
    "AO": (10, 0, 0.5, 0, 0, 0), "AW": (10, 0, 0.4, 0, 0, 0.1), "AY": (10, 0, 0, 0.2, 0, 0.1),
    "AX": (5, 0, 0, 0, 0, 0.1), "EH": (7, 0, 0, 0.4, 0, 0.1), "EY": (6, 0, 0, 0.5, 0, 0.1), "IH": (4.5, 0, 0, 0.6, 0, 0.1),
    "IY": (3.5, 0, 0, 0.9, 0, 0.1), "ER": (4, 0, 0.4, 0, 0, 0.2), "OW": (6.5, 0, 0.9, 0, 0, 0),
    "OY": (7, 0, 0.7, 0, 0, 0), "UH": (4.5, 0, 0.6, 0, 0, 0), "UW": (3, 0, 1.0, 0, 0, 0),
    "W": (2.5, 0, 1.0, 0, 0, 0), "R": (3, 0, 0.5, 0, 0, 0.1), "Y": (3, 0, 0, 0.6, 0, 0),
    "SH": (3, 0, 0.6, 0, 0, 0.3), "ZH": (3, 0, 0.6, 0, 0, 0.3), "CH": (3, 0, 0.6, 0, 0, 0.3),
    "JH": (3, 0, 0.6, 0, 0, 0.3), "S": (2.5, 0, 0, 0.4, 0, 0.1), "Z": (2.5, 0, 0, 0.4, 0, 0.1),
    "TH": (4, 0, 0, 0.2, 0, 0.2), "DH": (4, 0, 0, 0.2, 0, 0.2), "T": (4, 0, 0, 0.2, 0, 0),
    "D": (4, 0, 0, 0.2, 0, 0), "N": (4, 0, 0, 0.1, 0, 0), "L": (5, 0, 0, 0.1, 0, 0),
    "K": (5, 0, 0, 0, 0, 0), "G": (5, 0, 0, 0, 0, 0), "NG": (4.5, 0, 0, 0, 0, 0), "HH": (6, 0, 0, 0, 0, 0),
}
BILABIALS = ("P", "B", "M")
LABIODENTALS = ("F", "V")
OPEN_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY")
ROUNDED = ("UW", "OW", "W", "UH", "OY")
VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "AX", "EH", "EY", "IH", "IY", "ER", "OW", "OY", "UH", "UW")


def _dominance(phone: str, param: int) -> float:
    """How strongly a phone insists on its target for a parameter (consonants leave rounding and
    much of the jaw to their neighbours; bilabials and /f v/ insist on their lips)."""
    if phone == "SIL":
        return 0.6
    # lip closure and tuck are guaranteed by hard constraints on the consonant's own frames; here vowels
    # insist on open lips so closure does not leak into "Bob"'s vowel
    if param == J_CLOSE:
        return 6.0 if phone in BILABIALS else 2.0 if phone in VOWELS else 0.5
    if param == J_TUCK:
        return 6.0 if phone in LABIODENTALS else 2.0 if phone in VOWELS else 0.5
    if param == J_ROUND:
        return 6.0 if phone in ROUNDED + ("SH", "ZH", "CH", "JH", "R", "ER", "AO", "AW") else 0.15
    if param == J_JAW:
        return 4.0 if phone in VOWELS else 1.5 if phone in BILABIALS + LABIODENTALS else 0.8
    return 2.0 if phone in VOWELS else 0.5


def viseme_curves(phones, n_frames: int, style: SpeakingStyle) -> np.ndarray:
    """(n_frames, len(PARAMS)) articulation parameters at 30 fps from timed phones."""
    times = (np.arange(n_frames) + 0.5) / FPS
    centres = np.array([(p.start + p.end) / 2 for p in phones])
    durations = np.array([max(p.end - p.start, 0.02) for p in phones])
    curves = np.zeros((n_frames, len(PARAMS)))
    # Gaussian dominance (local: a strong target must not leak over whole words); anticipatory reach
    # scales with the style, carry-over is shorter, as in speech
    reach_ahead = 0.04 * style.anticipation + durations / 2
    reach_after = 0.025 + durations / 2
    for j in range(len(PARAMS)):
        num = np.zeros(n_frames)
        den = np.full(n_frames, 1e-9)
        for k, phone in enumerate(phones):
            target = _TARGETS.get(phone.phone, _TARGETS["SIL"])[j]
            alpha = _dominance(phone.phone, j)
            dt = centres[k] - times
            ahead = reach_ahead[k] * (2.5 if j == J_ROUND and phone.phone in ROUNDED else 1.0)  # rounding starts early
            reach = np.where(dt > 0, ahead, reach_after[k])
            dominance = alpha * np.exp(-np.square(dt / reach))
            num += dominance * target
            den += dominance
        curves[:, j] = num / den
    # bilabials always close, /f v/ always tuck: hard constraints over the consonant's own span
    for phone in phones:
        if phone.phone in BILABIALS + LABIODENTALS:
            j = J_CLOSE if phone.phone in BILABIALS else J_TUCK
            inside = (times >= phone.start) & (times <= phone.end)
            if not inside.any():  # shorter than a frame: its nearest frame
                inside = np.zeros(n_frames, bool)
                inside[min(int((phone.start + phone.end) / 2 * FPS), n_frames - 1)] = True
            curves[inside, j] = 1.0
    curves = gaussian_filter1d(curves, sigma=style.smoothing, axis=0, mode="nearest")
    # smoothing softens the hard constraints: restore them where they must hold
    for phone in phones:
        if phone.phone in BILABIALS:
            centre = min(int((phone.start + phone.end) / 2 * FPS), n_frames - 1)
            curves[centre, J_CLOSE] = 1.0
    # styles differ in how they share the work between jaw and lips, within physical limits
    curves[:, J_JAW] *= np.sqrt(style.amplitude * style.jaw_share)
    curves[:, J_ROUND:J_SPREAD + 1] *= np.sqrt(style.amplitude / style.jaw_share)
    hold_vowel_ranges(curves, phones, times)
    return np.clip(curves, [0, 0, 0, 0, 0, 0], [20, 1, 1.3, 1.3, 1, 1])


OPEN_VOWEL_MIN_MM = 9.0  # a held open vowel opens at least this far (physical range 8-15 mm)
ROUNDED_VOWEL_MIN = 0.85  # rounding activation a held rounded vowel reaches (narrows the mouth ~17%)
JAW_SOFT_LIMIT_MM = (11.0, 2.0)  # openings above 11 mm saturate towards 13 mm (upper-lip raise adds < 2)


def hold_vowel_ranges(curves: np.ndarray, phones, times: np.ndarray) -> None:
    """Keep held vowels in their physical ranges whatever the style, emotion or neighbours: a quiet,
    lip-heavy speaker or a vowel squeezed between two bilabials ("Bob") still opens 8 mm, a sad
    speaker still rounds /uw/, done with smooth bumps so no frame jumps."""
    for phone in phones:
        duration = phone.end - phone.start
        span = (times >= phone.start) & (times <= phone.end)
        if not span.any():
            continue
        centre = (phone.start + phone.end) / 2
        if phone.phone in OPEN_VOWELS and duration >= 0.1:
            # closure leaking in from neighbouring bilabials shrinks the gap to about jaw x (1 - close):
            # open the jaw enough at the vowel's most open frame (releasing the lips faster would jerk them)
            frames = np.flatnonzero(span)
            best = frames[np.argmax(curves[frames, J_JAW] * (1 - curves[frames, J_CLOSE]))]
            needed = OPEN_VOWEL_MIN_MM / max(1.0 - curves[best, J_CLOSE], 0.5)
            bump = np.exp(-np.square((times - times[best]) / (duration / 2 + 1 / FPS)))
            curves[:, J_JAW] += max(0.0, needed - curves[best, J_JAW]) * bump
        elif phone.phone in ROUNDED and phone.phone in VOWELS and duration >= 0.08:
            bump = np.exp(-np.square((times - centre) / (duration / 2 + 1 / FPS)))
            curves[:, J_ROUND] += max(0.0, ROUNDED_VOWEL_MIN - curves[span, J_ROUND].max()) * bump


CORNER_REACH_M = 0.012  # the jaw's weight eases to half over this distance from the mouth corners


def lower_side(rig: "FaceRig") -> np.ndarray:
    """(V,) 1 below the mouth, 0 above: by geodesic distance to the mouth opening's halves where
    that is clear-cut, else (in front of the mouth) by height against the line where the lips meet
    (corner to corner through the lips' contact points). Geodesic distance alone splits the lower
    lip's front wrongly a few millimetres off the midline, where the lip curls round into the
    mouth: a jaw weighted by it drew a V-shaped crease under the lower lip."""
    v = rig.template
    cu, cl = rig.contact_upper, rig.contact_lower
    xs = np.concatenate([(v[cu, 0] + v[cl, 0]) / 2, v[rig.corners, 0]])
    ys = np.concatenate([(v[cu, 1] + v[cl, 1]) / 2, v[rig.corners, 1]])
    order = np.argsort(xs)
    lip_line = np.interp(v[:, 0], xs[order], ys[order])
    below = 1 / (1 + np.exp(-(lip_line - v[:, 1]) / 0.0015))
    in_front = v[:, 2] > rig.mouth_centre[2] - 0.004
    geodesic = 1 - upper_side(rig.sides)
    sure = np.abs(geodesic - 0.5) > 0.4  # the geodesic split is trusted where it is clear-cut
    return np.where(in_front & ~sure, below, geodesic)


def mesh_average(n: int, triangles: np.ndarray):
    """Sparse (V, V) operator: each vertex's value becomes the mean of its neighbours'."""
    from scipy.sparse import diags

    from ..mesh_graph import adjacency

    a = (adjacency(triangles, n) > 0).astype(np.float64)
    return diags(1.0 / np.maximum(np.asarray(a.sum(axis=1)).ravel(), 1)) @ a


def jaw_weights(rig: "FaceRig") -> np.ndarray:
    """(V,) how far each vertex follows the jaw: the whole lower side (lower lip, chin, lower
    cheeks), half at the mouth corners, fading towards the neck and ears; smoothed over the mesh so
    the lower lip opens as a U."""
    falloff = np.clip((0.11 - rig.sides.d_lower) / 0.05, 0, 1) ** 2
    near_corner = np.linalg.norm(rig.template[:, None] - rig.template[rig.corners][None], axis=2).min(axis=1)
    corner = smoothstep(near_corner / CORNER_REACH_M)
    w = (lower_side(rig) * corner + 0.5 * (1 - corner)) * falloff
    average = mesh_average(len(w), rig.triangles)
    for _ in range(20):
        w = 0.5 * w + 0.5 * (average @ w)
    return w


def soften_jaw(jaw_mm: np.ndarray) -> np.ndarray:
    """Openings beyond the soft limit saturate (a loud angry /aa/ cannot open past ~15 mm)."""
    knee, room = JAW_SOFT_LIMIT_MM
    return np.where(jaw_mm <= knee, jaw_mm, knee + room * np.tanh((jaw_mm - knee) / room))


class FaceRig:
    """Deformation fields of one head, found from its connectivity."""

    def __init__(self, template: np.ndarray, triangles: np.ndarray, eyelids: np.ndarray | None = None):
        self.template = np.asarray(template, dtype=np.float64)
        self.triangles = np.asarray(triangles)
        v = self.template
        self.sides = lip_sides(v, self.triangles)
        self.corners, self.mouth_centre, self.half_width = self.sides.corners, self.sides.mouth_centre, self.sides.half_width
        d_up, d_low = self.sides.d_upper, self.sides.d_lower
        self.w_upper, self.w_lower = lip_weights(self.sides)
        self.w_lips = np.maximum(self.w_upper, self.w_lower)
        self.pivot = self.mouth_centre + np.array([0.0, 0.02, -0.085])
        x_rel = (v[:, 0] - self.mouth_centre[0]) / max(self.half_width, 1e-6)
        self.x_rel = x_rel

        # contact columns: the front-most lip vertices either side of the lip line, in the middle of the mouth
        front = v[:, 2] > self.mouth_centre[2] + 0.004
        near_up = front & (d_up < 0.022) & (d_up < d_low)
        near_low = front & (d_low < 0.022) & (d_low < d_up)
        columns = np.linspace(-0.45, 0.45, 7) * self.half_width + self.mouth_centre[0]
        up_idx, low_idx = [], []
        for x in columns:
            band = np.abs(v[:, 0] - x) < 0.12 * self.half_width
            cu, cl = np.where(band & near_up)[0], np.where(band & near_low)[0]
            if len(cu) and len(cl):
                up_idx.append(cu[np.argmin(v[cu, 1])])
                low_idx.append(cl[np.argmax(v[cl, 1])])
        self.contact_upper, self.contact_lower = np.array(up_idx), np.array(low_idx)
        self.w_jaw = jaw_weights(self)
        self.eyelids = eyelids
        self.rest_gap = float(self.lip_gap(v[None])[0])
        self._jaw_table = self._calibrate_jaw()

    # ---- measurements (also used by the tests and the evaluation) --------------------------------
    def lip_gap(self, vertices: np.ndarray) -> np.ndarray:
        """(T,) inner-lip gap in metres at the middle of the mouth (median over columns)."""
        gaps = vertices[:, self.contact_upper, 1] - vertices[:, self.contact_lower, 1]
        return np.median(gaps, axis=1)

    def mouth_width(self, vertices: np.ndarray) -> np.ndarray:
        return np.linalg.norm(vertices[:, self.corners[1]] - vertices[:, self.corners[0]], axis=1)

    # ---- deformation -----------------------------------------------------------------------------
    def jaw_offsets(self, angles: np.ndarray) -> np.ndarray:
        """(T, V, 3) offsets of the jaw rotated by `angles` (radians) about its pivot."""
        rel = self.template - self.pivot
        cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
        rotated_y = rel[None, :, 1] * cos - rel[None, :, 2] * sin
        rotated_z = rel[None, :, 1] * sin + rel[None, :, 2] * cos
        out = np.zeros((len(angles),) + self.template.shape)
        out[..., 1] = (rotated_y - rel[None, :, 1]) * self.w_jaw
        out[..., 2] = (rotated_z - rel[None, :, 2]) * self.w_jaw
        return out

    def _calibrate_jaw(self) -> tuple[np.ndarray, np.ndarray]:
        angles = np.linspace(0, 0.45, 46)
        gaps = self.lip_gap(self.template + self.jaw_offsets(angles)) - self.rest_gap
        return np.maximum.accumulate(gaps), angles

    def jaw_angle_for_gap(self, gap_mm: np.ndarray) -> np.ndarray:
        gaps, angles = self._jaw_table
        # the table holds the opening beyond the rest gap (FLAME's closed lips overlap a little)
        return np.interp(np.asarray(gap_mm) / 1000.0 - min(self.rest_gap, 0.0), gaps, angles)

    def expression_fields(self):
        """The emotion rig of this head (brows, eyes, cheeks, mouth corners), built on first use."""
        if getattr(self, "_expressions", None) is None:
            self._expressions = ExpressionFields(self)
        return self._expressions

    def deform(self, curves: np.ndarray, style: SpeakingStyle, blinks: np.ndarray | None = None,
               expression: np.ndarray | None = None) -> np.ndarray:
        """Vertices (T, V, 3) for articulation curves (T, len(PARAMS)) and optional expression
        activations (T, len(emotion.EXPRESSIONS))."""
        T = len(curves)
        lips_side = 1.0 + style.asymmetry * self.x_rel  # one side of the mouth works harder
        out = self.template[None] + self.jaw_offsets(self.jaw_angle_for_gap(curves[:, J_JAW]))
        x_from_centre = self.template[:, 0] - self.mouth_centre[0]
        w = self.w_lips * lips_side
        # rounding: corners in by up to 40% of the width, lips forward 5 mm
        out[..., 0] -= curves[:, J_ROUND, None] * 0.40 * x_from_centre * w
        out[..., 2] += curves[:, J_ROUND, None] * 0.005 * w
        # spreading: corners out by up to 12%, slightly back
        out[..., 0] += curves[:, J_SPREAD, None] * 0.12 * x_from_centre * w
        out[..., 2] -= curves[:, J_SPREAD, None] * 0.0015 * w
        # /f v/: the lower lip rises and draws back under the upper teeth
        out[..., 1] += curves[:, J_TUCK, None] * 0.0025 * self.w_lower * lips_side
        out[..., 2] -= curves[:, J_TUCK, None] * 0.003 * self.w_lower * lips_side
        out[..., 1] += curves[:, J_RAISE, None] * 0.0015 * self.w_upper * lips_side
        eyelid = np.zeros(T) if blinks is None else np.asarray(blinks, dtype=np.float64)
        if expression is not None:  # before closure, so bilabials still close on an emotional face
            fields = self.expression_fields()
            expressed = fields.offsets(expression)
            # rounding overrides the corners' pull outwards (a smiling "oo" still rounds)
            expressed[..., 0] *= 1.0 - np.clip(2 * curves[:, J_ROUND], 0, 1)[:, None] * np.clip(self.w_lips * 2.5, 0, 1)
            out += expressed
            eyelid = eyelid + fields.eyelid_closure(expression)
        # closure: solved per frame so the lips meet exactly (never cross) when closing fully
        gap = self.lip_gap(out) - min(self.rest_gap, 0.0)
        amount = curves[:, J_CLOSE] * np.maximum(gap, 0.0)
        out[..., 1] -= (amount / 2)[:, None] * self.w_upper
        out[..., 1] += (amount / 2)[:, None] * self.w_lower
        if self.eyelids is not None:  # a blink shuts even wide eyes; nothing closes them further
            out += np.clip(eyelid, -0.5, 1.0)[:, None, None] * self.eyelids[None]
        return out.astype(np.float32)


def blink_curve(n_frames: int, rate_per_min: float, rng: np.random.Generator) -> np.ndarray:
    """Blinks as raised-cosine closures of 0.2-0.3 s at random times."""
    curve = np.zeros(n_frames)
    t = rng.exponential(60.0 / rate_per_min) * 0.5
    while t * FPS < n_frames:
        length = rng.uniform(0.2, 0.3) * FPS
        frames = np.arange(int(t * FPS), min(int(t * FPS + length) + 1, n_frames))
        curve[frames] = np.maximum(curve[frames], 0.5 - 0.5 * np.cos(2 * np.pi * (frames - t * FPS) / length))
        t += max(rng.exponential(60.0 / rate_per_min), 0.6)
    return curve


def random_identity(template: np.ndarray, rng: np.random.Generator, amplitude_m: float = 0.003) -> np.ndarray:
    """A new face from `template` by a smooth random deformation (a few broad Gaussian bumps)."""
    out = np.asarray(template, dtype=np.float64).copy()
    for _ in range(6):
        centre = out[rng.integers(len(out))]
        direction = rng.normal(size=3)
        direction *= amplitude_m / np.linalg.norm(direction)
        sigma = rng.uniform(0.03, 0.06)
        weight = np.exp(-np.sum((out - centre) ** 2, axis=1) / (2 * sigma**2))
        out += weight[:, None] * direction
    return out.astype(np.float32)
