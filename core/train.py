"""Training on VOCASET-layout data: `python -m core train --data DIR --out RUN_DIR [--config FILE]`.

Imitator's losses: vertex MSE, velocity (x10) and lip contact (x5) on the frames where the lips
close for /p b m/ (the local minimum of the ground-truth lip gap in a window before the aligned
consonant's end). Audio is augmented (noise, telephone band, reverberation, gain) so a model
trained on synthetic voices holds up on real recordings. Checkpoints let a run resume; the
result is a model folder loadable by the rest of the product.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict

import numpy as np
import torch

from .audio import load_audio
from .corpus.articulation import BILABIALS
from .data import Clip, load_clips
from .encoders import resample_features
from .errors import ConfigError, ModelError
from .features import FeatureCache
from .models import TRAINING_RECORD, build_model, read_model_config, save_model
from .phones import IGNORED, frame_phone_labels
from .train_config import DEFAULT_MODEL, TrainConfig


def augment_audio(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random noise, telephone band-limiting, room reverberation and gain, each with some chance."""
    from scipy.signal import butter, fftconvolve, sosfilt

    out = audio.astype(np.float64)
    if rng.random() < 0.4:  # room: exponentially decaying noise impulse response
        length = int(16000 * rng.uniform(0.15, 0.5))
        impulse = rng.normal(size=length) * np.exp(-np.arange(length) / (length / rng.uniform(3, 6)))
        impulse[0] = 1.0
        wet = fftconvolve(out, impulse)[: len(out)]
        out = wet / (np.abs(wet).max() + 1e-9) * np.abs(out).max()
    if rng.random() < 0.3:  # telephone band
        sos = butter(4, [300, 3400], btype="band", fs=16000, output="sos")
        out = sosfilt(sos, out)
    if rng.random() < 0.5:  # background noise at 10-35 dB SNR
        snr = rng.uniform(10, 35)
        power = np.mean(out**2) + 1e-12
        out = out + rng.normal(size=len(out)) * np.sqrt(power / 10 ** (snr / 10))
    out *= rng.uniform(0.3, 1.0) / (np.abs(out).max() + 1e-9)
    return out.astype(np.float32)


def augment_spectrum(features: torch.Tensor, rng: np.random.Generator, max_warp: float = 0.12,
                     masks: int = 2, max_band: int = 10) -> torch.Tensor:
    """(T, n_mels) normalised log-mel -> the same with the mel axis stretched or squeezed about its
    low end (a longer or shorter vocal tract moves every formant by the same factor) and up to
    `masks` random bands of at most `max_band` bins set to the clip mean (0 after normalisation).
    Time is left alone: masking frames would hide the sound the lips must follow."""
    n_mels = features.shape[1]
    factor = float(rng.uniform(1 - max_warp, 1 + max_warp))
    source = torch.clamp(torch.arange(n_mels, dtype=torch.float32) / factor, 0, n_mels - 1)
    low = source.floor().long()
    high = torch.clamp(low + 1, max=n_mels - 1)
    blend = (source - low.float()).to(features.dtype)
    out = features[:, low] * (1 - blend) + features[:, high] * blend
    for _ in range(int(rng.integers(0, masks + 1))):
        width = int(rng.integers(1, max_band + 1))
        start = int(rng.integers(0, n_mels - width + 1))
        out[:, start:start + width] = 0.0
    return out


class ClipStore:
    """Motion, lip-contact weights and (with a feature cache) encoder features per clip, read once."""

    def __init__(self, clips: list[Clip], features: FeatureCache | None = None):
        self.clips = clips
        self.features = features
        self._cache: dict[int, tuple] = {}
        self._feature_cache: dict[tuple[int, int], torch.Tensor] = {}
        self._phone_labels: dict[int, np.ndarray] = {}
        self._rigs: dict = {}
        self._by_subject: dict[str, list[int]] = {}  # speaker -> indices of its clips, for joining
        for index, clip in enumerate(clips):
            self._by_subject.setdefault(clip.subject, []).append(index)

    def rig(self, clip: Clip):
        """The articulation rig of the clip's subject: where its lips are and how to measure their gap."""
        from .corpus.articulation import FaceRig

        if clip.subject not in self._rigs:
            self._rigs[clip.subject] = FaceRig(clip.template, flame_triangles())
        return self._rigs[clip.subject]

    def get(self, index: int):
        """(audio, offsets (T, V, 3) float32, contact weights (T,)) with T frames at 30 fps.

        Offsets are kept as float16: every clip's motion stays in memory (a 32-speaker corpus with
        augmented copies held 12 GB as float32) and half precision is within 10 microns of it."""
        audio, offsets, contact = self._entry(index)
        return audio, offsets.astype(np.float32), contact

    def get_joined(self, indices: list[int], with_audio: bool = True):
        """get() of clips played back to back (one clip: get() itself); each clip's audio is cut or
        padded to its motion's length, so audio and motion stay in step across the joins.
        with_audio=False leaves the joined audio out (None; a single clip's comes as it is, at no
        cost): training from cached features never reads it."""
        if len(indices) == 1:
            return self.get(indices[0])
        entries = [self.get(i) for i in indices]
        audio = (np.concatenate([_fit(a, int(round(len(o) / 30 * 16000))) for a, o, _ in entries])
                 if with_audio else None)
        return (audio, np.concatenate([o for _, o, _ in entries]), np.concatenate([c for _, _, c in entries]))

    def joined_clips(self, index: int, frames: int, rng: np.random.Generator) -> list[int]:
        """`index` followed by random clips of the same speaker until together they last `frames`."""
        same_speaker = self._by_subject[self.clips[index].subject]
        chosen, total = [index], self.n_frames(index)
        while total < frames:
            chosen.append(int(same_speaker[int(rng.integers(len(same_speaker)))]))
            total += self.n_frames(chosen[-1])
        return chosen

    def joined_features(self, indices: list[int], variant: int) -> torch.Tensor:
        return torch.cat([self.motion_rate_features(i, variant) for i in indices])

    def joined_phone_labels(self, indices: list[int]) -> np.ndarray:
        return np.concatenate([self.phone_labels(i) for i in indices])

    def n_frames(self, index: int) -> int:
        return len(self._entry(index)[2])

    def _entry(self, index: int) -> tuple:
        """The clip's (audio, float16 offsets, contact weights), read on first use."""
        if index not in self._cache:
            clip = self.clips[index]
            audio = load_audio(clip.wav_path)
            vertices = clip.vertices()
            offsets = vertices - clip.template[None]
            n = min(len(offsets), int(round(len(audio) / 16000 * 30)))
            contact = np.zeros(len(offsets), dtype=np.float32)
            if clip.phones:
                rig = self.rig(clip)
                gap = rig.lip_gap(vertices)
                frames = np.arange(len(offsets))
                for phone, start, end in clip.phones:
                    if phone in BILABIALS:
                        window = np.where((frames >= (start - 0.06) * 30) & (frames <= end * 30))[0]
                        if len(window):
                            closure = window[np.argmin(gap[window])]
                            contact = np.maximum(contact, np.exp(-0.5 * ((frames - closure) / 2.0) ** 2))
            self._cache[index] = (audio, offsets[:n].astype(np.float16), contact[:n])
        return self._cache[index]

    def motion_rate_features(self, index: int, variant: int) -> torch.Tensor:
        """Cached encoder features of a clip (variant 0 clean, 1.. augmented) at the motion rate."""
        if (index, variant) not in self._feature_cache:
            feats = torch.from_numpy(self.features.features(self.clips[index], variant).astype(np.float32))
            self._feature_cache[(index, variant)] = resample_features(feats, self.n_frames(index)).to(torch.float16)
        return self._feature_cache[(index, variant)]

    def phone_labels(self, index: int) -> np.ndarray:
        """(T,) phone class at each frame (core.phones), for a phonetic auxiliary loss; all IGNORED
        for a clip without phone times."""
        if index not in self._phone_labels:  # asked for every clip of every step: worked out once
            phones, n_frames = self.clips[index].phones, self.n_frames(index)
            self._phone_labels[index] = (frame_phone_labels(phones, n_frames, 30.0) if phones
                                         else np.full(n_frames, IGNORED))
        return self._phone_labels[index]


def _fit(audio: np.ndarray, samples: int) -> np.ndarray:
    """`audio` cut or zero-padded to `samples`."""
    return audio[:samples] if len(audio) >= samples else np.pad(audio, (0, samples - len(audio)))


_TRIANGLES: list = []


def flame_triangles() -> np.ndarray:
    """FLAME's triangles, needed to find the lips on a template; from ../shared or TALKING_HEAD_FLAME."""
    if not _TRIANGLES:
        from .mesh_io import read_mesh

        from .flame import SHARED_FLAME

        candidates = [os.environ.get("TALKING_HEAD_FLAME", ""), os.path.join(SHARED_FLAME, "FLAME_sample.ply")]
        for path in candidates:
            if path and os.path.isfile(path):
                _TRIANGLES.append(read_mesh(path)[1])
                break
        else:
            raise FileNotFoundError("FLAME triangles needed: set TALKING_HEAD_FLAME to a FLAME .ply/.obj")
    return _TRIANGLES[0]


def emotion_vector(emotion: str, intensity: float) -> torch.Tensor:
    """One-hot over EMOTIONS scaled by intensity; neutral is all zeros (nothing to add)."""
    from .models.base import EMOTIONS

    vector = torch.zeros(len(EMOTIONS))
    if emotion != "neutral":
        vector[EMOTIONS.index(emotion)] = float(intensity)
    return vector


def init_settings(init_config: dict, config: TrainConfig) -> dict:
    """The `init` model's config less what names it or depends on the data."""
    base = {k: v for k, v in init_config.items() if k not in ("name", "styles", "n_vertices")}
    if config.model.get("architecture", base["architecture"]) != base["architecture"]:
        raise ConfigError(f"init model {config.init} is a '{base['architecture']}' model but the training config's "
                          f"\"model\" asks for '{config.model['architecture']}'; drop \"architecture\" from it")
    return base


def starting_weights(config: TrainConfig, style_parameters: tuple[str, ...], subjects: list[str],
                     log=print) -> dict:
    """The `init` model's weights, its style columns (`style_parameters`, the model's own list)
    rearranged for `subjects`: a subject it was trained on keeps its style, a new one starts at the
    mean of its styles."""
    from safetensors.torch import load_file

    from .models import WEIGHTS_FILE, resolve_model_dir

    folder = resolve_model_dir(config.init)
    old_styles = list(read_model_config(folder)["styles"])
    state = load_file(os.path.join(folder, WEIGHTS_FILE), device="cpu")
    for name in style_parameters:
        columns = state[name]
        mean = columns.mean(dim=1, keepdim=True)
        state[name] = torch.cat([columns[:, old_styles.index(s), None] if s in old_styles else mean
                                 for s in subjects], dim=1)
    known = sum(s in old_styles for s in subjects)
    log(f"starting from {folder}" + (f": it knows {known} of the {len(subjects)} training speakers' styles"
                                     + ("" if known == len(subjects) else "; the others start at the mean of its styles")
                                     if style_parameters else ""))
    return state


def learning_rate_factor(step: int, steps: int, stage_starts: tuple[float, ...] = ()) -> float:
    """Warm-up then cosine decay, started afresh at each training stage (fractions of `steps`
    where a model such as the diffusion model moves on to train another network: that network
    gets a full schedule rather than the tail of the previous one's)."""
    bounds = [0] + sorted({math.ceil(f * steps) for f in stage_starts if 0.0 < f < 1.0}) + [max(steps, 1)]
    stage = max(i for i in range(len(bounds) - 1) if bounds[i] <= step)
    length = max(1, bounds[stage + 1] - bounds[stage])
    local = min(step - bounds[stage], length)
    warmup = max(1, length // 20)
    return min(1.0, (local + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * local / length)) + 0.02


class WeightAverage:
    """A copy of the model whose weights follow the trained ones as an exponential moving average;
    buffers (batch-norm statistics) are copied as they are."""

    def __init__(self, model: torch.nn.Module, decay: float, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"weight_average must be between 0 and 1 (e.g. 0.995), or 0 for none; got {decay}")
        self.decay = decay
        self.updates = updates
        self.model = copy.deepcopy(model)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        # early on the average would hold the random start: the rate grows to `decay` over the first steps
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, live in zip(self.model.parameters(), model.parameters()):
            average.lerp_(live, 1.0 - decay)
        for average, live in zip(self.model.buffers(), model.buffers()):
            average.copy_(live)


def trainable_parameters(model: torch.nn.Module, freeze: list[str], log=print) -> list[torch.nn.Parameter]:
    """The parameters a run trains: all but those whose names start with a `freeze` entry, which
    stop taking gradients. An entry that names no weight is refused, listing the model's parts."""
    named = list(model.named_parameters())
    unknown = [prefix for prefix in freeze if not any(name.startswith(prefix) for name, _ in named)]
    if unknown:
        parts = sorted({name.split(".")[0] for name, _ in named})
        raise ConfigError(f"\"freeze\" names no weight of this model: {', '.join(unknown)}; its parts are "
                          f"{', '.join(parts)}")
    for name, parameter in named:
        parameter.requires_grad_(not name.startswith(tuple(freeze)))  # startswith(()) is False: nothing frozen
    trainable = [parameter for _, parameter in named if parameter.requires_grad]
    if freeze:
        total = sum(parameter.numel() for _, parameter in named)
        log(f"frozen: {total - sum(p.numel() for p in trainable)} of {total} weights ({', '.join(freeze)})")
    return trainable


def load_fitting_weights(model: torch.nn.Module, state: dict, source: str, advice: str,
                         optional: tuple[str, ...] = ()) -> None:
    """Load `state` into `model`, or say which weights of `source` do not fit and what to do. Weights
    whose names start with an `optional` prefix (a training-only head, such as the phonetic auxiliary
    loss's) may be on one side only: a head the model adds keeps its fresh start, one it drops is left."""
    own = model.state_dict()
    fitted = {name: value for name, value in state.items() if name in own or not name.startswith(optional)}
    fitted.update({name: value for name, value in own.items() if name.startswith(optional) and name not in state})
    try:
        model.load_state_dict(fitted, strict=True)
    except RuntimeError as exc:
        detail = "; ".join(line.strip() for line in str(exc).splitlines()[1:3])
        raise ConfigError(f"{source} does not fit the network the training config asks for ({detail}): {advice}"
                          ) from None


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def reuse_large_host_buffers(threshold_bytes: int = 256 << 20) -> bool:
    """Ask glibc to serve allocations below `threshold_bytes` from its heap instead of fresh mmap
    pages. A training batch's vertex tensors (8 x 120 frames x 5023 x 3 floats: 58 MB) exceed glibc's
    32 MB ceiling, so every step mapped, faulted in and unmapped each of them again: 4 s crops
    trained at half speed (BENCHMARKS "Training speed on the CPU"). Returns whether glibc took the
    setting; False on other C libraries (macOS, Windows, musl), which keep their own behaviour."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes)))


def load_checkpoint(path: str, device: torch.device) -> dict | None:
    """A run's checkpoint, read with torch's weights-only loader: tensors, numbers, strings and plain
    containers, so a planted file cannot run code. None when there is none yet."""
    if not os.path.isfile(path):
        return None
    try:
        return torch.load(path, weights_only=True, map_location=device)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"Cannot resume from {path}: {reason[:300]}. It is damaged, not a checkpoint, or from an "
                          "older version of Talking Head; move it away to start the run afresh.") from None


def train(data: str, out: str, config: TrainConfig, log=print) -> str:
    """Train (or resume) into `out`; returns the model folder. `out` is created only once the data,
    the init model and any checkpoint there have been read, so a mistyped argument leaves nothing."""
    from .device import pick_device

    torch.manual_seed(config.seed)
    reuse_large_host_buffers()
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    train_clips, val_clips = read_training_clips(data, config)
    subjects = sorted({c.subject for c in train_clips})
    device = torch.device(pick_device(config.device))
    checkpoint = os.path.join(out, "checkpoint.pt")
    state = load_checkpoint(checkpoint, device)
    model = build_run_model(config, state, subjects, train_clips, log)
    trainable = trainable_parameters(model, config.freeze, log)
    os.makedirs(out, exist_ok=True)
    if config.transcripts:
        attach_alignments(train_clips + val_clips, config.transcripts, os.path.join(out, "alignments"), log)
    run = Optimisation(model.to(device), trainable, config)
    start_step, history = run.resume(state, out, rng, log) if state is not None else (0, [])
    run.start_weight_average(state)

    cache = None
    if run.model.config["encoder"]["type"] != "logmel":  # pretrained encoders: features computed once
        cache = FeatureCache(run.model.encoder, config.feature_cache or os.path.join(out, "features"),
                             config.feature_variants, config.seed, augment_audio)
        cache.fill(train_clips, log)
    store, val_store = ClipStore(train_clips, cache), ClipStore(val_clips)
    batches = BatchSampler(store, train_clips, subjects, cache, config, run.model.encoder,
                           with_lip_edges=float(run.model.config.get("weight_lip_seal", 0.0)) > 0)
    losses = LossLog(start_step, config.steps, log)
    run.model.train()
    for step in range(start_step, config.steps):
        batch = batches.sample(rng, device)
        batch["progress"] = step / config.steps
        done = step + 1
        losses.add(done, *run.step(batch), history)
        if done % config.validate_every == 0 or done == config.steps:
            if val_clips:  # a dataset without a val split still checkpoints, so its runs can resume
                mve = validate(run.evaluated_model, val_store)
                history.append({"step": done, "val_mve_mm": mve})
                log(f"step {done}: validation mean vertex error {mve:.3f} mm")
                run.model.train()
            run.save_checkpoint(checkpoint, rng, done, history)
    return save_run_model(run.evaluated_model, out, data, config, store, rng, history, subjects, log)


def read_training_clips(data: str, config: TrainConfig) -> tuple[list[Clip], list[Clip]]:
    """The training clips, and the validation clips where the data has a val split."""
    train_clips = select_clips(load_clips(data, "train"), config.emotions)
    try:
        val_clips = select_clips(load_clips(data, "val"), config.emotions)
    except Exception:
        val_clips = []
    return train_clips, val_clips


def build_run_model(config: TrainConfig, state: dict | None, subjects: list[str], train_clips: list[Clip],
                    log=print) -> torch.nn.Module:
    """The network a run trains: a resumed run's own (older checkpoints lack it), else the init model's
    or the default, sized for these speakers; a fine-tune starts from the init model's weights. The
    init model is read only when needed, so a fine-tune resumes after its start is gone."""
    base = state.get("model_config") if state is not None else None
    if base is None:
        base = init_settings(read_model_config(config.init), config) if config.init else DEFAULT_MODEL
    model_config = {**base, **config.model, "styles": subjects, "n_vertices": int(train_clips[0].template.shape[0])}
    model = build_model(model_config)
    if config.init and state is None:
        load_fitting_weights(model, starting_weights(config, model.style_parameters, subjects, log),
                             f"init model {config.init}", "fine-tuning keeps the network's sizes, so change only "
                             "loss weights and training settings",
                             optional=getattr(model, "optional_parameters", ()))
    return model


class Optimisation:
    """One run's optimiser, learning-rate schedule and optional weight average, with their checkpoint."""

    def __init__(self, model: torch.nn.Module, trainable: list[torch.nn.Parameter], config: TrainConfig):
        self.model, self.config, self.average = model, config, None
        self.optimiser = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=1e-4)
        stage_starts = tuple(getattr(model, "training_stage_starts", ()))
        # config.steps is read at every step so a resumed run can be extended
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda s: learning_rate_factor(s, config.steps, stage_starts))

    def resume(self, state: dict, out: str, rng: np.random.Generator, log=print) -> tuple[int, list]:
        """Take up a checkpoint's weights, optimiser, schedule and random state; returns (step, history)."""
        load_fitting_weights(self.model, state["model"], f"the checkpoint in {out}",
                             "resume with the config (and --init) the run started with")
        try:
            self.optimiser.load_state_dict(state["optimiser"])
        except ValueError:
            raise ConfigError(f"the checkpoint in {out} trained other weights than this config's \"freeze\" "
                              "leaves free: resume with the \"freeze\" the run started with") from None
        self.schedule.load_state_dict(state["schedule"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())
        log(f"resumed from step {state['step']}")
        # the config's rate wins over the checkpoint's, so a resumed run can be fine-tuned at a new rate
        if not np.isclose(self.schedule.base_lrs[0], self.config.lr):
            log(f"learning rate: {self.config.lr:g} from the config (the checkpoint's was {self.schedule.base_lrs[0]:g})")
            self.schedule.base_lrs = [self.config.lr for _ in self.schedule.base_lrs]
        return state["step"], state["history"]

    def start_weight_average(self, state: dict | None) -> None:
        if self.config.weight_average:
            self.average = WeightAverage(self.model, self.config.weight_average,
                                         state.get("average_updates", 0) if state else 0)
            if state is not None and "average" in state:
                self.average.model.load_state_dict(state["average"])

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """What validation, the saved model and the meta start use: the average when there is one."""
        return self.model if self.average is None else self.average.model

    def step(self, batch: dict) -> tuple[float, dict]:
        loss, parts = self.model.training_loss(batch)
        self.optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimiser.step()
        self.schedule.step()
        if self.average is not None:
            self.average.update(self.model)
        return loss.item(), {k: float(v) for k, v in parts.items()}

    def save_checkpoint(self, path: str, rng: np.random.Generator, done: int, history: list) -> None:
        """Everything a resume needs, as tensors and plain values (read back with weights_only)."""
        state = {"model": self.model.state_dict(), "optimiser": self.optimiser.state_dict(),
                 "schedule": self.schedule.state_dict(), "rng": rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state(), "step": done, "history": history,
                 "model_config": dict(self.model.config)}
        if self.average is not None:
            state.update({"average": self.average.model.state_dict(), "average_updates": self.average.updates})
        torch.save(state, path + ".part")
        os.replace(path + ".part", path)


LIP_EDGE_FIELDS = ("edge_upper", "edge_lower", "edge_upper_rest_mm", "edge_lower_rest_mm")


def lip_edge_fields(templates: dict[str, np.ndarray]) -> dict[str, dict[str, torch.Tensor]]:
    """Per speaker, what the seal loss needs to measure contact on a predicted frame: the lip-edge
    vertices (core.lips; padded by repeating the last, so every speaker's stack alike) and their
    rest positions in mm."""
    from .lips import LipContact

    contacts = {s: LipContact(t, flame_triangles()) for s, t in templates.items()}
    n_up = max(len(c.upper) for c in contacts.values())
    n_low = max(len(c.lower) for c in contacts.values())
    fields = {}
    for subject, contact in contacts.items():
        upper = np.pad(contact.upper, (0, n_up - len(contact.upper)), mode="edge")
        lower = np.pad(contact.lower, (0, n_low - len(contact.lower)), mode="edge")
        fields[subject] = {
            "edge_upper": torch.from_numpy(upper.astype(np.int64)),
            "edge_lower": torch.from_numpy(lower.astype(np.int64)),
            "edge_upper_rest_mm": torch.from_numpy(contact.template[upper].astype(np.float32) * 1000.0),
            "edge_lower_rest_mm": torch.from_numpy(contact.template[lower].astype(np.float32) * 1000.0)}
    return fields


class BatchSampler:
    """Random training batches: crops of (joined) clips with their features, offsets, lip contact,
    phone labels, speaking style, lip mask and emotion."""

    def __init__(self, store: ClipStore, clips: list[Clip], subjects: list[str], cache: FeatureCache | None,
                 config: TrainConfig, encoder, with_lip_edges: bool = False):
        self.store, self.clips, self.cache, self.config, self.encoder = store, clips, cache, config, encoder
        self.masks = {c.subject: torch.from_numpy(store.rig(c).w_lips > 0.5) for c in clips}
        # only the seal term reads them: a run without it does not build or carry them
        self.lip_edges = lip_edge_fields({c.subject: c.template for c in clips}) if with_lip_edges else {}
        self.onehots = {s: torch.eye(len(subjects))[i] for i, s in enumerate(subjects)}

    def features(self, joined: list[int], audio: np.ndarray, start: int, length: int, augmented: bool,
                 rng: np.random.Generator) -> torch.Tensor:
        """A crop's speech features: cached (a random augmented variant) or encoded from its audio."""
        if self.cache is not None:
            variant = int(rng.integers(1, self.cache.variants + 1)) if augmented and self.cache.variants else 0
            return self.store.joined_features(joined, variant)[start:start + length].float()
        segment = audio[int(start / 30 * 16000): int((start + length) / 30 * 16000)]
        if augmented:
            segment = augment_audio(segment, rng)
        encoded = self.encoder.encode(segment, torch.device("cpu"))
        if augmented and self.config.spectral_augment:
            encoded = augment_spectrum(encoded, rng)
        return resample_features(encoded, length)

    def sample(self, rng: np.random.Generator, device: torch.device) -> dict:
        config, store = self.config, self.store
        picks = rng.integers(len(self.clips), size=config.batch)
        parts = [store.joined_clips(int(i), config.crop_frames, rng) if config.join_clips else [int(i)]
                 for i in picks]
        items = [store.get_joined(p, with_audio=self.cache is None) for p in parts]
        length = min(config.crop_frames, min(len(o) for _, o, _ in items))
        fields = {k: [] for k in ("features", "target_mm", "contact", "style", "lips", "emotion", "phones",
                                  *(LIP_EDGE_FIELDS if self.lip_edges else ()))}
        for i, joined, (audio, offsets, contact) in zip(picks, parts, items):
            start = int(rng.integers(0, len(offsets) - length + 1))
            augmented = rng.random() < config.augment
            fields["features"].append(self.features(joined, audio, start, length, augmented, rng))
            clip = self.clips[int(i)]
            fields["target_mm"].append(torch.from_numpy(offsets[start:start + length]) * 1000.0)
            fields["contact"].append(torch.from_numpy(contact[start:start + length]))
            fields["phones"].append(torch.from_numpy(store.joined_phone_labels(joined)[start:start + length]))
            fields["style"].append(self.onehots[clip.subject])
            fields["lips"].append(self.masks[clip.subject])
            for name, value in self.lip_edges.get(clip.subject, {}).items():
                fields[name].append(value)
            fields["emotion"].append(emotion_vector(clip.emotion, clip.intensity))
        return {k: torch.stack(v).to(device, non_blocking=True) for k, v in fields.items()}


class LossLog:
    """The mean loss (and its parts) every 50 steps, with speed and time left, into the log and history."""

    def __init__(self, start_step: int, steps: int, log=print):
        self.start_step, self.steps, self.log = start_step, steps, log
        self.started, self.running = time.time(), []

    def add(self, done: int, loss: float, parts: dict, history: list) -> None:
        self.running.append({"loss": loss, **parts})
        if done % 50 and done != self.steps:
            return
        keys = list(dict.fromkeys(k for r in self.running for k in r))  # parts may change (staged models)
        mean = {k: float(np.mean([r[k] for r in self.running if k in r])) for k in keys}
        self.running = []
        rate = (done - self.start_step) / (time.time() - self.started)
        eta = (self.steps - done) / max(rate, 1e-9)
        detail = " ".join(f"{k} {v:.4f}" for k, v in mean.items() if k != "loss")
        self.log(f"step {done}/{self.steps} loss {mean['loss']:.4f} ({detail}) {rate:.1f} steps/s, ETA {eta / 60:.1f} min")
        history.append({"step": done, "loss": mean["loss"]})


def save_run_model(model, out: str, data: str, config: TrainConfig, store: ClipStore, rng: np.random.Generator,
                   history: list, subjects: list[str], log=print) -> str:
    """The run's model folder: weights and config, the meta-learned adaptation start if asked for,
    and training.json (data, settings, history, speakers)."""
    folder = os.path.join(out, "model")
    model.config["name"] = os.path.basename(os.path.normpath(out))
    save_model(model, folder)
    if int(config.meta.get("steps", 0)) > 0:
        from .adapt import MetaOptions, meta_train, save_meta_init

        options = MetaOptions(**config.meta)
        examples = meta_examples(model, store, options.clips_per_speaker, rng)
        log(f"meta-learning the adaptation start: {options.steps} Reptile steps over {len(examples)} clips")
        save_meta_init(folder, meta_train(model, examples, options, config.seed, log))
    record = {"data": os.path.abspath(data), "config": asdict(config), "history": history, "train_subjects": subjects}
    if config.init:  # a fine-tune's record keeps how its start was made (if the start is still there)
        from .models import read_training_record, resolve_model_dir

        try:
            init_record = read_training_record(resolve_model_dir(config.init))
        except ModelError:  # a resumed fine-tune whose start is gone by now
            init_record = {}
        if init_record:
            record["init_training"] = init_record
    with open(os.path.join(folder, TRAINING_RECORD), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    return folder


@torch.no_grad()
def meta_examples(model, store: ClipStore, per_speaker: int, rng: np.random.Generator) -> list:
    """(speaker, viseme features, target offsets in mm) for a few clean clips of each training speaker."""
    model.eval()
    chosen: dict[str, list[int]] = {}
    for index in rng.permutation(len(store.clips)):
        clip = store.clips[int(index)]
        if "a" in clip.sentence.replace("sentence", ""):  # augmented copies: their originals suffice
            continue
        if len(chosen.setdefault(clip.subject, [])) < per_speaker:
            chosen[clip.subject].append(int(index))
    examples = []
    for subject, indices in sorted(chosen.items()):
        for index in indices:
            _, offsets, _ = store.get(index)
            if store.features is not None:
                feats = store.motion_rate_features(index, 0).float()
            else:
                feats = resample_features(model.encoder.encode(store.get(index)[0], torch.device("cpu")), len(offsets))
            visemes = model.viseme_features(feats.unsqueeze(0))[0]
            examples.append((subject, visemes, torch.from_numpy(offsets) * 1000.0))
    return examples


def select_clips(clips: list[Clip], emotions: list[str]) -> list[Clip]:
    if not emotions:
        return clips
    chosen = [c for c in clips if c.emotion in emotions]
    if not chosen:
        from .data import DataError

        raise DataError(f"No clips with emotion {', '.join(emotions)} in the data; change 'emotions' in the config.")
    return chosen


def attach_alignments(clips: list[Clip], transcripts_path: str, folder: str, log=print) -> None:
    """Phone times for clips that have none, by forced alignment of their transcripts (cached)."""
    from .align import AlignmentError, align_phones, read_transcripts, transcript_for

    transcripts = read_transcripts(transcripts_path)
    os.makedirs(folder, exist_ok=True)
    missing, failed = [c for c in clips if not c.phones], []
    if missing:
        log(f"aligning {len(missing)} clips with their transcripts")
    for clip in missing:
        path = os.path.join(folder, f"{clip.subject}_{clip.sentence}.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                clip.phones = json.load(handle)
            continue
        text = transcript_for(transcripts, clip.subject, clip.sentence)
        if text is None:
            failed.append(f"{clip.subject}_{clip.sentence}: no transcript")
            continue
        try:
            clip.phones = [list(p) for p in align_phones(load_audio(clip.wav_path), text)]
        except AlignmentError as exc:
            failed.append(f"{clip.subject}_{clip.sentence}: {exc}")
            continue
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(clip.phones, handle)
    if failed:  # those clips still train, without the lip-contact term
        log(f"{len(failed)} clips without phone times (no lip-contact loss for them): " + "; ".join(failed[:5]))


@torch.no_grad()
def validate(model, store: ClipStore) -> float:
    """Mean vertex error (mm) over validation clips with the average style."""
    from .models.base import Conditioning

    model.eval()
    errors = []
    for index in range(len(store.clips)):
        audio, offsets, _ = store.get(index)
        pred = model.predict(audio, store.clips[index].template, Conditioning()).vertex_offsets()[: len(offsets)]
        errors.append(np.linalg.norm(pred - offsets[: len(pred)], axis=2).mean() * 1000)
    return float(np.mean(errors))


def main_train(args) -> int:
    config = TrainConfig.from_file(args.config)
    for key in ("steps", "seed", "batch", "lr", "transcripts", "feature_cache", "init"):
        if getattr(args, key, None) is not None:
            setattr(config, key, getattr(args, key))
    folder = train(args.data, args.out, config, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"wrote model {folder}", file=sys.stderr)
    return 0
