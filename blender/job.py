"""One generation: collected from the scene on the main thread, computed anywhere, applied on
the main thread. The modal operator runs `compute` in a worker thread; the command line runs
all three in a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy
import numpy as np

from ..core.audio import load_audio
from ..core.device import pick_device
from ..core.errors import Cancelled, OutputError
from ..core.models import Conditioning, load_model, read_model_config
from ..core.pipeline import SceneMotion, animate_takes, check_sampling, lip_seal_strength
from ..core.speech import speech_timing
from ..core.styles import resolve_style
from ..core.timing import check_fps
from .audio_source import AudioSource
from .cache import cache_paths, write_vertex_cache
from .compat import scene_fps
from .markers import write_word_markers
from .shapekeys import write_shape_keys
from .target import check_target
from .worker import WorkerJob

OUTPUT_MODES = ("SHAPEKEYS", "CACHE")


@dataclass
class GenerateRequest:
    """Everything a generation needs, copied out of Blender so the worker never touches bpy."""

    object_name: str
    template: np.ndarray
    triangles: np.ndarray
    source: AudioSource
    conditioning: Conditioning
    model: str | None
    device: str
    fps: float
    start_frame: float
    mode: str = "SHAPEKEYS"
    keep_takes: bool = False
    takes: int = 1  # several different takes (models that sample), seeds conditioning.seed + k
    cache_files: list[str] = field(default_factory=list)  # one per take, resolved before the work starts
    blend_path: str | None = None
    weights_dirs: list[str] = field(default_factory=list)
    style_dirs: list[str] = field(default_factory=list)  # folders of adapted style files
    encoder_cache: str | None = None  # where converted speech encoders are kept
    allow_download: bool = False  # Blender's "Allow Online Access"
    transcript: str | None = None  # the words spoken; None: transcribed when `transcribe`
    transcribe: bool = True
    word_markers: bool = False


def encoder_settings() -> tuple[str | None, bool]:
    """The extension's user folder for converted encoders, and whether Blender may go online."""
    from ..preferences import ADDON_PACKAGE

    cache = None
    if ADDON_PACKAGE and ADDON_PACKAGE.startswith("bl_ext."):
        try:
            cache = bpy.utils.extension_path_user(ADDON_PACKAGE, path="cache", create=True)
        except (ValueError, OSError):
            cache = None
    return cache, bool(getattr(bpy.app, "online_access", False))


def collect_request(
    scene: bpy.types.Scene,
    obj: bpy.types.Object | None,
    source: AudioSource,
    conditioning: Conditioning,
    model: str | None = None,
    device: str = "auto",
    mode: str = "SHAPEKEYS",
    keep_takes: bool = False,
    start_frame: float | None = None,
    cache_folder: str = "",
    blend_path: str | None = None,
    weights_dirs: list[str] | None = None,
    style_dirs: list[str] | None = None,
    takes: int = 1,
    replace_caches: bool = False,
    transcript: str | None = None,
    transcribe: bool = True,
    word_markers: bool = False,
) -> GenerateRequest:
    """Validate the target, output and options up front: a bad input fails before any work or change.
    `replace_caches`: this object's cache files may replace same-named ones (a bake told to overwrite)."""
    template, triangles = check_target(obj)
    check_fps(scene_fps(scene), f"Scene '{scene.name}' frame rate (Output Properties > Frame Rate)")
    if mode not in OUTPUT_MODES:
        raise OutputError(f"Unknown output mode '{mode}'; use one of {', '.join(m.lower() for m in OUTPUT_MODES)}.")
    config = read_model_config(model or None, weights_dirs)
    check_sampling(config, takes, conditioning.guidance, model or "default")
    conditioning.validate()
    lip_seal_strength(config, conditioning, can_seal=True, model_name=model or "default",  # refused before any work
                      has_phones=transcript is not None and bool(transcript.strip()) or transcribe)
    blend_path = bpy.data.filepath if blend_path is None else blend_path
    cache_files = (cache_paths(obj, cache_folder, keep_takes, blend_path, takes, replace_caches)
                   if mode == "CACHE" else [])
    return GenerateRequest(
        object_name=obj.name,
        template=template,
        triangles=triangles,
        source=source,
        conditioning=conditioning.validate(),
        model=model or None,
        device=pick_device(device),
        fps=scene_fps(scene),
        start_frame=source.start_frame if start_frame is None else float(start_frame),
        mode=mode,
        keep_takes=keep_takes,
        takes=int(takes),
        cache_files=cache_files,
        blend_path=blend_path,
        weights_dirs=list(weights_dirs or []),
        style_dirs=list(style_dirs or []),
        encoder_cache=encoder_settings()[0],
        allow_download=encoder_settings()[1],
        transcript=transcript,
        transcribe=bool(transcribe),
        word_markers=bool(word_markers),
    )


def compute(request: GenerateRequest, progress=None, should_cancel=None) -> list[SceneMotion]:
    """The heavy part, one SceneMotion per take: no bpy here, so it may run in a worker thread."""
    report = progress or (lambda fraction, message: None)
    report(0.0, "Reading audio")
    audio = load_audio(request.source.path, request.source.offset_s, request.source.duration_s)
    if should_cancel and should_cancel():
        raise Cancelled("Generation cancelled; nothing was written.")
    report(0.05, "Loading model")
    from ..core.encoders import configure as configure_encoders  # torch: only once work starts

    configure_encoders(cache_dir=request.encoder_cache, allow_download=request.allow_download)
    model = load_model(request.model, request.device, request.weights_dirs)
    resolve_style(request.conditioning, model, request.style_dirs)
    report(0.08, "Finding the words" if request.transcript is None else "Aligning the dialogue")
    speech = speech_timing(audio, request.transcript, request.transcribe, should_cancel)
    if should_cancel and should_cancel():
        raise Cancelled("Generation cancelled; nothing was written.")
    request.conditioning.speech = speech
    motions = animate_takes(
        audio, request.template, request.triangles, model, request.conditioning, request.fps, request.takes,
        progress=lambda f, m: report(0.15 + 0.8 * f, m), should_cancel=should_cancel,
    )
    for motion in motions:
        motion.info["speech"] = speech
    return motions


def apply(request: GenerateRequest, motions: list[SceneMotion]) -> str:
    """Write the takes into the scene (main thread only); returns a one-line summary."""
    obj = bpy.data.objects.get(request.object_name)
    if obj is None:
        raise OutputError(f"Object '{request.object_name}' was deleted while generating; nothing was written.")
    several = len(motions) > 1
    if request.mode == "CACHE":
        write_vertex_cache(obj, motions, request.template, request.start_frame, request.cache_files, request.blend_path)
        where = f"vertex cache {request.cache_files[0]}" + (
            f" (takes: {', '.join(request.cache_files)}; the Mesh Cache modifier plays the first)" if several else "")
    else:
        actions = []
        for k, motion in enumerate(motions):  # each take after the first keeps the one before it
            actions.append(write_shape_keys(obj, motion, request.start_frame, request.keep_takes or k > 0,
                                            numbered=request.keep_takes or several,
                                            seed=motion.info["seed"] if several else None))
        if several:
            actions[-1].use_fake_user = True  # all takes stay until the animator deletes them
            where = f"shape keys, {len(actions)} takes as Actions {', '.join(repr(a.name) for a in actions)}"
        else:
            where = f"shape keys, Action '{actions[0].name}'"
    motion = motions[0]
    end = request.start_frame + motion.n_frames - 1
    summary = f"Animated '{obj.name}' frames {request.start_frame:g}-{end:g} ({motion.duration_s:.2f} s of speech) as {where}"
    speech = motion.info.get("speech")
    if speech is not None:
        settings = getattr(bpy.context.scene, "talking_head", None)
        scene = bpy.context.scene
        if settings is not None:
            settings.words_heard = " ".join(w.text for w in speech.words)
        if request.word_markers:
            count = write_word_markers(scene, obj.name, speech.words, request.start_frame, request.fps)
            summary += f"; {count} word markers"
        if speech.warnings:
            summary += ". " + " ".join(speech.warnings)
    return summary


class GenerateJob(WorkerJob):
    """`compute` in a worker thread; the owner polls `done` and calls `apply` on the main thread."""

    def __init__(self, request: GenerateRequest):
        super().__init__(request, compute, "generation")
