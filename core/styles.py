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

    from .mesh_io import atomic_output

    weights, meta = style_paths(path)
    folder = os.path.dirname(os.path.abspath(weights))
    os.makedirs(folder, exist_ok=True)
    if not overwrite and (os.path.exists(weights) or os.path.exists(meta)):
        raise ModelError(f"A style already exists at {weights}; choose another name or allow overwriting.")
    with atomic_output(weights) as handle:
        handle.write(save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in style.tensors.items()}))
    with atomic_output(meta, "w") as handle:
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
    if info.get("format") != STYLE_FORMAT or "style" not in tensors:
        raise ModelError(f"{weights} is not a Talking Head style file (format {info.get('format')}).")
    known = {"format", "name", "base_model", "base_fingerprint"}
    return Style(info["name"], info["base_model"], info["base_fingerprint"], tensors,
                 {k: v for k, v in info.items() if k not in known})


def check_style_fits(style: Style, model) -> None:
    """Refuse a style adapted from another model, saying which one it needs."""
    fingerprint = model_fingerprint(model)
    if style.base_fingerprint != fingerprint:
        raise ModelError(f"Style '{style.name}' was adapted from model '{style.base_model}' ({style.base_fingerprint}), "
                         f"not from '{model.name}' ({fingerprint}). Pick that model, or adapt the style again on this one.")


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
                continue
            if info.get("format") == STYLE_FORMAT and all(info.get("name") != i["name"] for i in infos):
                infos.append(info)
    return infos


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
