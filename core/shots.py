"""Shot lists for batch baking: a JSON list of shots, each the bake's options for one .blend.

Read and checked here, without Blender, so a farm's list is validated (and fuzz-tested) before any
file is opened: unknown fields and wrongly typed values are reported per shot.
"""

from __future__ import annotations

import json
import os

from .errors import OutputError

# field -> accepted JSON types
SHOT_FIELDS: dict[str, tuple[type, ...]] = {
    "blend": (str,), "object": (str,), "audio": (str,), "strip": (str,), "mode": (str,), "model": (str,),
    "emotion": (str,), "intensity": (int, float), "style": (str,), "styles_dir": (str,), "start_frame": (int, float),
    "output": (str,), "overwrite": (bool,), "device": (str,), "keep_takes": (bool,), "cache_folder": (str,),
    "overwrite_input": (bool,), "seed": (int,), "takes": (int,), "guidance": (int, float), "lip_seal": (int, float),
    "transcript": (str,), "transcribe": (bool,), "word_markers": (bool,),
}
PATH_FIELDS = ("blend", "audio", "output", "cache_folder", "styles_dir")


def shot_problem(shot: dict) -> str | None:
    """What is wrong with one shot's fields (None when nothing): unknown names or wrong types."""
    unknown = set(shot) - set(SHOT_FIELDS)
    if unknown:
        return f"Unknown shot field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(SHOT_FIELDS))}."
    for key, value in shot.items():
        types = SHOT_FIELDS[key]
        wrong_bool = isinstance(value, bool) and bool not in types
        if value is not None and (wrong_bool or not isinstance(value, types)):
            kind = " or ".join("true/false" if t is bool else "a number" if t in (int, float) else "text"
                               for t in dict.fromkeys(float if t is int else t for t in types))
            return f"Shot field '{key}' must be {kind}, got {value!r}."
    return None


def read_shot_list(path: str) -> list[dict]:
    """The shots of a JSON shot list, paths made absolute relative to the list's folder."""
    try:
        with open(path, encoding="utf-8") as handle:
            shots = json.load(handle)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise OutputError(f"Cannot read shot list {path}: {exc}. Give a JSON list of shot objects.") from None
    except RecursionError:
        raise OutputError(f"Shot list {path} is nested too deeply to be a shot list.") from None
    if not isinstance(shots, list) or not all(isinstance(s, dict) for s in shots):
        raise OutputError(f"Shot list {path} must be a JSON list of objects.")
    base = os.path.dirname(os.path.abspath(path))
    for shot in shots:
        for key in PATH_FIELDS:
            if isinstance(shot.get(key), str) and shot[key] and not os.path.isabs(shot[key]):
                shot[key] = os.path.join(base, shot[key])
    return shots
