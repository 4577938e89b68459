"""Turn the panel's settings (scene.talking_head) and the preferences into a GenerateRequest."""

from __future__ import annotations

import bpy

from ..core.errors import AudioError
from ..core.models import Conditioning
from ..preferences import preferences
from ..properties import AVERAGE_STYLE, model_hears_phones, model_samples, style_folders
from .adapt_job import AdaptRequest, collect_adapt_request, collect_video_adapt_request, style_folder
from .audio_source import from_file, from_strip
from .compat import scene_fps
from .intensity import intensity_curve
from .job import GenerateRequest, collect_request


def request_from_panel(context: bpy.types.Context) -> GenerateRequest:
    scene = context.scene
    settings = scene.talking_head
    if settings.audio_source == "STRIP":
        if not settings.strip:
            raise AudioError("No sound strip chosen. Add speech in the Video Sequencer, or switch Audio to File.")
        source = from_strip(scene, settings.strip)
    else:
        source = from_file(settings.audio_file, settings.start_frame)
    prefs = preferences(context)
    start = None if (settings.audio_source == "STRIP" and settings.use_strip_start) else settings.start_frame
    samples = model_samples(context, settings.model)  # Seed and Takes are shown, and used, only then
    conditioning = Conditioning(emotion=settings.emotion, intensity=settings.intensity,
                                style=None if settings.style in ("", AVERAGE_STYLE) else settings.style,
                                seed=settings.seed if samples else 0,
                                guidance=settings.guidance if samples and settings.guidance > 0 else None,
                                lip_seal=settings.lip_seal if (model_hears_phones(context, settings.model)
                                                               or settings.transcribe or dialogue_of(settings))
                                else None)
    if settings.emotion not in ("neutral", "from_audio"):
        conditioning.intensity_curve = intensity_curve(
            scene, source.start_frame if start is None else start, _duration(source), scene_fps(scene))
    return collect_request(
        scene,
        context.active_object,
        source,
        conditioning,
        model=settings.model,
        device=prefs.device if prefs else "auto",
        mode=settings.output_mode,
        keep_takes=settings.keep_takes,
        start_frame=start,
        cache_folder=settings.cache_folder,
        weights_dirs=[prefs.weights_folder] if prefs and prefs.weights_folder else [],
        style_dirs=style_folders(context),
        takes=settings.takes if samples else 1,
        transcript=dialogue_of(settings),
        transcribe=settings.transcribe,
        word_markers=settings.word_markers,
    )


def dialogue_of(settings) -> str | None:
    """The words the animator gave (a Text datablock, else the Dialogue field); None for none."""
    if settings.dialogue_text is not None:
        return settings.dialogue_text.as_string()
    return settings.dialogue if settings.dialogue.strip() else None


def _duration(source) -> float:
    if source.duration_s is not None:
        return source.duration_s
    import soundfile

    try:
        return max(0.0, soundfile.info(source.path).duration - source.offset_s)
    except RuntimeError:
        return 0.0  # unreadable: Generate reports it when it loads the audio


def adapt_request_from_panel(context: bpy.types.Context) -> AdaptRequest:
    scene = context.scene
    settings = scene.talking_head
    prefs = preferences(context)
    if settings.reference_kind == "VIDEO":
        return collect_video_adapt_request(
            settings.reference_object, bpy.path.abspath(settings.reference_video),
            bpy.path.abspath(settings.reference_speech) if settings.reference_speech else "",
            settings.reference_start, settings.reference_end, settings.style_name.strip(),
            style_folder(prefs.styles_folder if prefs else "", bpy.data.filepath),
            model=settings.model, device=prefs.device if prefs else "auto",
            weights_dirs=[prefs.weights_folder] if prefs and prefs.weights_folder else [],
            overwrite=settings.overwrite_style,
            landmarks=bpy.path.abspath(prefs.landmark_embedding) if prefs and prefs.landmark_embedding else "")
    if settings.reference_audio_source == "STRIP":
        if not settings.reference_strip:
            raise AudioError("No reference sound strip chosen. Add the reference's speech in the Video Sequencer.")
        source = from_strip(scene, settings.reference_strip)
    else:
        source = from_file(settings.reference_file, settings.reference_start)
    return collect_adapt_request(
        scene, settings.reference_object, source, settings.reference_start, settings.reference_end,
        settings.style_name.strip(), style_folder(prefs.styles_folder if prefs else "", bpy.data.filepath),
        model=settings.model, device=prefs.device if prefs else "auto",
        weights_dirs=[prefs.weights_folder] if prefs and prefs.weights_folder else [],
        overwrite=settings.overwrite_style,
    )
