"""`python -m core evaluate`: the field's measures (METHODS.md) plus lip closure and opening.

    python -m core evaluate --data DIR --split test --model MODEL [--masks FLAME_masks.pkl]
    python -m core evaluate --audio-only DIR [DIR ...] [--transcripts FILE] --model MODEL [--template HEAD.ply]

LVE: per frame, the largest squared error over the `lips` vertices, averaged over frames (m^2,
printed x1e-5). MVE: mean Euclidean error over all vertices (mm). FDD: per upper-face vertex
(forehead + eye_region), std over time of ||v_t - template||^2, ground truth minus prediction,
averaged (x1e-7). Closure rate: share of /p b m/ whose predicted inner-lip gap falls under 1 mm
within 60 ms of the consonant. Tongue-stop closure rate: the same at /t d k g n ng/ away from any
bilabial, where lips should stay apart: a model that closes the lips at every stop scores a high
closure rate and a high tongue-stop rate, so the pair says whether closure is specific to /p b m/.
Open-vowel gap: mean of the largest gap during each open vowel.

Seal rate (the stricter measure, core.lips): share of /p b m/ where the smallest 3D distance
between the upper and lower lip edges near the midline comes back within 0.5 mm of the
template's within 60 ms of the consonant; the vertical-gap closure rate above passes lips still
1.5-2.4 mm apart. Reported with its tongue-stop twin and the opening over rest at open vowels.

The visible lip line (LineTally, `line_*`; the measure the lip-seal issue judges by): the smallest
3D distance between FLAME's upper- and lower-lip line vertices over its rest, sealed at 0.5 mm or
less from 2 frames before a phone to 3 after; aperture over mouth width at the 95th and 99th
percentile of speech frames; rest in pauses of 0.5 s or more. `--phones none|whisper|given` says
where the phone layer's phones come from (none: the model's phonetic head alone).
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

from .corpus.articulation import BILABIALS, OPEN_VOWELS, FaceRig
from .lips import LipContact, seal_rate
from .phones import phone_name, silences

CLOSED_MM = 1.0
WINDOW_S = 0.06


def load_masks(path: str) -> dict[str, np.ndarray]:
    from .errors import TalkingHeadError
    from .safe_pickle import load_arrays_pickle

    masks = load_arrays_pickle(path, "FLAME region masks")
    if not isinstance(masks, dict):
        raise TalkingHeadError(f"{path} should map region names to vertex indices; it holds a {type(masks).__name__}.")
    return {k: np.unique(np.asarray(v, dtype=np.int64)) for k, v in masks.items()}


def lve(pred: np.ndarray, truth: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Per-frame max squared lip-vertex error (T,), metres squared."""
    return ((pred[:, lips] - truth[:, lips]) ** 2).sum(-1).max(-1)


def fdd(pred: np.ndarray, truth: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    motion_truth = ((truth[:, upper] - template[upper]) ** 2).sum(-1).std(0)
    motion_pred = ((pred[:, upper] - template[upper]) ** 2).sum(-1).std(0)
    return float(np.mean(motion_truth - motion_pred))


def _smallest_gap_near(gap_mm: np.ndarray, times: np.ndarray, start: float, end: float) -> float | None:
    """The smallest gap within 60 ms of a phone (None where no frame falls there), in mm."""
    near = (times >= start - WINDOW_S) & (times <= end + WINDOW_S)
    return float(gap_mm[near].min()) if near.any() else None


def lip_events(gap_mm: np.ndarray, phones, fps: float = 30.0) -> tuple[list[float], list[float]]:
    """The smallest gap within 60 ms of each bilabial, and the largest gap during each open vowel (mm)."""
    times = np.arange(len(gap_mm)) / fps
    bilabial_gaps, openings = [], []
    for phone, start, end in phones:
        label = phone_name(phone)
        if label in BILABIALS:
            smallest = _smallest_gap_near(gap_mm, times, start, end)
            if smallest is not None:
                bilabial_gaps.append(smallest)
        elif label in OPEN_VOWELS:
            inside = (times >= start) & (times <= end)
            if inside.any():
                openings.append(float(gap_mm[inside].max()))
    return bilabial_gaps, openings


# stops and nasals made with the tongue, not the lips: a mouth that closes at these is mumbling, so
# closing at them tells how much of a closure rate is specific to /p b m/
TONGUE_STOPS = ("T", "D", "K", "G", "N", "NG")


def tongue_stop_gaps(gap_mm: np.ndarray, phones, fps: float = 30.0) -> list[float]:
    """The smallest gap within 60 ms of each /t d k g n ng/ whose window does not touch a bilabial's
    (so the lips have no bilabial reason to close there), in mm."""
    times = np.arange(len(gap_mm)) / fps
    labels = [(phone_name(phone), start, end) for phone, start, end in phones]
    bilabials = [(start, end) for label, start, end in labels if label in BILABIALS]
    gaps = []
    for label, start, end in labels:
        if label not in TONGUE_STOPS or any(b_start - 2 * WINDOW_S < end and b_end + 2 * WINDOW_S > start
                                            for b_start, b_end in bilabials):
            continue
        smallest = _smallest_gap_near(gap_mm, times, start, end)
        if smallest is not None:
            gaps.append(smallest)
    return gaps


def closure_rate(bilabial_gaps: list[float]) -> float | None:
    return float(np.mean(np.array(bilabial_gaps) < CLOSED_MM)) if bilabial_gaps else None


def evaluate_dataset(model, data: str, split: str, masks_path: str, triangles: np.ndarray, log=print,
                     emotion: str | None = None, conditioning=None, phones: str = "none") -> dict:
    """`conditioning` (default: the model's default style) is used for every clip, with each
    clip's emotion and intensity for models with emotion control."""
    import dataclasses

    from .data import load_clips
    from .audio import load_audio
    from .models import Conditioning
    from .pipeline import predict_motion

    masks = load_masks(masks_path)
    lips = masks["lips"]
    upper = np.union1d(masks["forehead"], masks["eye_region"])
    lve_frames, mve, fdds, bilabial_gaps, openings = [], [], [], [], []
    truth_gaps, tongue_gaps, truth_tongue_gaps = [], [], []
    seal, line, line_truth = SealTally(), LineTally(), LineTally()
    rigs: dict[str, FaceRig] = {}
    contacts: dict[str, LipContact] = {}
    for clip in load_clips(data, split):
        if emotion is not None and clip.emotion != emotion:
            continue
        truth = clip.vertices()
        audio = load_audio(clip.wav_path)
        # a model with emotion control is told each clip's emotion, as an animator would ask for it
        told = dataclasses.replace(conditioning or Conditioning(),
                                   speech=clip_speech(audio, phones, phones=clip.phones if phones == "given" else None))
        if model.emotion_control:
            told = dataclasses.replace(told, emotion=clip.emotion, intensity=clip.intensity)
        pred = clip.template + predict_motion(model, audio, clip.template, triangles, told,
                                              layer=phones != "off").vertex_offsets()
        n = min(len(pred), len(truth))
        pred, truth = pred[:n], truth[:n]
        lve_frames.append(lve(pred, truth, lips))
        mve.append(np.linalg.norm(pred - truth, axis=2).mean())
        fdds.append(fdd(pred, truth, clip.template, upper))
        if clip.phones:
            rig = rigs.setdefault(clip.subject, FaceRig(clip.template, triangles))
            gap = rig.lip_gap(pred) * 1000
            gaps, opened = lip_events(gap, clip.phones)
            bilabial_gaps += gaps
            openings += opened
            tongue_gaps += tongue_stop_gaps(gap, clip.phones)
            truth_gap = rig.lip_gap(truth) * 1000
            truth_gaps += lip_events(truth_gap, clip.phones)[0]
            truth_tongue_gaps += tongue_stop_gaps(truth_gap, clip.phones)
            contact = contacts.setdefault(clip.subject, LipContact(clip.template, triangles, rig.sides))
            seal.add(contact.excess_mm(pred), clip.phones, truth=contact.excess_mm(truth))
            line.add(pred, clip.template, clip.phones)
            line_truth.add(truth, clip.template, clip.phones)
    return {
        "clips": len(mve),
        "LVE_x1e-5": float(np.mean(np.concatenate(lve_frames)) * 1e5),
        "MVE_mm": float(np.mean(mve) * 1000),
        "FDD_x1e-7": float(np.mean(fdds) * 1e7),
        "closure_rate": closure_rate(bilabial_gaps),
        "closure_rate_ground_truth": closure_rate(truth_gaps),
        "closure_rate_tongue_stops": closure_rate(tongue_gaps),
        "closure_rate_tongue_stops_ground_truth": closure_rate(truth_tongue_gaps),
        "open_vowel_gap_mm": float(np.mean(openings)) if openings else None,
        **seal.summary(),
        **line.summary(),
        **{f"{key}_ground_truth": value for key, value in line_truth.summary().items()
           if key in ("line_seal_rate", "line_seal_rate_tongue_stops", "aperture_p95", "line_open_vowel_mm")},
    }


def clip_speech(audio: np.ndarray, source: str, transcript: str | None = None, phones=None):
    """The SpeechTiming a clip is animated with: none (the model's phonetic head alone), whisper
    (transcribed), or given (the clip's transcript aligned; or its known phones, for a corpus)."""
    from .speech import SpeechTiming, speech_timing

    if source in ("none", "off"):
        return None
    if source == "whisper":
        return speech_timing(audio)
    if phones is not None:
        duration = len(audio) / 16000
        return SpeechTiming(duration_s=duration, phones=[(str(p), float(a), float(b)) for p, a, b in phones],
                            covered=[(0.0, duration)], source="given")
    return speech_timing(audio, transcript or "")


class SealTally:
    """Seal events over clips: the smallest edge gap over rest (core.lips) near each bilabial and
    tongue stop, and the largest during each open vowel, for a prediction and its ground truth."""

    def __init__(self):
        self.bilabials, self.tongue_stops, self.openings = [], [], []
        self.truth_bilabials, self.truth_tongue_stops = [], []

    def add(self, excess_mm: np.ndarray, phones, truth: np.ndarray | None = None) -> list[float]:
        """Tally one clip's (T,) excess gap; returns its bilabial events."""
        bilabials, openings = lip_events(excess_mm, phones)
        self.bilabials += bilabials
        self.openings += openings
        self.tongue_stops += tongue_stop_gaps(excess_mm, phones)
        if truth is not None:
            self.truth_bilabials += lip_events(truth, phones)[0]
            self.truth_tongue_stops += tongue_stop_gaps(truth, phones)
        return bilabials

    def summary(self) -> dict:
        out = {
            "seal_rate": seal_rate(self.bilabials),
            "seal_rate_tongue_stops": seal_rate(self.tongue_stops),
            "bilabial_seal_gap_median_mm": float(np.median(self.bilabials)) if self.bilabials else None,
            "open_vowel_over_rest_mm": float(np.mean(self.openings)) if self.openings else None,
        }
        if self.truth_bilabials:
            out["seal_rate_ground_truth"] = seal_rate(self.truth_bilabials)
            out["seal_rate_tongue_stops_ground_truth"] = seal_rate(self.truth_tongue_stops)
        return out


# ---- the visible lip line (the lip-seal issue's measure) -------------------------------------------
LINE_BEFORE_FRAMES, LINE_AFTER_FRAMES = 2, 3  # a phone's seal window at 30 fps
TONGUE_STOP_CLEARANCE_S = 0.25  # tongue stops this close to a bilabial are not counted
PAUSE_MIN_S, PAUSE_TRIM_FRAMES = 0.5, 4


def _phone_window(excess_mm: np.ndarray, start: float, end: float, fps: float) -> float | None:
    first = int(np.floor(start * fps)) - LINE_BEFORE_FRAMES
    last = int(np.ceil(end * fps)) - 1 + LINE_AFTER_FRAMES
    window = excess_mm[max(first, 0): max(last + 1, 0)]
    return float(window.min()) if len(window) else None


class LineTally:
    """Seal, opening and rest on the visible lip line (core.lips.LipLine), over clips with phones:
    a /p b m/ is sealed when the line comes within 0.5 mm of its rest from 2 frames before the
    phone to 3 after; tongue stops (0.25 s or more from any bilabial) the same; aperture over width
    at the 95th and 99th percentile of the frames inside speech phones; open vowels' largest
    opening; in pauses of 0.5 s or more (4 frames trimmed each end) the lip gap and the largest
    vertex offset from the template."""

    def __init__(self):
        self.bilabials, self.tongue_stops, self.open_vowels = [], [], []
        self.apertures, self.pause_gaps, self.pause_offsets = [], [], []

    def add(self, vertices: np.ndarray, template: np.ndarray, phones, fps: float = 30.0, line=None) -> dict:
        from .lips import LipLine

        line = line or LipLine(template)
        excess = line.excess_mm(vertices)
        times = np.arange(len(excess)) / fps
        labels = [(phone_name(p), a, b) for p, a, b in phones]
        bilabial_spans = [(a, b) for p, a, b in labels if p in BILABIALS]
        bilabials = [g for p, a, b in labels if p in BILABIALS for g in [_phone_window(excess, a, b, fps)] if g is not None]
        stops = [g for p, a, b in labels if p in TONGUE_STOPS and not any(
            ba - TONGUE_STOP_CLEARANCE_S < b and bb + TONGUE_STOP_CLEARANCE_S > a for ba, bb in bilabial_spans)
            for g in [_phone_window(excess, a, b, fps)] if g is not None]
        speaking = np.zeros(len(excess), dtype=bool)
        for p, a, b in labels:
            if p not in ("SIL", ""):
                speaking |= (times >= a) & (times < b)
                if p in OPEN_VOWELS and ((times >= a) & (times <= b)).any():
                    self.open_vowels.append(float(excess[(times >= a) & (times <= b)].max()))
        self.apertures += list(line.aperture(vertices)[speaking])
        offsets = np.linalg.norm(np.asarray(vertices, dtype=np.float64) - template[None], axis=2).max(axis=1) * 1000
        for a, b in silences(phones, PAUSE_MIN_S):
            inside = (times >= a + PAUSE_TRIM_FRAMES / fps) & (times < b - PAUSE_TRIM_FRAMES / fps)
            if inside.any():
                self.pause_gaps.append(float(np.median(excess[inside])))
                self.pause_offsets.append(float(offsets[inside].max()))
        self.bilabials += bilabials
        self.tongue_stops += stops
        return {"bilabials": len(bilabials), "line_seal_rate": seal_rate(bilabials),
                "line_seal_rate_tongue_stops": seal_rate(stops)}

    def summary(self) -> dict:
        def pct(values, q):
            return float(np.percentile(values, q)) if len(values) else None

        return {
            "line_bilabials": len(self.bilabials),
            "line_seal_rate": seal_rate(self.bilabials),
            "line_tongue_stops": len(self.tongue_stops),
            "line_seal_rate_tongue_stops": seal_rate(self.tongue_stops),
            "aperture_p95": pct(self.apertures, 95),
            "aperture_p99": pct(self.apertures, 99),
            "line_open_vowel_mm": float(np.mean(self.open_vowels)) if self.open_vowels else None,
            "pauses": len(self.pause_gaps),
            "pause_lip_gap_median_mm": pct(self.pause_gaps, 50),
            "pause_face_offset_median_mm": pct(self.pause_offsets, 50),
            "pause_face_offset_max_mm": float(np.max(self.pause_offsets)) if self.pause_offsets else None,
            "pauses_at_rest": float(np.mean(np.array(self.pause_offsets) <= 1.0)) if self.pause_offsets else None,
        }


def read_phone_alignment(path: str) -> list[tuple[str, float, float]]:
    """Phones from a pocketsphinx alignment (.phone.json: words with their phones)."""
    from .errors import AudioError

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return [(str(phone["t"]), float(phone["b"]), float(phone["b"]) + float(phone["d"]))
                for word in data.get("w", []) for phone in word.get("w", [])]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise AudioError(f"Cannot read the phone alignment {path} ({type(exc).__name__}: {exc}); make it again "
                         "(tools/real_speech.py, or pocketsphinx's JSON output) or remove it.") from None


def real_speech_phones(wav: str, transcripts: dict[str, str], audio: np.ndarray | None = None
                       ) -> list[tuple[str, float, float]] | None:
    """A clip's phones: its .phone.json alignment if it has one, else its transcript (keyed by the
    file's stem) force-aligned with pocketsphinx (on `audio` when the caller has read it already);
    None when neither is known."""
    alignment = wav[: -len(".wav")] + ".phone.json"
    if os.path.isfile(alignment):
        return read_phone_alignment(alignment)
    stem = os.path.splitext(os.path.basename(wav))[0]
    if stem not in transcripts:
        return None
    from .align import align_phones
    from .audio import load_audio

    return align_phones(load_audio(wav) if audio is None else audio, transcripts[stem])


def spoken_text(wav: str, transcripts: dict[str, str]) -> str | None:
    """A clip's words: its transcript by stem, its .txt, or its alignment's "t"."""
    stem = wav[: -len(".wav")]
    name = os.path.basename(stem)
    if name in transcripts:
        return transcripts[name]
    if os.path.isfile(stem + ".txt"):
        with open(stem + ".txt", encoding="utf-8") as handle:
            return handle.read().strip()
    if os.path.isfile(stem + ".phone.json"):
        try:
            with open(stem + ".phone.json", encoding="utf-8") as handle:
                return str(json.load(handle).get("t", "")) or None
        except (OSError, ValueError, AttributeError):
            return None
    return None


def evaluate_audio_only(model, folders: str | list[str], template: np.ndarray, triangles: np.ndarray,
                        transcripts: dict[str, str] | None = None, conditioning=None, phones: str = "none") -> dict:
    """Real speech without ground-truth motion: does the mouth close at bilabials and open at open
    vowels? Clips with neither an alignment nor a transcript are listed as skipped."""
    from .audio import load_audio
    from .models import Conditioning
    from .pipeline import predict_motion

    rig = FaceRig(template, triangles)
    contact = LipContact(template, triangles, rig.sides)
    import dataclasses

    seal, line = SealTally(), LineTally()
    openings, bilabial_gaps, tongue_gaps, per_clip, skipped = [], [], [], {}, []
    for folder in [folders] if isinstance(folders, str) else folders:
        for wav in sorted(glob.glob(os.path.join(folder, "*.wav"))):
            audio = load_audio(wav)  # read once: the aligner and the model both need it
            phones_of_clip = real_speech_phones(wav, transcripts or {}, audio)
            name = os.path.join(os.path.basename(os.path.normpath(folder)), os.path.basename(wav))
            if phones_of_clip is None:
                skipped.append(name)
                continue
            told = dataclasses.replace(conditioning or Conditioning(),
                                       speech=clip_speech(audio, phones, transcript=spoken_text(wav, transcripts or {})))
            vertices = template + predict_motion(model, audio, template, triangles, told,
                                                 layer=phones != "off").vertex_offsets()
            line.add(vertices, template, phones_of_clip)
            gap = rig.lip_gap(vertices) * 1000
            gaps, opened = lip_events(gap, phones_of_clip)
            bilabial_gaps += gaps
            openings += opened
            tongue_gaps += tongue_stop_gaps(gap, phones_of_clip)
            seals = seal.add(contact.excess_mm(vertices), phones_of_clip)
            per_clip[name] = {"bilabials": len(gaps), "closure_rate": closure_rate(gaps), "seal_rate": seal_rate(seals),
                              "open_vowel_gap_mm": float(np.mean(opened)) if opened else None}
    return {
        "clips": len(per_clip),
        "bilabials": len(bilabial_gaps),
        "closure_rate": closure_rate(bilabial_gaps),
        "bilabial_min_gap_mm": float(np.mean(bilabial_gaps)) if bilabial_gaps else None,
        "tongue_stops": len(tongue_gaps),
        "closure_rate_tongue_stops": closure_rate(tongue_gaps),
        "open_vowel_gap_mm": float(np.mean(openings)) if openings else None,
        **seal.summary(),
        **line.summary(),
        "skipped (no alignment or transcript)": ", ".join(skipped) or "none",
        "per_clip": per_clip,
    }


def main_evaluate(args) -> int:
    from .device import pick_device
    from .flame import load_flame_mesh
    from .models import load_model

    model = load_model(args.model, pick_device(args.device))
    if args.mode:
        model.config["mode"] = args.mode
    from .models import Conditioning
    from .styles import resolve_style

    # a training style of the model or a style file, as on the other command lines
    conditioning = resolve_style(Conditioning(style=args.style, lip_seal=args.lip_seal).validate(), model, args.styles_dir)
    template, triangles = load_flame_mesh(args.template)
    results = {}
    if args.data:
        results["dataset"] = evaluate_dataset(model, args.data, args.split, args.masks, triangles,
                                              emotion=args.only_emotion, conditioning=conditioning, phones=args.phones)
    if args.audio_only:
        from .align import read_transcripts

        transcripts = read_transcripts(args.transcripts) if args.transcripts else {}
        results["real_speech"] = evaluate_audio_only(model, args.audio_only, template, triangles, transcripts, conditioning,
                                                     phones=args.phones)
    for section, values in results.items():
        print(f"[{section}]")
        for key, value in values.items():
            if key != "per_clip":
                print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0 if results else (print("error: give --data DIR and/or --audio-only DIR", file=sys.stderr) or 2)
