"""Speaking-style files: what adaptation to a new actor produces.

A style is `<name>.safetensors` (the style embedding and low-rank updates of the deformation
basis) with `<name>.json` beside it (its name, the base model it belongs to, how it was made).
A style only makes sense on the model it was adapted from, so the JSON carries that model's
fingerprint and loading refuses a style from another model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from .errors import ModelError

STYLE_FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$")


@dataclass
class Style:
    name: str
    base_model: str
    base_fingerprint: str
    tensors: dict[str, np.ndarray]  # "style" (d,), "basis_lora_a" (r, K), "basis_lora_b" (V*3, r)
    info: dict = field(default_factory=dict)


def model_fingerprint(model) -> str:
    """A short digest of a model's weights: styles are tied to exactly these."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def check_style_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ModelError(f"Style name '{name}' is not usable: use 1-63 letters, digits, spaces, '_', '-' or '.', "
                         "starting with a letter or digit.")
    return name


def style_paths(path_or_folder: str, name: str | None = None) -> tuple[str, str]:
    base = os.path.join(path_or_folder, name) if name else path_or_folder
    if base.endswith(".safetensors") or base.endswith(".json"):
        base = base.rsplit(".", 1)[0]
    return base + ".safetensors", base + ".json"


def save_style(style: Style, path: str, overwrite: bool = False) -> str:
    """Write the pair atomically; an existing style of that name is kept unless `overwrite`."""
    from safetensors.numpy import save

    from .outputs import atomic_output

    weights, meta = style_paths(path)
    folder = os.path.dirname(os.path.abspath(weights))
    os.makedirs(folder, exist_ok=True)
    if not overwrite and (os.path.exists(weights) or os.path.exists(meta)):
        raise ModelError(f"A style already exists at {weights}; choose another name or allow overwriting.")
    with atomic_output(weights, overwrite=overwrite) as handle:
        handle.write(save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in style.tensors.items()}))
    with atomic_output(meta, "w", overwrite=overwrite) as handle:
        json.dump({"format": STYLE_FORMAT, "name": style.name, "base_model": style.base_model,
                   "base_fingerprint": style.base_fingerprint, **style.info}, handle, indent=1)
    return weights


def load_style(path: str) -> Style:
    from safetensors.numpy import load_file

    weights, meta = style_paths(path)
    if not os.path.isfile(weights) or not os.path.isfile(meta):
        raise ModelError(f"Style file not found: {weights} (and its .json). Adapt a style first or check the path.")
    try:
        with open(meta, encoding="utf-8") as handle:
            info = json.load(handle)
        tensors = load_file(weights)
    except Exception as exc:
        raise ModelError(f"Style {weights} cannot be read ({exc}); adapt it again.") from None
    if not isinstance(info, dict) or info.get("format") != STYLE_FORMAT or "style" not in tensors:
        raise ModelError(f"{weights} is not a Talking Head style file (format "
                         f"{info.get('format') if isinstance(info, dict) else None}); adapt the style again.")
    known = {"format", "name", "base_model", "base_fingerprint"}
    missing = sorted(k for k in known if not isinstance(info.get(k), (str, int)) or info.get(k) == "")
    if missing:
        raise ModelError(f"{meta} lacks {', '.join(missing)}; it is damaged. Adapt the style again.")
    for key, value in tensors.items():
        if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
            raise ModelError(f"Style {weights} holds invalid (NaN, infinite or non-float) values in '{key}'; "
                             "adapt it again.")
    info = {**info, "name": str(info["name"])}
    return Style(info["name"], info["base_model"], info["base_fingerprint"], tensors,
                 {k: v for k, v in info.items() if k not in known})


def check_style_fits(style: Style, model) -> None:
    """Refuse a style adapted from another model, saying which one it needs."""
    fingerprint = model_fingerprint(model)
    if style.base_fingerprint != fingerprint:
        raise ModelError(f"Style '{style.name}' was adapted from model '{style.base_model}' ({style.base_fingerprint}), "
                         f"not from '{model.name}' ({fingerprint}). Pick that model, or adapt the style again on this one.")
    check_style_shapes(style, model)


def check_style_shapes(style: Style, model) -> None:
    """A style's tensors must have the sizes of the model's style embedding and deformation basis."""
    basis = getattr(getattr(model, "deformation_basis", None), "weight", None)
    embedding = getattr(getattr(model, "style_embedding", None), "weight", None)
    if basis is None or embedding is None:
        return
    outputs, inputs = basis.shape
    expected = {"style": (embedding.shape[0],), "basis_delta": (outputs, inputs)}
    if "basis_lora_a" in style.tensors:
        rank = style.tensors["basis_lora_a"].shape[0] if style.tensors["basis_lora_a"].ndim == 2 else -1
        expected.update({"basis_lora_a": (rank, inputs), "basis_lora_b": (outputs, rank)})
    for key, shape in expected.items():
        if key in style.tensors and tuple(style.tensors[key].shape) != shape:
            raise ModelError(f"Style '{style.name}' is damaged: '{key}' has shape {tuple(style.tensors[key].shape)}, "
                             f"model '{model.name}' needs {shape}. Adapt the style again.")
    if ("basis_lora_a" in style.tensors) != ("basis_lora_b" in style.tensors):
        raise ModelError(f"Style '{style.name}' is damaged: it has only half of its basis update. Adapt it again.")


def find_style(name: str, folders: list[str]) -> str | None:
    """The path of style `name` in the first folder that has it (a path to a file also works)."""
    if os.path.isfile(style_paths(name)[0]):
        return style_paths(name)[0]
    for folder in folders:
        if folder and os.path.isfile(style_paths(folder, name)[0]):
            return style_paths(folder, name)[0]
    return None


def available_style_infos(folders: list[str]) -> list[dict]:
    """The JSON records of the style files in `folders` (cheap: no weights are read)."""
    infos: list[dict] = []
    for folder in folders:
        if not folder or not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            if not entry.endswith(".json") or not os.path.isfile(os.path.join(folder, entry[:-5] + ".safetensors")):
                continue
            try:
                with open(os.path.join(folder, entry), encoding="utf-8") as handle:
                    info = json.load(handle)
            except (OSError, ValueError):
                _warn_skipped(os.path.join(folder, entry), "cannot be read")
                continue
            if not isinstance(info, dict) or info.get("format") != STYLE_FORMAT:
                continue  # some other JSON beside the styles
            if not isinstance(info.get("name"), str) or not isinstance(info.get("base_fingerprint"), str):
                _warn_skipped(os.path.join(folder, entry), "lacks its name or base model")
                continue
            if all(info["name"] != i["name"] for i in infos):
                infos.append(info)
    return infos


_warned: set[str] = set()


def _warn_skipped(path: str, why: str) -> None:
    """Say once per file (panels list styles on every redraw) that a damaged style file is skipped."""
    if path not in _warned:
        _warned.add(path)
        print(f"Talking Head: skipping style file {path}: it {why}; adapt that style again or remove the file.",
              file=sys.stderr)


def available_styles(folders: list[str], model=None) -> list[str]:
    """Names of the style files in `folders` (those of `model` only, when given)."""
    fingerprint = model_fingerprint(model) if model is not None else None
    return [info["name"] for info in available_style_infos(folders)
            if fingerprint is None or info.get("base_fingerprint") == fingerprint]


def style_folders(extra: list[str] | None = None) -> list[str]:
    """Where styles are looked for: the given folders, then TALKING_HEAD_STYLES (path list)."""
    folders = [f for f in (extra or []) if f]
    env = os.environ.get("TALKING_HEAD_STYLES")
    if env:
        folders.extend(env.split(os.pathsep))
    return folders


def resolve_style(conditioning, model, folders: list[str] | None = None):
    """Attach the style file that `conditioning.style` names, unless the model knows that style
    itself; an unknown name is refused with the styles that exist."""
    name = conditioning.style
    if not name or name in getattr(model, "styles", []):
        return conditioning
    path = find_style(name, style_folders(folders))
    if path is None:
        files = available_styles(style_folders(folders))
        raise ModelError(f"No speaking style '{name}': model '{model.name}' has {', '.join(model.styles)}"
                         + (f"; style files: {', '.join(files)}" if files else "; no style files found")
                         + ". Adapt one with 'Adapt Style' or 'python -m core adapt'.")
    style = load_style(path)
    check_style_fits(style, model)
    conditioning.adapted_style = style
    return conditioning
