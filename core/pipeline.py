"""The one data path: audio -> model -> offsets in the mesh's frame at the scene's rate.

Every front end (Blender operator, Blender command line, `python -m core animate`) calls
`animate` and writes the SceneMotion it returns; none of them re-implements a step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .audio import SAMPLE_RATE, check_speech
from .basis import pca_basis, reconstruct
from .errors import ModelError
from .flame import check_topology
from .head_frame import IDENTITY_FRAME, estimate_head_frame
from .models import hears_phones, samples_takes
from .models.base import CancelCheck, Conditioning, MotionModel, MotionPrediction, ProgressCallback
from .phones import PHONE_CLASSES
from .timing import frame_count, resample_frames

MAX_TAKES = 16  # more takes than an animator can audition only costs time
# Shape keys whose largest displacement over the clip stays under this are left out (metres)
NEGLIGIBLE_KEY_M = 1e-7


@dataclass
class SceneMotion:
    """Motion in the target mesh's local frame: offsets == mean + coefficients @ basis."""

    fps: float
    duration_s: float
    mean: np.ndarray  # (V, 3)
    basis: np.ndarray  # (K, V, 3)
    coefficients: np.ndarray  # (T, K), frame t at time t / fps after the sound starts
    info: dict

    @property
    def n_frames(self) -> int:
        return int(self.coefficients.shape[0])

    def offsets(self, frames: slice | None = None) -> np.ndarray:
        return reconstruct(self.mean, self.basis, self.coefficients if frames is None else self.coefficients[frames])

    def vertices(self, template: np.ndarray) -> np.ndarray:
        """Absolute positions (T, V, 3) on `template`."""
        out = self.offsets()
        out += template.astype(np.float32)
        return out

    def vertex_blocks(self, template: np.ndarray, size: int = 1024):
        """`vertices` in blocks of at most `size` frames, made as they are asked for: a 10-minute
        take is a GB of positions, a block 60 MB."""
        for start in range(0, self.n_frames, size):
            block = self.offsets(slice(start, start + size))
            block += template.astype(np.float32)
            yield block


def animate(
    audio: np.ndarray,
    template: np.ndarray,
    triangles: np.ndarray | None,
    model: MotionModel,
    conditioning: Conditioning,
    fps: float,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> SceneMotion:
    """Animate `template` (V, 3, the mesh's local frame) speaking `audio` (16 kHz mono) at `fps`."""
    check_speech(audio)
    check_topology(len(template), triangles)
    frame = estimate_head_frame(template, triangles) if triangles is not None else IDENTITY_FRAME
    duration = len(audio) / SAMPLE_RATE

    prediction = predict_motion(model, audio, frame.points_to_canonical(template), triangles, conditioning.validate(),
                                progress, should_cancel)
    if prediction.basis is not None:
        mean, basis, coefficients = prediction.mean, prediction.basis, prediction.coefficients
    else:
        mean, basis, coefficients = pca_basis(prediction.offsets)

    # keep the keys that move something: an animator gets a short, meaningful list
    reach = np.abs(coefficients).max(axis=0) * np.linalg.norm(basis, axis=2).max(axis=1)
    used = reach > NEGLIGIBLE_KEY_M
    basis, coefficients = basis[used], coefficients[:, used]

    return SceneMotion(
        fps=float(fps),
        duration_s=duration,
        mean=frame.offsets_to_local(mean),
        basis=frame.offsets_to_local(basis),
        coefficients=resample_frames(coefficients, prediction.fps, fps, duration).astype(np.float32),
        info={**prediction.info, "frames": frame_count(duration, fps), "head_scale": frame.scale},
    )


BILABIAL_CLASSES = [PHONE_CLASSES.index(p) for p in ("P", "B", "M")]


def lip_seal_strength(model_config: dict, conditioning: Conditioning, can_seal: bool = True,
                      model_name: str = "", has_phones: bool = False) -> float:
    """The seal strength to apply: the animator's, else the model's own ("lip_seal" in its config,
    or full where timed phones say where /p b m/ are); an asked-for seal that cannot be given (no
    phonetic head and no phones, or a template without triangles) is refused before any work, a
    model's own default is then just left off."""
    asked = conditioning.lip_seal
    knows_bilabials = hears_phones(model_config) or has_phones
    default = model_config.get("lip_seal", 0.0) if not has_phones else model_config.get("lip_seal", 1.0) or 1.0
    strength = float(asked if asked is not None else default)
    if strength <= 0:
        return 0.0
    if asked is not None and not knows_bilabials:
        name = model_name or model_config.get("name", "this model")
        raise ModelError(f"Model '{name}' has no phonetic head, so it cannot tell where /p b m/ are to seal the lips; "
                         "give the transcript or let it be transcribed, set Lip Seal to 0, or pick a model that has one "
                         "(the default).")
    if asked is not None and not can_seal:
        raise ModelError("Lip Seal needs the head's triangles to find its lips, and this template has none (a bare .npy "
                         "of positions); give a .ply or .obj template, or set Lip Seal to 0.")
    return strength if knows_bilabials and can_seal else 0.0


_LAYERS: dict = {}  # one phone layer per head and seal gate: building one takes a moment


def phone_layer(template: np.ndarray, triangles: np.ndarray, gate: dict):
    from .lips import SealGate
    from .motion.phone_layer import PhoneLayer

    key = (template.tobytes(), np.asarray(triangles).tobytes(), tuple(sorted(gate.items())))
    if key not in _LAYERS:
        _LAYERS.clear()
        _LAYERS[key] = PhoneLayer(template, triangles, SealGate(**gate))
    return _LAYERS[key]


def predict_motion(model: MotionModel, audio: np.ndarray, template: np.ndarray, triangles: np.ndarray | None,
                   conditioning: Conditioning, progress: ProgressCallback | None = None,
                   should_cancel: CancelCheck | None = None, layer: bool = True) -> MotionPrediction:
    """The model's prediction on `template` (canonical frame), shaped by the phone layer
    (core.motion.phone_layer): the lower face smoothed, rest in pauses, and where the clip's timed
    phones (conditioning.speech) are trusted, openings by the vowel and seals at /p b m/; elsewhere
    the seal field closes the lips where the model's phonetic head hears /p b m/. A template without
    triangles gets the model's motion as it is. Every front end and the evaluation go through here.
    `layer=False` (evaluation only: the figures from before the phone layer) applies just the
    phonetic head's seal field to the model's motion."""
    speech = conditioning.speech
    has_phones = speech is not None and bool(getattr(speech, "covered", None))
    strength = lip_seal_strength(model.config, conditioning, triangles is not None, model.name, has_phones)
    prediction = model.predict(audio, template, conditioning, progress, should_cancel)
    if triangles is None:
        return prediction
    if not layer:
        if strength <= 0 or prediction.phone_probabilities is None:
            return prediction
        from .lips import LipSeal, SealGate

        gate = SealGate(**model.config.get("seal_gate", {}))
        return apply_lip_seal(prediction, template, LipSeal(template, triangles, gate), strength)
    from .motion.phone_layer import bilabial_probability

    layer = phone_layer(np.asarray(template, dtype=np.float64), triangles, model.config.get("seal_gate", {}))
    return layer.apply(prediction, speech, audio, strength, bilabial_probability(prediction))


def apply_lip_seal(prediction: MotionPrediction, template: np.ndarray, seal, strength: float) -> MotionPrediction:
    """`prediction` with the seal field (core.lips.LipSeal) added where its gate lets it act."""
    if prediction.basis is not None:
        edges = template[seal.edges] + prediction.mean[seal.edges] \
            + np.einsum("tk,kvc->tvc", prediction.coefficients, prediction.basis[:, seal.edges])
    else:
        edges = template[seal.edges] + prediction.offsets[:, seal.edges]
    amounts = seal.amounts(edges, prediction.phone_probabilities[:, BILABIAL_CLASSES].sum(axis=1), strength)
    info = {**prediction.info, "lip_seal": strength}
    if prediction.basis is not None:
        return replace(prediction, basis=np.concatenate([prediction.basis, seal.field[None]]),
                       coefficients=np.concatenate([prediction.coefficients, amounts[:, None]], axis=1), info=info)
    return replace(prediction, offsets=prediction.offsets + amounts[:, None, None] * seal.field[None], info=info)


def take_seeds(seed: int, takes: int) -> list[int]:
    """Take k of a run uses seed + k, so any take can be made again on its own from its seed."""
    return [int(seed) + k for k in range(takes)]


def check_sampling(model_config: dict, takes: int, guidance: float | None = None, model_name: str = "") -> None:
    """Refuse a take count or guidance that makes no sense for the model, before any work is done."""
    if not 1 <= int(takes) <= MAX_TAKES:
        raise ModelError(f"Takes must be from 1 to {MAX_TAKES}, got {takes}.")
    name = model_name or model_config.get("name", "this model")
    if takes > 1 and not samples_takes(model_config):
        raise ModelError(f"Model '{name}' gives the same motion for every seed, so {takes} takes would be identical; "
                         "set Takes to 1, or pick a model that samples (a diffusion model; see the README on takes).")
    if guidance is not None and not samples_takes(model_config):
        raise ModelError(f"Model '{name}' does not sample, so guidance does not apply to it; "
                         "leave guidance unset, or pick a model that samples (a diffusion model).")


def animate_takes(
    audio: np.ndarray,
    template: np.ndarray,
    triangles: np.ndarray | None,
    model: MotionModel,
    conditioning: Conditioning,
    fps: float,
    takes: int = 1,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> list[SceneMotion]:
    """`animate` once per take, seeds from `take_seeds(conditioning.seed, takes)`; all or nothing."""
    check_sampling(model.config, takes, conditioning.guidance, model.name)
    report = progress or (lambda fraction, message: None)
    motions = []
    for k, seed in enumerate(take_seeds(conditioning.seed, takes)):
        label = f"Take {k + 1}/{takes} (seed {seed}): " if takes > 1 else ""
        motion = animate(audio, template, triangles, model, replace(conditioning, seed=seed), fps,
                         progress=lambda f, m, k=k, label=label: report((k + f) / takes, label + m),
                         should_cancel=should_cancel)
        motion.info["seed"] = seed
        motions.append(motion)
    return motions
