"""Output mode "vertex cache": a PC2 file beside the .blend, played by a Mesh Cache modifier."""

from __future__ import annotations

import os

import bpy
import numpy as np

from ..core.errors import OutputError
from ..core.mesh_io import write_pc2
from ..core.pipeline import SceneMotion

MODIFIER_NAME = "Talking Head cache"


def cache_paths(obj: bpy.types.Object, folder: str, keep_takes: bool, blend_path: str | None = None,
                count: int = 1, replace: bool = False) -> list[str]:
    """Absolute paths for this object's `count` takes, named after the shot's .blend and the object;
    never a file the add-on did not write for this object. The first may replace the object's current
    cache (unless takes are kept), the others are new; with `replace` (a bake told to overwrite its
    output) all take names are reused."""
    blend_path = bpy.data.filepath if blend_path is None else blend_path
    if folder:
        folder = bpy.path.abspath(folder, start=os.path.dirname(blend_path) or None)
    elif blend_path:
        folder = os.path.dirname(blend_path)
    else:
        raise OutputError(
            "Vertex cache needs a folder: save the .blend first (the cache goes beside it) "
            "or choose a cache folder in the Talking Head panel."
        )
    if not os.path.isdir(folder):
        raise OutputError(f"Cache folder does not exist: {folder}. Create it or choose another folder.")
    modifier = obj.modifiers.get(MODIFIER_NAME)
    ours = bpy.path.abspath(modifier.filepath, start=os.path.dirname(blend_path) or None) if modifier else None
    shot = os.path.splitext(os.path.basename(blend_path))[0] if blend_path else ""
    shot = shot[: -len("_talkinghead")] if shot.endswith("_talkinghead") else shot  # a bake's default output name
    stem = (bpy.path.clean_name(shot) + "_" if shot else "") + bpy.path.clean_name(obj.name) + "_talkinghead"
    candidate, take, paths = os.path.join(folder, stem + ".pc2"), 1, []
    while len(paths) < count:
        replaceable = not keep_takes and (replace or (not paths and os.path.normpath(candidate)
                                                      == os.path.normpath(ours or "")))
        if not os.path.exists(candidate) or replaceable:
            paths.append(candidate)
        take += 1
        candidate = os.path.join(folder, f"{stem}_take{take}.pc2")
    return paths


def write_vertex_cache(
    obj: bpy.types.Object,
    motions: list[SceneMotion],
    template: np.ndarray,
    start_frame: float,
    paths: list[str],
    blend_path: str | None = None,
) -> bpy.types.Modifier:
    """Write one PC2 per take, then point this object's Mesh Cache modifier at the first."""
    for motion, path in zip(motions, paths):
        write_pc2(path, motion.vertices(template), start_frame=0.0, sampling=1.0)
    blend_path = bpy.data.filepath if blend_path is None else blend_path
    modifier = obj.modifiers.get(MODIFIER_NAME) or obj.modifiers.new(MODIFIER_NAME, "MESH_CACHE")
    modifier.cache_format = "PC2"
    modifier.filepath = bpy.path.relpath(paths[0], start=os.path.dirname(blend_path)) if blend_path else paths[0]
    modifier.time_mode = "FRAME"
    modifier.play_mode = "SCENE"
    modifier.frame_start = float(start_frame)
    modifier.frame_scale = 1.0
    modifier.deform_mode = "OVERWRITE"
    modifier.interpolation = "LINEAR"
    modifier.forward_axis, modifier.up_axis = "POS_Y", "POS_Z"  # the cache is in the mesh's own frame
    return modifier
