"""Adapting a model to a new actor from a short reference clip (Imitator + MetaFace).

Stage 1 (Imitator): the viseme features of the reference audio are computed once (they do not
depend on style); only the speaking-style embedding is optimised. Stage 2 (MetaFace): low-rank
(LoRA) updates of the deformation basis refine how that actor's face moves, instead of the full
basis. Both minimise vertex MSE + velocity, and stop early on a held-back tail of the clip. A
meta-learned start (Reptile across the training speakers, `python -m core train` with "meta")
makes both converge in few steps; it is stored in the model folder as `adaptation.safetensors`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .audio import SAMPLE_RATE, check_speech
from .encoders import resample_features
from .errors import Cancelled, ModelError, TalkingHeadError
from .models.base import CancelCheck, ProgressCallback
from .styles import Style, model_fingerprint

META_FILE = "adaptation.safetensors"
MIN_REFERENCE_S = 2.0


# a speaking face moves its lips by millimetres (standard deviation over a clip, at the most-moving
# vertex, about 2-4 mm); below this the "reference" is a still head or capture noise
MIN_REFERENCE_MOVEMENT_MM = 0.3


class ReferenceError(TalkingHeadError):
    """The reference clip cannot be used for adaptation."""


@dataclass
class ReferenceClip:
    """A reference performance: audio and FLAME offsets from the template in the canonical frame,
    at the model's frame rate."""

    audio: np.ndarray  # 16 kHz mono
    offsets: np.ndarray  # (T, V, 3) metres
    fps: float


@dataclass
class AdaptOptions:
    rank: int = 4  # LoRA rank of the basis update
    stage1_steps: int = 150
    stage2_steps: int = 200
    lr_style: float = 3e-2
    # small: at 3e-3 a few LoRA steps that helped the held-back second made the actor's other
    # sentences 7-11% worse with the default model (BENCHMARKS.md, style adaptation)
    lr_lora: float = 3e-4
    lr_full: float = 9e-4  # the full-basis baseline's rate
    weight_velocity: float = 10.0
    held_back: float = 0.2  # tail share of the clip used for early stopping
    patience: int = 25
    stage2: str = "lora"  # "lora", "none" (stage 1 only) or "full" (fine-tune the whole basis: a baseline)
    # start from the meta-learned initialisation when the model has one; off by default because on
    # the synthetic test speakers it converged to a worse fit than the plain start (BENCHMARKS.md)
    use_meta: bool = False
    seed: int = 0


def make_reference(audio: np.ndarray, vertices: np.ndarray, template: np.ndarray, triangles: np.ndarray | None,
                   fps: float, model_fps: float) -> ReferenceClip:
    """Check a reference (audio, absolute vertices (T, V, 3) at `fps`) and bring it to the model's
    frame and rate. Short, silent, foreign-topology or out-of-sync clips are refused clearly."""
    from .flame import N_VERTICES, check_topology
    from .head_frame import IDENTITY_FRAME, estimate_head_frame
    from .timing import check_fps, resample_frames

    duration = len(audio) / SAMPLE_RATE
    if duration < MIN_REFERENCE_S:
        raise ReferenceError(f"The reference audio lasts {duration:.1f} s; adaptation needs at least "
                             f"{MIN_REFERENCE_S:.0f} s of speech (5 s or more works best).")
    check_speech(audio)
    vertices = np.asarray(vertices, dtype=np.float32)
    if vertices.ndim == 2 and vertices.shape[1] == N_VERTICES * 3:
        vertices = vertices.reshape(len(vertices), -1, 3)
    if vertices.ndim != 3 or vertices.shape[1:] != (len(template), 3):
        raise ReferenceError(f"The reference motion has shape {vertices.shape}; expected frames x {len(template)} x 3 "
                             "vertices of the same FLAME-topology mesh as the template.")
    check_topology(len(template), triangles)
    check_fps(fps, "--fps of the reference motion", ReferenceError)
    if not np.all(np.isfinite(vertices)):
        raise ReferenceError("The reference motion holds NaN or infinite positions; export it again.")
    motion_s = len(vertices) / fps
    if abs(motion_s - duration) > max(0.25, 0.05 * duration):
        raise ReferenceError(f"The motion lasts {motion_s:.2f} s ({len(vertices)} frames at {fps:g} fps) but the audio "
                             f"{duration:.2f} s: they are out of sync. Check the frame rate or trim them to match.")
    frame = estimate_head_frame(template, triangles) if triangles is not None else IDENTITY_FRAME
    offsets = frame.points_to_canonical(vertices - template[None])
    movement_mm = 1000.0 * float(offsets.std(axis=0).max()) if len(offsets) else 0.0
    if movement_mm < MIN_REFERENCE_MOVEMENT_MM:
        raise ReferenceError(f"The reference face barely moves (no vertex varies by more than {movement_mm:.2f} mm over "
                             "the clip): there is no speaking style to learn from it. Give the actor's animated motion "
                             "while they speak, not a still head.")
    return ReferenceClip(np.asarray(audio, dtype=np.float32), resample_frames(offsets, fps, model_fps, duration),
                         model_fps)


def _meta_init(model) -> dict[str, torch.Tensor] | None:
    folder = getattr(model, "folder", None)
    path = os.path.join(folder, META_FILE) if folder else None
    if path and os.path.isfile(path):
        from safetensors.torch import load_file

        return load_file(path)
    return None


def initial_parameters(model, rank: int, use_meta: bool, seed: int) -> dict[str, torch.Tensor]:
    """Where adaptation starts: the meta-learned start, else the average training style and a
    small random LoRA A with B = 0 (the update starts at zero either way)."""
    meta = _meta_init(model) if use_meta else None
    if meta is not None and meta["basis_lora_a"].shape[0] == rank:
        return {k: v.clone().float() for k, v in meta.items()}
    generator = torch.Generator().manual_seed(seed)
    n_basis = model.deformation_basis.weight.shape[1]
    return {
        "style": model.style_embedding.weight.detach().mean(dim=1).clone(),
        "basis_lora_a": torch.randn(rank, n_basis, generator=generator) / np.sqrt(n_basis),
        "basis_lora_b": torch.zeros(model.deformation_basis.weight.shape[0], rank),
    }


class _Adapter:
    """Differentiable offsets for precomputed viseme features under adaptable parameters."""

    def __init__(self, model, visemes: torch.Tensor, target_mm: torch.Tensor, split: int, weight_velocity: float):
        self.model, self.visemes, self.target, self.split = model, visemes, target_mm, split
        self.weight_velocity = weight_velocity

    def offsets_mm(self, params: dict[str, torch.Tensor], full_basis: torch.Tensor | None = None) -> torch.Tensor:
        coefficients = self.model.coefficients(self.visemes, params["style"])
        weight = full_basis if full_basis is not None else self.model.deformation_basis.weight
        if "basis_lora_b" in params:
            weight = weight + params["basis_lora_b"] @ params["basis_lora_a"]
        out = torch.nn.functional.linear(coefficients, weight, self.model.deformation_basis.bias)
        return out.reshape(len(coefficients), -1, 3) * 1000.0

    def losses(self, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss on the head of the clip, held-back loss on its tail)."""
        def loss(p, t):
            velocity = ((p[1:] - p[:-1]) - (t[1:] - t[:-1])).pow(2).mean() if len(p) > 1 else p.sum() * 0
            return (p - t).pow(2).mean() + self.weight_velocity * velocity
        s = self.split
        return loss(pred[:s], self.target[:s]), loss(pred[s:], self.target[s:])


def _optimise(adapter: _Adapter, params: dict, trainable: list[str], steps: int, lr: float, patience: int,
              report, should_cancel, stage: str, full_basis: torch.Tensor | None = None) -> tuple[dict, float, int]:
    """Adam on `trainable`; returns the parameters with the best held-back loss."""
    for key in params:
        params[key].requires_grad_(key in trainable)
    leaves = [params[k] for k in trainable] + ([full_basis] if full_basis is not None else [])
    optimiser = torch.optim.Adam(leaves, lr=lr)
    best, best_loss, since, used = {k: v.detach().clone() for k, v in params.items()}, float("inf"), 0, 0
    best_basis = full_basis.detach().clone() if full_basis is not None else None
    for step in range(steps):
        if should_cancel and should_cancel():
            raise Cancelled("Adaptation cancelled; no style was written.")
        train_loss, held_loss = adapter.losses(adapter.offsets_mm(params, full_basis))
        if held_loss.item() < best_loss - 1e-6:
            best_loss, since = held_loss.item(), 0
            best = {k: v.detach().clone() for k, v in params.items()}
            if full_basis is not None:
                best_basis = full_basis.detach().clone()
        else:
            since += 1
            if since >= patience:
                break
        optimiser.zero_grad()
        train_loss.backward()
        optimiser.step()
        used = step + 1
        report(step / steps, f"{stage}: step {step + 1}, held-back error {held_loss.item():.3f} mm²")
    if full_basis is not None:
        full_basis.data.copy_(best_basis)
    return best, best_loss, used


def adapt_style(model, reference: ReferenceClip, name: str, options: AdaptOptions | None = None,
                progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None) -> Style:
    """A style for `model` that reproduces the reference actor's motion."""
    from .styles import check_style_name

    options = options or AdaptOptions()
    check_style_name(name)
    if not hasattr(model, "style_embedding") or not hasattr(model, "deformation_basis"):
        raise ModelError(f"Model '{model.name}' does not support style adaptation; pick an Imitator-type model.")
    report = progress or (lambda fraction, message: None)
    started = time.time()
    torch.manual_seed(options.seed)
    device = next(model.parameters()).device
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    n_frames = len(reference.offsets)
    split = int(round(n_frames * (1 - options.held_back)))
    if split < 15 or n_frames - split < 8:
        raise ReferenceError("The reference is too short to hold part of it back; use at least 2 s.")
    report(0.0, "Encoding the reference speech")
    with torch.no_grad():  # stage 1 needs these once: they do not depend on style
        features = resample_features(model.encoder.encode(reference.audio, device), n_frames).unsqueeze(0)
        visemes = model.viseme_features(features)[0]
    target = torch.from_numpy(reference.offsets).to(device) * 1000.0
    adapter = _Adapter(model, visemes, target, split, options.weight_velocity)
    params = {k: v.to(device) for k, v in initial_parameters(model, options.rank, options.use_meta, options.seed).items()}
    with torch.no_grad():
        before = adapter.losses(adapter.offsets_mm({"style": model.style_embedding.weight.mean(dim=1)}))[1].item()

    def stage_report(lo: float, hi: float):
        return lambda f, m: report(lo + (hi - lo) * f, m)

    lora_keys = ["basis_lora_a", "basis_lora_b"]
    stage1 = {"style": params["style"]} if options.stage2 == "full" else params
    params, after1, steps1 = _optimise(adapter, stage1, ["style"], options.stage1_steps, options.lr_style,
                                       options.patience, stage_report(0.05, 0.5), should_cancel, "Stage 1 (style)")
    tensors = {"style": params["style"]}
    steps2, final = 0, after1
    if options.stage2 == "lora":
        params, final, steps2 = _optimise(adapter, params, ["style"] + lora_keys, options.stage2_steps,
                                          options.lr_lora, options.patience, stage_report(0.5, 0.98), should_cancel,
                                          "Stage 2 (low-rank basis)")
        tensors = params
    elif options.stage2 == "full":
        full = model.deformation_basis.weight.detach().clone().requires_grad_(True)
        params, final, steps2 = _optimise(adapter, params, ["style"], options.stage2_steps, options.lr_full,
                                          options.patience, stage_report(0.5, 0.98), should_cancel,
                                          "Stage 2 (full basis)", full_basis=full)
        # a full fine-tune is a baseline for measurements; as a style it is stored as its exact difference
        delta = (full.detach() - model.deformation_basis.weight).cpu()
        tensors = {"style": params["style"], "basis_delta": delta}
    elif options.stage2 != "none":
        raise ModelError(f"Unknown adaptation stage 2 '{options.stage2}'; use lora, none or full.")
    report(1.0, "Done")
    return Style(
        name=name, base_model=model.config.get("name", model.name), base_fingerprint=model_fingerprint(model),
        tensors={k: v.detach().cpu().numpy().astype(np.float32) for k, v in tensors.items()},
        info={"reference_seconds": round(len(reference.audio) / SAMPLE_RATE, 2), "options": asdict(options),
              "held_back_error_mm2": {"unadapted": before, "stage1": after1, "final": final},
              "steps": {"stage1": steps1, "stage2": steps2}, "seconds": round(time.time() - started, 2),
              "meta_start": bool(options.use_meta and _meta_init(model) is not None)},
    )


def read_motion(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(frames (T, V, 3), triangles or None) from a .npy (T x V x 3 or T x 3V), a .pc2, or a
    folder of .ply/.obj frames in name order."""
    from .errors import TopologyError
    from .mesh_io import read_mesh, read_npy, read_pc2

    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith((".ply", ".obj")))
        if not names:
            raise ReferenceError(f"{path} holds no .ply or .obj frames.")
        frames, triangles = [], None
        for name in names:
            vertices, faces = read_mesh(os.path.join(path, name))
            frames.append(vertices)
            triangles = faces if triangles is None else triangles
        if len({f.shape for f in frames}) != 1:
            raise ReferenceError(f"The frames in {path} do not all have the same vertex count.")
        return np.stack(frames).astype(np.float32), triangles
    if not os.path.isfile(path):
        raise ReferenceError(f"Reference motion not found: {path}")
    lower = path.lower()
    try:
        if lower.endswith(".npy"):
            frames = read_npy(path, "motion")
            if frames.ndim == 2 and frames.shape[1] % 3 == 0:
                frames = frames.reshape(len(frames), -1, 3)
            return frames.astype(np.float32), None
        if lower.endswith(".pc2"):
            return read_pc2(path)[0].astype(np.float32), None
    except TopologyError as exc:
        raise ReferenceError(f"Reference motion: {exc}") from None
    raise ReferenceError(f"Unsupported reference motion {path}: use .npy, .pc2 or a folder of .ply/.obj frames.")


def load_reference_files(audio_path: str, motion_path: str, template_path: str, fps: float,
                         model_fps: float) -> ReferenceClip:
    """A reference from files: audio, motion sequence and the actor's neutral FLAME mesh."""
    from .audio import load_audio
    from .flame import load_flame_mesh

    template, triangles = load_flame_mesh(template_path)
    frames, frame_triangles = read_motion(motion_path)
    if frame_triangles is not None and triangles is not None and not np.array_equal(frame_triangles, triangles):
        raise ReferenceError("The reference frames and the template have different triangles; use one FLAME mesh.")
    return make_reference(load_audio(audio_path), frames, template, triangles, fps, model_fps)


def load_video_reference(video_path: str, audio_path: str | None, template_path: str, model_fps: float,
                         first_frame: int = 0, last_frame: int | None = None,
                         progress: ProgressCallback | None = None,
                         should_cancel: CancelCheck | None = None, landmarks: str | None = None) -> ReferenceClip:
    """A reference from a video file of the actor speaking and their FLAME head as a file."""
    from .errors import TopologyError
    from .flame import load_flame_mesh

    template, triangles = load_flame_mesh(template_path)
    if triangles is None:
        raise TopologyError(f"{template_path} has no triangles; adapting from video needs the actor's head as .ply or "
                            ".obj (the landmarks sit on its triangles).")
    return video_reference(video_path, audio_path, template, triangles, model_fps, first_frame, last_frame,
                           progress, should_cancel, landmarks)


def video_reference(video_path: str, audio_path: str | None, template: np.ndarray, triangles: np.ndarray,
                    model_fps: float, first_frame: int = 0, last_frame: int | None = None,
                    progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None,
                    landmarks: str | None = None) -> ReferenceClip:
    """A reference from a video of the actor speaking: the face tracked frame by frame and carried
    over to the actor's FLAME head (core.video_motion), the sound from the video unless given.
    Frames `first_frame`..`last_frame` (0-based, inclusive) of the video are used; `landmarks` is the
    MediaPipe-to-FLAME embedding (default: core.video_motion.embedding_path). Then the actor's head
    is rendered in known poses and tracked, so the fit knows how the tracker sees it
    (core.video_calibration)."""
    from .audio import load_audio
    from .face_tracking import track_faces
    from .head_frame import estimate_head_frame
    from .video import probe_video, video_audio, video_frames
    from .video_calibration import calibrate_fit
    from .video_motion import LandmarkFit

    report = progress or (lambda fraction, message: None)
    frame = estimate_head_frame(template, triangles)
    canonical = frame.points_to_canonical(template)
    fit = LandmarkFit(canonical, triangles, landmarks)  # a missing embedding is refused before the video is read
    info = probe_video(video_path)  # refuses missing, foreign or variable-rate files before any tracking
    first = max(0, int(first_frame))
    last = info.n_frames - 1 if last_frame is None else min(int(last_frame), info.n_frames - 1)
    n_frames = last - first + 1
    if n_frames / info.fps < MIN_REFERENCE_S:
        raise ReferenceError(f"The video reference lasts {max(n_frames, 0) / info.fps:.1f} s; adaptation needs at least "
                             f"{MIN_REFERENCE_S:.0f} s of the actor speaking (5 s or more works best).")
    start_s = first / info.fps
    if audio_path:
        audio = load_audio(audio_path, start_s, n_frames / info.fps)
    else:
        if not info.has_audio:
            raise ReferenceError(f"{video_path} has no sound track; give the speech as an audio file (--audio).")
        audio = check_speech(video_audio(video_path, start_s, n_frames / info.fps), f"The sound of {video_path}")
    # read frame to frame and each frame afresh, as the calibration renders are: averaged, the two
    # readings left 0.74 mm of lip error on the validation speakers, either alone 0.82-0.83
    views = track_faces(video_frames(video_path, first, last), n_frames, info.fps, os.path.basename(video_path),
                        lambda f, m: report(0.5 * f, m), should_cancel, static_modes=(False, True))
    # after the video, so a clip without one clear face is refused before this half minute of work
    calibrate_fit(fit, triangles, landmarks, lambda f, m: report(0.5 + 0.4 * f, m), should_cancel)
    report(0.9, "Carrying the face's movement over to the head")
    motion = fit.motion(*views)
    vertices = template[None] + frame.offsets_to_local(motion - canonical[None])
    report(1.0, "Tracked")
    return make_reference(audio, vertices, template, triangles, info.fps, model_fps)


@dataclass
class MetaOptions:
    """Reptile (Nichol et al. 2018) over training speakers: the start from which a few adaptation
    steps fit a speaker best (MetaFace's meta-learned initialisation)."""

    steps: int = 0  # 0: no meta-learning
    inner_style_steps: int = 15
    inner_lora_steps: int = 15
    inner_lora_lr: float = 3e-3  # few inner steps, so a larger rate than adaptation's own
    outer_lr: float = 0.2  # Reptile step towards the adapted parameters, decaying linearly to 0
    rank: int = 4
    clips_per_speaker: int = 6


def _inner_adapt(model, params: dict, visemes: torch.Tensor, target_mm: torch.Tensor, options: MetaOptions,
                 adapt_options: AdaptOptions) -> dict:
    adapter = _Adapter(model, visemes, target_mm, len(target_mm), adapt_options.weight_velocity)
    params = {k: v.detach().clone() for k, v in params.items()}
    for keys, steps, lr in ((["style"], options.inner_style_steps, adapt_options.lr_style),
                            (["style", "basis_lora_a", "basis_lora_b"], options.inner_lora_steps, options.inner_lora_lr)):
        for key in params:
            params[key].requires_grad_(key in keys)
        optimiser = torch.optim.Adam([params[k] for k in keys], lr=lr)
        for _ in range(steps):
            loss, _ = adapter.losses(adapter.offsets_mm(params))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return {k: v.detach() for k, v in params.items()}


def meta_train(model, examples: list[tuple[str, torch.Tensor, torch.Tensor]], options: MetaOptions, seed: int = 0,
               log=print) -> dict[str, torch.Tensor]:
    """Reptile over `examples` (speaker, viseme features (T, d), target offsets in mm (T, V, 3)):
    each step adapts a copy of the start to one clip of one speaker and moves the start towards it."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    rng = np.random.default_rng(seed)
    start = initial_parameters(model, options.rank, use_meta=False, seed=seed)
    speakers = sorted({s for s, _, _ in examples})
    by_speaker = {s: [e for e in examples if e[0] == s] for s in speakers}
    adapt_options = AdaptOptions(rank=options.rank)
    started = time.time()
    for step in range(options.steps):
        speaker = speakers[int(rng.integers(len(speakers)))]
        _, visemes, target = by_speaker[speaker][int(rng.integers(len(by_speaker[speaker])))]
        adapted = _inner_adapt(model, start, visemes, target, options, adapt_options)
        epsilon = options.outer_lr * (1 - step / options.steps)
        start = {k: v + epsilon * (adapted[k] - v) for k, v in start.items()}
        if (step + 1) % 50 == 0 or step + 1 == options.steps:
            log(f"meta step {step + 1}/{options.steps} ({(time.time() - started) / (step + 1):.2f} s/step)")
    return {k: v.contiguous() for k, v in start.items()}


def save_meta_init(folder: str, start: dict[str, torch.Tensor]) -> str:
    from safetensors.torch import save_file

    path = os.path.join(folder, META_FILE)
    save_file({k: v.detach().cpu().contiguous() for k, v in start.items()}, path)
    return path
