"""The settings the Talking Head panel edits, stored per scene, and the job's progress per window manager."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .core.models.base import EMOTIONS, FROM_AUDIO

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
    _enum_cache["models"] = [(DEFAULT_MODEL, "Default", "The model shipped with Talking Head")] + [(n, n.replace("_", " ").title(), f"Model '{n}'") for n in names]
    return _enum_cache["models"]


def style_folders(context) -> list[str]:
    """Where styles are found: the preferences' folder, then styles/ beside the .blend."""
    import os

    from .preferences import preferences

    prefs = preferences(context)
    folders = [bpy.path.abspath(prefs.styles_folder)] if prefs and prefs.styles_folder else []
    if bpy.data.filepath:
        folders.append(os.path.join(os.path.dirname(bpy.data.filepath), "styles"))
    return folders


def _chosen_model_config(context, model_name: str) -> dict | None:
    """The chosen model's config.json, or None where it cannot be read (the panel then offers less)."""
    from .core.errors import TalkingHeadError
    from .core.models import read_model_config
    from .preferences import preferences

    prefs = preferences(context)
    try:
        return read_model_config(model_name or None, [prefs.weights_folder] if prefs and prefs.weights_folder else [])
    except TalkingHeadError:
        return None


def model_hears_phones(context, model_name: str) -> bool:
    """Whether the chosen model has a phonetic head (then the panel offers Lip Seal)."""
    from .core.models import hears_phones

    config = _chosen_model_config(context, model_name)
    return config is not None and hears_phones(config)


def model_samples(context, model_name: str) -> bool:
    """Whether the chosen model makes a different take per seed (then the panel offers Seed and Takes)."""
    from .core.models import samples_takes

    config = _chosen_model_config(context, model_name)
    return config is not None and samples_takes(config)


AVERAGE_STYLE = "__average__"  # the style list's first entry: no particular style


def _style_items(self, context):
    """Adapted style files, then the model's own training styles."""
    from .core.errors import TalkingHeadError
    from .core.models import read_model_config
    from .core.styles import available_style_infos
    from .preferences import preferences

    prefs = preferences(context)
    model_name = getattr(self, "model", "") or "default"
    trained: list[str] = []
    try:
        trained = list(read_model_config(model_name, [prefs.weights_folder] if prefs and prefs.weights_folder else [])
                       .get("styles", []))
    except TalkingHeadError:
        pass
    # every style file is listed (telling its base model apart needs its weights); Generate
    # refuses one adapted from another model and names the model it needs
    infos = available_style_infos(style_folders(context))
    files = [info["name"] for info in infos]
    items = [(AVERAGE_STYLE, "Model Average", "The average of the model's training styles")]
    items += [(i["name"], i["name"], f"Adapted style for model '{i.get('base_model')}'") for i in infos]
    items += [(t, t, "Training speaker's style") for t in trained if t not in files]
    _enum_cache["styles"] = items
    return items


class TALKINGHEAD_PG_settings(bpy.types.PropertyGroup):
    audio_source: EnumProperty(
        name="Audio", items=[("STRIP", "Sound Strip", "A sound strip of this scene's sequencer"),
                             ("FILE", "File", "An audio file on disk")], default="STRIP")
    strip: EnumProperty(name="Strip", items=_strip_items, description="Sound strip whose speech drives the face")
    audio_file: StringProperty(name="File", subtype="FILE_PATH", description="wav, flac, ogg or mp3 file with speech")
    model: EnumProperty(name="Model", items=_model_items)
    emotion: EnumProperty(name="Emotion", items=[(e, e.capitalize(), "") for e in EMOTIONS] + [
        (FROM_AUDIO, "From Audio", "Let an emotion model hear the emotion and its strength in the voice")], default="neutral")
    intensity: FloatProperty(name="Intensity", min=0.0, max=1.0, default=1.0,
                             description="Strength of the emotion; keyframe it to change it over the shot")
    style: EnumProperty(name="Style", items=_style_items,
                        description="Speaking style: an adapted actor's style file, or one the model was trained with")
    output_mode: EnumProperty(
        name="Output", items=[("SHAPEKEYS", "Shape Keys", "Editable shape keys and one Action"),
                              ("CACHE", "Vertex Cache", "A PC2 file played by a Mesh Cache modifier")], default="SHAPEKEYS")
    use_strip_start: BoolProperty(name="Start at Strip", default=True, description="Start where the sound strip starts")
    start_frame: IntProperty(name="Start Frame", default=1, description="Frame at which the speech starts")
    seed: IntProperty(name="Seed", min=0, default=0,
                      description="Decides the take of a model that samples; the same seed gives the same take")
    takes: IntProperty(name="Takes", min=1, max=16, default=1,
                       description="How many different takes to make, each its own Action (seeds Seed, Seed+1, ...)")
    # 0 stands for "the model's own" because a property cannot default to a value read from the model
    guidance: FloatProperty(name="Guidance", min=0.0, max=20.0, soft_max=8.0, default=0.0, precision=1,
                            description="How tightly the takes follow the audio: higher gives tighter lip sync and "
                                        "less variety between takes. 0 uses the model's own (4 for the shipped one)")
    lip_seal: FloatProperty(name="Lip Seal", min=0.0, max=1.0, default=1.0, precision=2, subtype="FACTOR",
                            description="Close the lips to contact at every /p b m/ of the words (or that the model "
                                        "hears, where no words are known); its own shape key in the result; 0 "
                                        "leaves the model's lips as they are")
    # what was said: aligned to the audio, the words place every seal, opening and rest (core.speech)
    dialogue: StringProperty(name="Dialogue", default="",
                             description="The words spoken in the audio. Empty: they are transcribed from the audio "
                                         "(Whisper tiny.en, offline); type or correct them here and Generate again")
    dialogue_text: PointerProperty(name="Dialogue Text", type=bpy.types.Text,
                                   description="A Text datablock holding the words spoken (used instead of Dialogue)")
    transcribe: BoolProperty(name="Transcribe", default=True,
                             description="Without dialogue, transcribe the audio to place the lips by its words; off "
                                         "leaves the lips to the model's phonetic head")
    word_markers: BoolProperty(name="Word Markers", default=False,
                               description="Put a timeline marker at the start of every word (replaced on the next "
                                           "Generate of the same head)")
    words_heard: StringProperty(name="Words Heard", default="",
                                description="The words the last Generate aligned to the audio")
    keep_takes: BoolProperty(name="Keep Takes", default=False,
                             description="Keep earlier results as named Actions (or cache files) instead of replacing them")
    cache_folder: StringProperty(name="Cache Folder", subtype="DIR_PATH", default="",
                                 description="Where vertex caches go; empty for the .blend's folder")

    # style adaptation: a reference performance in the scene, or a video of the actor
    reference_kind: EnumProperty(
        name="Reference", items=[("MOTION", "Animated Head", "A FLAME head in this scene animated by the actor"),
                                 ("VIDEO", "Video", "A video of the actor speaking, face to camera: the face is "
                                                    "tracked and carried over to the head")],
        default="MOTION")
    reference_object: PointerProperty(name="Reference", type=bpy.types.Object,
                                      poll=lambda self, obj: obj.type == "MESH",
                                      description="The animated FLAME head whose way of speaking to learn (for a "
                                                  "video: the actor's FLAME head)")
    reference_video: StringProperty(name="Video", subtype="FILE_PATH",
                                    description="Video of the actor speaking (.mp4, .mov, .mkv; constant frame rate)")
    reference_speech: StringProperty(name="Speech", subtype="FILE_PATH",
                                     description="The video's speech as an audio file; empty: the video's own sound")
    reference_audio_source: EnumProperty(
        name="Reference Audio", items=[("STRIP", "Sound Strip", "A sound strip of this scene"),
                                       ("FILE", "File", "An audio file, starting at the first frame")], default="STRIP")
    reference_strip: EnumProperty(name="Reference Strip", items=_strip_items,
                                  description="The reference's speech")
    reference_file: StringProperty(name="Reference File", subtype="FILE_PATH")
    reference_start: IntProperty(name="First Frame", default=1, description="First frame of the reference")
    reference_end: IntProperty(name="Last Frame", default=150, description="Last frame of the reference")
    style_name: StringProperty(name="Style Name", default="", description="Name of the new style")
    overwrite_style: BoolProperty(name="Replace Existing", default=False,
                                  description="Replace a style file of the same name")


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
