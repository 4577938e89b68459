"""Driving the extension inside bpy as Blender would: registration, scenes, modal operators."""

from __future__ import annotations

import hashlib
import sys
import time
import types
from pathlib import Path

import numpy as np

from conftest import REPO

REPO_MODULE = "testrepo"
PACKAGE = f"bl_ext.{REPO_MODULE}.talking_head"
_registered = {}


def register_extension(tmp_root: Path):
    """Enable the checkout as extension `talking_head` in a test repository (recipe of BLENDER.md)."""
    import addon_utils
    import bpy

    if "module" in _registered:
        return _registered["module"]
    link_parent = tmp_root / "extensions"
    link_parent.mkdir(parents=True, exist_ok=True)
    (link_parent / "talking_head").symlink_to(REPO, target_is_directory=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.extensions.repos.new(
        name="tests", module=REPO_MODULE, custom_directory=str(link_parent), source="USER")
    module = addon_utils.enable(PACKAGE, default_set=True, handle_error=None)
    assert module is not None, "the extension failed to register"
    _registered["module"] = module
    return module


def addon_module(name: str):
    return sys.modules[f"{PACKAGE}.{name}"]


def new_scene(fps: float = 24.0):
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = {29.97: (30000, 1001)}.get(fps, (int(fps), 1))
    return scene


def add_mesh(name: str, verts: np.ndarray, faces: np.ndarray):
    import bpy

    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts.tolist(), [], faces.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj


def add_sound_strip(scene, path: Path, frame_start: int, name: str = "speech"):
    scene.sequence_editor_create()
    return scene.sequence_editor.strips.new_sound(name, str(path), 1, frame_start)


def evaluated_vertices(obj, frame: int) -> np.ndarray:
    import bpy

    bpy.context.scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", coords)
    evaluated.to_mesh_clear()
    return coords.reshape(-1, 3)


def scene_snapshot() -> dict:
    """Everything a generation could change: a bad input or a cancel must leave it identical."""
    import bpy

    state = {"actions": sorted(a.name for a in bpy.data.actions), "objects": {}}
    for obj in bpy.data.objects:
        entry = {"modifiers": [m.name for m in obj.modifiers], "location": tuple(obj.location)}
        if obj.type == "MESH":
            coords = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
            obj.data.vertices.foreach_get("co", coords)
            entry["verts"] = hashlib.sha1(coords.tobytes()).hexdigest()
            keys = obj.data.shape_keys
            entry["shape_keys"] = [k.name for k in keys.key_blocks] if keys else []
            entry["action"] = keys.animation_data.action.name if keys and keys.animation_data and keys.animation_data.action else None
        state["objects"][obj.name] = entry
    return state


class Event:
    def __init__(self, kind: str):
        self.type, self.value = kind, "PRESS"


class OperatorDriver:
    """Stands in for the operator instance Blender would create, so tests can call the real
    start_job()/modal() code by hand (bpy as a module has no event loop: timers never fire)."""

    def __init__(self, operator_class):
        self._cls = operator_class
        self.reports: list[tuple[set, str]] = []

    def report(self, kind, message):
        self.reports.append((kind, message))

    def __getattr__(self, name):
        import inspect

        raw = inspect.getattr_static(self._cls, name)
        if isinstance(raw, (staticmethod, classmethod)):
            return getattr(self._cls, name)
        attr = getattr(self._cls, name)
        return types.MethodType(attr, self) if callable(attr) else attr

    def run_modal(self, context, timeout: float = 120.0, cancel_after: int | None = None) -> set:
        """Call modal() with TIMER events until it ends; optionally press Cancel after N ticks."""
        deadline = time.monotonic() + timeout
        ticks = 0
        while time.monotonic() < deadline:
            if cancel_after is not None and ticks == cancel_after:
                context.window_manager.talking_head_job.cancel_requested = True
            result = self.modal(context, Event("TIMER"))
            if result != {"RUNNING_MODAL"}:
                return result
            ticks += 1
            time.sleep(0.02)
        raise TimeoutError("modal operator did not finish")
