"""The settings the Talking Head panel edits, stored per scene, and the job's progress per window manager."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .core.models.base import EMOTIONS

# Blender keeps only references to dynamic enum strings: hold them here so they are not freed
_enum_cache: dict[str, list[tuple[str, str, str]]] = {}


def _strip_items(self, context):
    from .blender.compat import sound_strips

    items = [(s.name, s.name, f"Sound strip on channel {s.channel}, starting at frame {s.frame_final_start}")
             for s in sound_strips(context.scene)] if context and context.scene else []
    _enum_cache["strips"] = items or [("", "(no sound strips)", "Add a sound strip in the Video Sequencer")]
    return _enum_cache["strips"]


def _model_items(self, context):
    from .core.models import DEFAULT_MODEL, available_models
    from .preferences import preferences

    prefs = preferences(context)
    names = available_models([prefs.weights_folder] if prefs and prefs.weights_folder else [])
    if DEFAULT_MODEL in names:
        names.remove(DEFAULT_MODEL)
    _enum_cache["models"] = [(DEFAULT_MODEL, "Default", "The model shipped with Talking Head")] + [(n, n, f"Model '{n}'") for n in names]
    return _enum_cache["models"]


class TALKINGHEAD_PG_settings(bpy.types.PropertyGroup):
    audio_source: EnumProperty(
        name="Audio", items=[("STRIP", "Sound Strip", "A sound strip of this scene's sequencer"),
                             ("FILE", "File", "An audio file on disk")], default="STRIP")
    strip: EnumProperty(name="Strip", items=_strip_items, description="Sound strip whose speech drives the face")
    audio_file: StringProperty(name="File", subtype="FILE_PATH", description="wav, flac, ogg or mp3 file with speech")
    model: EnumProperty(name="Model", items=_model_items)
    emotion: EnumProperty(name="Emotion", items=[(e, e.capitalize(), "") for e in EMOTIONS], default="neutral")
    intensity: FloatProperty(name="Intensity", min=0.0, max=1.0, default=1.0, description="Strength of the emotion")
    style: StringProperty(name="Style", default="", description="Speaking style name; empty for the model's default")
    output_mode: EnumProperty(
        name="Output", items=[("SHAPEKEYS", "Shape Keys", "Editable shape keys and one Action"),
                              ("CACHE", "Vertex Cache", "A PC2 file played by a Mesh Cache modifier")], default="SHAPEKEYS")
    use_strip_start: BoolProperty(name="Start at Strip", default=True, description="Start where the sound strip starts")
    start_frame: IntProperty(name="Start Frame", default=1, description="Frame at which the speech starts")
    keep_takes: BoolProperty(name="Keep Takes", default=False,
                             description="Keep earlier results as named Actions (or cache files) instead of replacing them")
    cache_folder: StringProperty(name="Cache Folder", subtype="DIR_PATH", default="",
                                 description="Where vertex caches go; empty for the .blend's folder")


class TALKINGHEAD_PG_job(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(default="")
    cancel_requested: BoolProperty(default=False)


CLASSES = (TALKINGHEAD_PG_settings, TALKINGHEAD_PG_job)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.Scene.talking_head = PointerProperty(type=TALKINGHEAD_PG_settings)
    bpy.types.WindowManager.talking_head_job = PointerProperty(type=TALKINGHEAD_PG_job)


def unregister() -> None:
    del bpy.types.WindowManager.talking_head_job
    del bpy.types.Scene.talking_head
    _unregister_classes()
