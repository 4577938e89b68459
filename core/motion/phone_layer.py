"""The phone layer: a model's motion made to do what the timed phones require.

From the model's offsets (any model) and the clip's phones (core.speech.SpeechTiming), at the
model's rate, in the canonical frame:

1. **Smooth the lower face.** The corpus rig's jaw used to end in a sharp V under the lower lip
   (fixed in core.corpus.articulation since), and the shipped models learnt it: a crease whenever
   the jaw is open. The offsets are smoothed over the lower face (the mouth's edges held), a
   linear operator applied once to the model's basis.
2. **Rest in pauses.** In every pause the motion fades to nothing (the template) within
   `REST_RAMP_FRAMES`, and back out before the next phone. Where no phones are trusted, pauses
   come from the audio's level.
3. **Open by the vowel.** The corpus rig's viseme targets (jaw opening per phone, coarticulated)
   say how far the lips should part (as a vertical gap); where the model opens less than that, or
   than it did itself before the smoothing, the rig's jaw rotation adds the difference.
4. **Apart at every other phone.** At a phone that is not /p b m/, lips closer than `MIN_GAP_MM`
   over rest are parted to it (a tongue stop must not read as a seal).
5. **Seal at /p b m/.** Over each bilabial's span (eased in and out) the jaw is taken back along
   its arc until the visible lip line is at its rest contact (never past the jaw's rest), then the
   seal field (core.lips) closes the lip line and the lip edges the rest of the way.

Where a stretch is not covered by trusted phones, steps 3-5 leave it alone and the model's own
phonetic head gates the seal there, as before. The result is again linear in a basis: the
model's basis and mean, the jaw field and the seal field, so shape keys stay few.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.sparse import diags, identity

from ..corpus.articulation import BILABIALS, J_JAW, FaceRig, lower_side, mesh_average, viseme_curves
from ..corpus.speaker_style import SpeakingStyle
from ..corpus.speech import Phone
from ..lips import LipLine, LipSeal, SealGate, amount_to_gap, edge_gap, smoothstep
from ..phones import PHONE_CLASSES, phone_name, silences

REST_RAMP_FRAMES = 4  # a pause reaches the template this many frames after it starts
PAUSE_MIN_S = 0.15  # shorter silences between words are not pauses
LEVEL_PAUSE_MIN_S = 0.5  # where no phones are trusted, quiet stretches this long are pauses
MIN_GAP_MM = 1.2  # lips at a phone other than /p b m/ stay at least this far apart (a seal reads at 0.5)
MAX_PART_MM = 4.0  # parting never opens the jaw further than this (lips that rest overlapped part late)
SEAL_LEAD_FRAMES, SEAL_TAIL_FRAMES = 1, 1  # the seal holds this far either side of the bilabial's span
OPEN_GAIN = 1.4  # the rig's viseme openings (mm) to vertical gaps between the lips over rest: on FLAME_sample this
# opens the lip line as far as the viseme says (the line parts about 0.7 mm per mm of vertical gap here)
MAX_OPEN_MM = 18.0
SMOOTH_ITERATIONS = 80
MAX_SEAL_M = 0.012
_BILABIAL_CLASSES = [PHONE_CLASSES.index(p) for p in BILABIALS]


class PhoneLayer:
    """The layer for one head (canonical frame, FLAME topology)."""

    def __init__(self, template: np.ndarray, triangles: np.ndarray, gate: SealGate | None = None):
        self.template = np.asarray(template, dtype=np.float64)
        n = len(self.template)
        rig = FaceRig(self.template, triangles)
        self.line = LipLine(self.template)
        self.seal = LipSeal(self.template, triangles, gate)
        average = mesh_average(n, triangles)
        lower = lower_side(rig)
        loops = np.concatenate([rig.sides.upper_loop, rig.sides.lower_loop])
        # 1. smoothing of the lower face (the mouth's edges held so the lips keep meeting); it also
        # flattens some of the model's opening, which step 3 gives back with the jaw field
        region = lower * (rig.sides.d_lower < 0.07)
        region[loops] = 0.0
        step = (identity(n) + diags(0.5 * region) @ (average - identity(n))).tocsr()
        smooth = identity(n, format="csr")
        for _ in range(SMOOTH_ITERATIONS):
            smooth = step @ smooth
        self.smooth = smooth.tocsr()
        # 3. the jaw field: the corpus rig's jaw (core.corpus.articulation.jaw_weights) at a middling
        # opening, per mm of opening
        jaw = rig.jaw_offsets(np.array([0.12]))[0]
        # calibrated on the vertical gap between the lips, which grows with the jaw from the start even
        # on heads whose lips rest overlapped (there the lip line's 3D distance first shrinks)
        opened = float(rig.lip_gap((self.template + jaw)[None])[0] - rig.rest_gap) * 1000.0
        self.open_field = (jaw / max(opened, 1.0)).astype(np.float32)  # offsets per mm of opening
        self.rig_rest_gap = rig.rest_gap
        self.watched = np.unique(np.concatenate([self.line.upper, self.line.lower, self.line.corners,
                                                 self.seal.contact.upper, self.seal.contact.lower,
                                                 rig.contact_upper, rig.contact_lower]))

        self.column = {int(v): k for k, v in enumerate(self.watched)}
        self.cols_line = ([self.column[int(v)] for v in self.line.upper], [self.column[int(v)] for v in self.line.lower])
        self.cols_edge = ([self.column[int(v)] for v in self.seal.contact.upper],
                          [self.column[int(v)] for v in self.seal.contact.lower])
        self.cols_vertical = ([self.column[int(v)] for v in rig.contact_upper],
                              [self.column[int(v)] for v in rig.contact_lower])

    def smooth_offsets(self, offsets: np.ndarray) -> np.ndarray:
        """(..., V, 3) offsets smoothed over the lower face."""
        flat = np.moveaxis(np.asarray(offsets, dtype=np.float32), -2, 0)  # (V, ..., 3)
        shape = flat.shape
        return np.moveaxis((self.smooth @ flat.reshape(len(flat), -1)).reshape(shape), 0, -2).astype(np.float32)

    def _gap_mm(self, positions: np.ndarray, cols, rest: float) -> np.ndarray:
        up, low = cols
        return (edge_gap(positions, np.array(up), np.array(low)) - rest) * 1000.0

    def line_gap_mm(self, positions: np.ndarray) -> np.ndarray:
        """(T,) visible lip-line gap over rest of (T, len(watched), 3) positions."""
        return self._gap_mm(positions, self.cols_line, self.line.rest_gap)

    def vertical_gap_mm(self, positions: np.ndarray) -> np.ndarray:
        """(T,) vertical opening between the lips over rest (the corpus rig's jaw measure): unlike
        the lip line's 3D distance it grows with the jaw from the start on every head."""
        up, low = self.cols_vertical
        gaps = np.median(positions[:, up, 1] - positions[:, low, 1], axis=1)
        return (gaps - self.rig_rest_gap) * 1000.0

    # ---- the steps -------------------------------------------------------------------------------
    def rest_weights(self, n_frames: int, fps: float, phones, covered: np.ndarray,
                     audio: np.ndarray | None) -> np.ndarray:
        """(T,) 0 (the model's motion) to 1 (the template): 1 in pauses from REST_RAMP_FRAMES in."""
        times = np.arange(n_frames) / fps
        duration = n_frames / fps
        edge = 1.5 / fps  # a silence this close to the clip's start or end reaches it
        pauses = [(0.0 if s <= edge else s, duration if e >= duration - edge else e) for s, e in silences(phones)]
        # at the clip's ends any silence is a pause: the face starts and ends at rest
        pauses = [(s, e) for s, e in pauses if e - s >= PAUSE_MIN_S or s == 0.0 or e == duration]
        if audio is not None and not covered.all():
            from ..speech.transcribe import SAMPLE_RATE, quiet_runs

            for s, e in quiet_runs(audio, LEVEL_PAUSE_MIN_S):
                inside = (times >= s) & (times < e)
                if inside.any() and not covered[inside].any():
                    pauses.append((s, min(e, len(audio) / SAMPLE_RATE)))
        rest = np.zeros(n_frames)
        for start, end in pauses:
            ramp_in = np.ones(n_frames) if start == 0.0 else smoothstep((times - start) * fps / REST_RAMP_FRAMES)
            ramp_out = np.ones(n_frames) if end == duration else smoothstep((end - times) * fps / REST_RAMP_FRAMES)
            inside = (times >= start) & (times < end)
            rest = np.maximum(rest, np.where(inside, np.minimum(ramp_in, ramp_out), 0.0))
        return rest

    def opening_targets(self, n_frames: int, fps: float, phones) -> np.ndarray:
        """(T,) lip-line opening over rest (mm) the phones call for, coarticulated (the corpus rig's)."""
        from ..corpus.speaker_style import FPS

        spoken = [Phone(phone_name(p) or "SIL", s, e) for p, s, e in phones]
        if not spoken:
            return np.zeros(n_frames)
        n_rig = int(np.ceil(n_frames / fps * FPS)) + 1
        jaw = viseme_curves(spoken, n_rig, SpeakingStyle())[:, J_JAW]
        rig_times = (np.arange(n_rig) + 0.5) / FPS
        return np.clip(np.interp(np.arange(n_frames) / fps, rig_times, jaw) * OPEN_GAIN, 0.0, MAX_OPEN_MM)

    def _open_by(self, positions: np.ndarray, target_mm: np.ndarray, active: np.ndarray, measure,
                 limit_mm: float = MAX_OPEN_MM) -> np.ndarray:
        """(T,) mm of the jaw field that brings `measure` (a gap in mm) to at least `target_mm` where
        `active`, at most `limit_mm`."""
        field = self.open_field[self.watched][None].astype(np.float64)
        amount = np.zeros(len(positions))
        for _ in range(3):  # the gaps are nearly linear in the field: a few corrections settle it
            gap = measure(positions + amount[:, None, None] * field)
            amount = np.clip(amount + np.where(active, target_mm - gap, 0.0), 0.0, limit_mm)
        return amount

    def _frames_within(self, n_frames: int, fps: float, spans, lead: int, tail: int) -> np.ndarray:
        frames = np.arange(n_frames)
        mask = np.zeros(n_frames, dtype=bool)
        for start, end in spans:
            mask |= (frames >= np.floor(start * fps) - lead) & (frames <= np.ceil(end * fps) - 1 + tail)
        return mask

    def apply(self, prediction, timing=None, audio: np.ndarray | None = None, strength: float = 1.0,
              bilabial_probability: np.ndarray | None = None):
        """`prediction` (core.models.base.MotionPrediction, canonical frame) shaped by `timing`
        (core.speech.SpeechTiming, or None: only pauses by level and the phonetic head's seal)."""
        fps, n = float(prediction.fps), prediction.n_frames
        w = self.watched
        if prediction.basis is not None:
            raw = prediction.mean[w][None] + np.einsum("tk,kvc->tvc", prediction.coefficients, prediction.basis[:, w])
            mean, basis = self.smooth_offsets(prediction.mean), self.smooth_offsets(prediction.basis)
            moved = mean[w][None] + np.einsum("tk,kvc->tvc", prediction.coefficients, basis[:, w])
        else:
            raw = prediction.offsets[:, w]
            offsets = self.smooth_offsets(prediction.offsets)
            moved = offsets[:, w]
        covered = timing.covered_frames(n, fps) if timing is not None else np.zeros(n, dtype=bool)
        phones = list(timing.phones) if timing is not None else []
        rest = self.rest_weights(n, fps, phones, covered, audio)
        keep = (1.0 - rest).astype(np.float32)
        positions = self.template[w][None] + keep[:, None, None] * moved
        # 3. open by the vowel, and never less than the model itself opened before the smoothing
        model_gap = self.vertical_gap_mm(self.template[w][None] + keep[:, None, None] * raw)
        targets = np.maximum(np.where(covered, self.opening_targets(n, fps, phones), 0.0), model_gap) * (1 - rest)
        opening = self._open_by(positions, targets, rest < 1.0, self.vertical_gap_mm)
        # where no words are trusted, the smoothing also flattens the lip line itself: give back what
        # the model parted it by (where words are, the phones say how far it parts)
        raw_line = self.line_gap_mm(self.template[w][None] + keep[:, None, None] * raw)
        field_w = self.open_field[w][None].astype(np.float64)
        opening = opening + self._open_by(positions + opening[:, None, None] * field_w, raw_line,
                                          (rest < 1.0) & ~covered, self.line_gap_mm, MAX_PART_MM)
        # 4. apart at every phone other than /p b m/ (the seal's own frames, and two beyond, excepted)
        bilabial_spans = [(s, e) for p, s, e in phones if phone_name(p) in BILABIALS]
        near_bilabial = self._frames_within(n, fps, bilabial_spans, SEAL_LEAD_FRAMES + 3, SEAL_TAIL_FRAMES + 3)
        others = [(s, e) for p, s, e in phones if phone_name(p) not in BILABIALS + ("SIL", "")]
        must_part = self._frames_within(n, fps, others, 2, 3) & covered & ~near_bilabial
        opened = positions + opening[:, None, None] * field_w
        opening = opening + self._open_by(opened, np.full(n, MIN_GAP_MM), must_part, self.line_gap_mm, MAX_PART_MM)
        positions = positions + opening[:, None, None] * field_w
        # 5. seal at /p b m/: the lip line and the lip edges back to their rest contact
        gate = self._frames_within(n, fps, bilabial_spans, SEAL_LEAD_FRAMES, SEAL_TAIL_FRAMES).astype(np.float64)
        gate = np.maximum(gate, np.clip(gaussian_filter1d(gate, 1.0) * 1.5, 0, 1)) * covered
        # first the jaw back along its arc (the model's lower lip is also drawn back, which a straight
        # pull cannot undo), then the lips' own closing for what is left
        up, low = self.cols_line
        close = amount_to_gap(positions[:, up], positions[:, low], -field_w[0, up], -field_w[0, low],
                              self.line.rest_gap)
        # never past the jaw's rest: the field is per mm of vertical opening, so that is the most to take back
        close = float(strength) * gate * np.clip(close, 0.0, np.maximum(self.vertical_gap_mm(positions), 0.0))
        opening = opening - close
        positions = positions - close[:, None, None] * field_w
        seal_w = self.seal.field[w][None].astype(np.float64)
        needed = np.zeros(n)
        for cols, rest_gap in ((self.cols_line, self.line.rest_gap), (self.cols_edge, self.seal.contact.rest_gap)):
            up, low = cols
            needed = np.maximum(needed, amount_to_gap(positions[:, up], positions[:, low], seal_w[0, up], seal_w[0, low],
                                                      rest_gap))
        seal = float(strength) * gate * np.clip(needed, 0.0, MAX_SEAL_M)
        if bilabial_probability is not None and not covered.all():  # the phonetic head where no phones are trusted
            edges = positions[:, self.cols_edge[0] + self.cols_edge[1]]
            seal = seal + (~covered) * self.seal.amounts(edges, bilabial_probability, strength)
        info = {**prediction.info, "phones": timing.source if timing is not None else "none",
                "phone_coverage": round(timing.coverage, 3) if timing is not None else 0.0, "lip_seal": strength}
        if prediction.basis is not None:
            return replace(prediction, mean=np.zeros_like(mean),
                           basis=np.concatenate([basis, mean[None], self.open_field[None], self.seal.field[None]]),
                           coefficients=np.concatenate([prediction.coefficients * keep[:, None], keep[:, None],
                                                        opening[:, None], seal[:, None]], axis=1).astype(np.float32),
                           info=info)
        offsets = offsets * keep[:, None, None]
        offsets += opening[:, None, None].astype(np.float32) * self.open_field[None]
        offsets += seal[:, None, None].astype(np.float32) * self.seal.field[None]
        return replace(prediction, offsets=offsets, info=info)


def bilabial_probability(prediction) -> np.ndarray | None:
    """(T,) the phonetic head's summed /p b m/ posterior, or None for a model without one."""
    if prediction.phone_probabilities is None:
        return None
    return prediction.phone_probabilities[:, _BILABIAL_CLASSES].sum(axis=1)
