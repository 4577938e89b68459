"""Model folders: `config.json` (architecture, encoder, sizes) beside `model.safetensors`.

One loader for every variant: the config's "architecture" picks the class from ARCHITECTURES,
so a new model plugs in by adding one entry. Names resolve through the weights folders (the
user's first, then the project's `weights/`).
"""

from __future__ import annotations

import copy
import json
import os
from typing import Callable

from ..device import use_full_float32
from ..errors import ModelError
from .base import EMOTIONS, Conditioning, MotionModel, MotionPrediction

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINING_RECORD = "training.json"  # how a model was made: data, settings, history, later refits
DEFAULT_MODEL = "default"
PROJECT_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "weights")

__all__ = [
    "EMOTIONS", "Conditioning", "MotionModel", "MotionPrediction", "ARCHITECTURES",
    "build_model", "load_model", "save_model", "resolve_model_dir", "available_models", "read_model_config",
    "samples_takes", "hears_phones",
]


def _imitator(config: dict):
    from .imitator import ImitatorModel

    return ImitatorModel(config)


def _emoface(config: dict):
    from .emoface import EmoFaceModel

    return EmoFaceModel(config)


def _gldit(config: dict):
    from .gldit import GLDiTalkerModel

    return GLDiTalkerModel(config)


ARCHITECTURES: dict[str, Callable[[dict], MotionModel]] = {"imitator": _imitator, "emoface": _emoface,
                                                           "gldit": _gldit}
# architectures whose output depends on the seed, so several takes of one line differ
SAMPLING_ARCHITECTURES = frozenset({"gldit"})


def samples_takes(config: dict) -> bool:
    """Whether a model of this config gives a different take for each seed."""
    return config.get("architecture") in SAMPLING_ARCHITECTURES


def hears_phones(config: dict) -> bool:
    """Whether a model of this config has a phonetic head, so its predictions carry the phone
    posteriors the lip seal is driven by."""
    return config.get("architecture") == "imitator" and float(config.get("weight_phone", 0.0)) > 0


_config_cache: dict[str, tuple[tuple[int, int], dict]] = {}  # path -> ((modified, size), parsed config)


def read_model_config(name_or_path: str | None, extra_dirs: list[str] | None = None) -> dict:
    """A model's config.json without loading its weights (for panels and checks). Panels ask on every
    redraw, so a file is parsed again only when it changes; callers get their own copy."""
    path = os.path.join(resolve_model_dir(name_or_path, extra_dirs), CONFIG_FILE)
    try:
        stat = os.stat(path)
        modified = (stat.st_mtime_ns, stat.st_size)
        cached = _config_cache.get(path)
        if cached is None or cached[0] != modified:
            with open(path, encoding="utf-8") as handle:
                cached = (modified, json.load(handle))
            _config_cache[path] = cached
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read {path}: {exc}. Reinstall the model.") from None
    return copy.deepcopy(cached[1])


def build_model(config: dict) -> MotionModel:
    """A freshly initialised model of the config's architecture."""
    arch = config.get("architecture")
    if arch not in ARCHITECTURES:
        raise ModelError(f"Unknown model architecture '{arch}'. Known: {', '.join(sorted(ARCHITECTURES))}.")
    return ARCHITECTURES[arch](config)


def weights_dirs(extra: list[str] | None = None) -> list[str]:
    dirs = [d for d in (extra or []) if d]
    env = os.environ.get("TALKING_HEAD_WEIGHTS")
    if env:
        dirs.extend(env.split(os.pathsep))
    dirs.append(PROJECT_WEIGHTS)
    return dirs


def available_models(extra_dirs: list[str] | None = None) -> list[str]:
    names: list[str] = []
    for folder in weights_dirs(extra_dirs):
        if os.path.isdir(folder):
            for entry in sorted(os.listdir(folder)):
                if os.path.isfile(os.path.join(folder, entry, CONFIG_FILE)) and entry not in names:
                    names.append(entry)
    return names


def resolve_model_dir(name_or_path: str | None, extra_dirs: list[str] | None = None) -> str:
    """The folder of a model given by name (searched in the weights folders) or by path."""
    name = name_or_path or DEFAULT_MODEL
    if os.path.isfile(os.path.join(name, CONFIG_FILE)):
        return os.path.abspath(name)
    for folder in weights_dirs(extra_dirs):
        candidate = os.path.join(folder, name)
        if os.path.isfile(os.path.join(candidate, CONFIG_FILE)):
            return candidate
    known = available_models(extra_dirs)
    raise ModelError(
        f"Model '{name}' not found in {', '.join(weights_dirs(extra_dirs))}. "
        + (f"Available: {', '.join(known)}." if known else "No models are installed: train one with 'python -m core train'.")
    )


def load_model(name_or_path: str | None = None, device: str = "cpu", extra_dirs: list[str] | None = None) -> MotionModel:
    """Load a model folder (config.json + model.safetensors) onto `device`."""
    from safetensors.torch import load_file

    folder = resolve_model_dir(name_or_path, extra_dirs)
    model = build_model(read_model_config(folder))
    weights_path = os.path.join(folder, WEIGHTS_FILE)
    if not os.path.isfile(weights_path):
        raise ModelError(f"Model folder {folder} has no {WEIGHTS_FILE}. Reinstall or retrain the model.")
    try:
        state = load_file(weights_path, device="cpu")
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise ModelError(f"Weights in {weights_path} do not fit its config.json ({exc}). Reinstall the model.") from None
    model.folder = folder  # beside the weights: the adaptation start (adaptation.safetensors), if trained
    # messages name the model as the user asked for it ('default', not the version it points at today);
    # the config's "name" stays the version, recorded in styles and training records
    model.name = name_or_path or DEFAULT_MODEL
    use_full_float32(device)
    return model.to(device)


def read_training_record(folder: str) -> dict:
    """A model folder's training record ({} when it has none, as a hand-made model may not)."""
    path = os.path.join(folder, TRAINING_RECORD)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def save_model(model: MotionModel, folder: str) -> None:
    """Write `model` as a model folder loadable by `load_model`."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(folder, WEIGHTS_FILE))
    with open(os.path.join(folder, CONFIG_FILE), "w", encoding="utf-8") as handle:
        json.dump(model.config, handle, indent=2, sort_keys=True)
