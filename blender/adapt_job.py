"""Style adaptation from an animated object in the scene: collected on the main thread (the
object is evaluated frame by frame, so shape keys, Mesh Cache or any deformation count), adapted
in a worker, and the style file written only when it finished and was not cancelled."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..core.audio import load_audio
from ..core.device import pick_device
from ..core.errors import AudioError, Cancelled, OutputError
from ..core.models import load_model
from ..core.styles import Style, check_style_name, save_style, style_paths
from .audio_source import AudioSource
from .compat import scene_fps
from .job import encoder_settings
from .target import check_target
from .worker import WorkerJob


@dataclass
class AdaptRequest:
    name: str
    out_path: str  # style file (.safetensors); its .json goes beside it
    audio: np.ndarray | None  # None for a video without a speech file: the video's own sound
    vertices: np.ndarray | None  # (T, V, 3) local positions, one per scene frame; None for a video
    template: np.ndarray
    triangles: np.ndarray
    fps: float
    model: str | None
    device: str
    weights_dirs: list[str] = field(default_factory=list)
    overwrite: bool = False
    encoder_cache: str | None = None
    allow_download: bool = False
    video: str = ""  # a video reference: tracked in the worker, frames video_first..video_last (0-based)
    speech_file: str = ""
    video_first: int = 0
    video_last: int = 0
    landmarks: str = ""  # the MediaPipe-to-FLAME embedding ("" for the default place)


def style_folder(preferences_folder: str, blend_path: str) -> str:
    """The preferences' styles folder, else `styles/` beside the .blend."""
    if preferences_folder:
        return bpy.path.abspath(preferences_folder)
    if not blend_path:
        raise OutputError("Save the .blend first (styles go beside it), or set a Styles Folder in the preferences.")
    return os.path.join(os.path.dirname(bpy.path.abspath(blend_path)), "styles")


def object_motion(scene: bpy.types.Scene, obj: bpy.types.Object, first: int, last: int) -> np.ndarray:
    """Evaluated local vertex positions (T, V, 3) of `obj` for frames first..last; the current
    frame is restored afterwards."""
    current, subframe = scene.frame_current, scene.frame_subframe
    frames = []
    try:
        for frame in range(first, last + 1):
            scene.frame_set(frame)
            evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
            mesh = evaluated.to_mesh()
            coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
            mesh.vertices.foreach_get("co", coords)
            evaluated.to_mesh_clear()
            frames.append(coords.reshape(-1, 3))
    finally:
        scene.frame_set(current, subframe=subframe)
    return np.stack(frames)


def collect_adapt_request(scene: bpy.types.Scene, obj: bpy.types.Object | None, source: AudioSource, first: int,
                          last: int, name: str, folder: str, model: str | None, device: str = "auto",
                          weights_dirs: list[str] | None = None, overwrite: bool = False) -> AdaptRequest:
    """Check everything and read the reference out of the scene before any work starts."""
    check_style_name(name)
    template, triangles = check_target(obj)
    if last <= first:
        raise OutputError(f"The frame range {first}-{last} is empty; set the reference's first and last frame.")
    fps = scene_fps(scene)
    if first < source.start_frame:
        raise AudioError(f"The reference starts at frame {first}, before its sound (frame {source.start_frame:g}); "
                         "move the range or the strip.")
    offset = source.offset_s + (first - source.start_frame) / fps
    duration = (last - first + 1) / fps
    if source.duration_s is not None and offset - source.offset_s + duration > source.duration_s + 1.0 / fps:
        raise AudioError(f"The range {first}-{last} runs past the end of {source.label}; shorten it.")
    out_path = style_paths(folder, name)[0]
    if os.path.exists(out_path) and not overwrite:
        raise OutputError(f"A style named '{name}' already exists in {folder}; choose another name or allow overwriting.")
    audio = load_audio(source.path, offset, duration)
    cache, online = encoder_settings()
    return AdaptRequest(name=name, out_path=out_path, audio=audio, vertices=object_motion(scene, obj, first, last),
                        template=template, triangles=triangles, fps=fps, model=model or None, device=pick_device(device),
                        weights_dirs=list(weights_dirs or []), overwrite=overwrite, encoder_cache=cache,
                        allow_download=online)


def collect_video_adapt_request(obj: bpy.types.Object | None, video: str, speech_file: str, first: int, last: int,
                                name: str, folder: str, model: str | None, device: str = "auto",
                                weights_dirs: list[str] | None = None, overwrite: bool = False,
                                landmarks: str = "") -> AdaptRequest:
    """Check a video reference (the file, its frame rate, length and sound) before any work; the
    tracking itself runs in the worker."""
    from ..core.video import probe_video
    from ..core.video_motion import load_embedding

    check_style_name(name)
    load_embedding(landmarks or None)
    template, triangles = check_target(obj)
    if not video:
        raise OutputError("No reference video chosen. Pick the video of the actor speaking.")
    if last <= first:
        raise OutputError(f"The frame range {first}-{last} is empty; set the video's first and last frame.")
    info = probe_video(video)
    if first < 1 or first > info.n_frames:
        raise OutputError(f"The video has frames 1-{info.n_frames}; the first frame {first} is outside them.")
    if not speech_file and not info.has_audio:
        raise AudioError(f"{video} has no sound track; choose the speech as an audio file.")
    out_path = style_paths(folder, name)[0]
    if os.path.exists(out_path) and not overwrite:
        raise OutputError(f"A style named '{name}' already exists in {folder}; choose another name or allow overwriting.")
    cache, online = encoder_settings()
    return AdaptRequest(name=name, out_path=out_path, audio=None, vertices=None, template=template,
                        triangles=triangles, fps=info.fps, model=model or None, device=pick_device(device),
                        weights_dirs=list(weights_dirs or []), overwrite=overwrite, encoder_cache=cache,
                        allow_download=online, video=video, speech_file=speech_file, video_first=first - 1,
                        video_last=min(last, info.n_frames) - 1, landmarks=landmarks)


def compute_style(request: AdaptRequest, progress=None, should_cancel=None) -> Style:
    """No bpy: safe in a worker thread."""
    from ..core.adapt import AdaptOptions, adapt_style, make_reference, video_reference  # torch: once work starts
    from ..core.encoders import configure as configure_encoders

    report = progress or (lambda fraction, message: None)
    report(0.0, "Loading model")
    configure_encoders(cache_dir=request.encoder_cache, allow_download=request.allow_download)
    model = load_model(request.model, request.device, request.weights_dirs)
    if request.video:
        reference = video_reference(request.video, request.speech_file or None, request.template, request.triangles,
                                    model.fps, request.video_first, request.video_last,
                                    lambda f, m: report(0.5 * f, m), should_cancel, request.landmarks or None)
        progress = (lambda f, m: report(0.5 + 0.5 * f, m)) if progress else None
    else:
        reference = make_reference(request.audio, request.vertices, request.template, request.triangles,
                                   request.fps, model.fps)
    if should_cancel and should_cancel():
        raise Cancelled("Adaptation cancelled; no style was written.")
    return adapt_style(model, reference, request.name, AdaptOptions(), progress, should_cancel)


def save_result(request: AdaptRequest, style: Style) -> str:
    path = save_style(style, request.out_path, overwrite=request.overwrite)
    errors = style.info["held_back_error_mm2"]
    return (f"Style '{style.name}' saved to {path} ({style.info['seconds']:.0f} s; held-back error "
            f"{errors['unadapted']:.2f} -> {errors['final']:.2f} mm²)")


class AdaptJob(WorkerJob):
    """`compute_style` in a worker thread, polled by the modal operator."""

    def __init__(self, request: AdaptRequest):
        super().__init__(request, compute_style, "adaptation")
