"""Where the speech comes from: a sound strip (trims and offsets honoured) or a file."""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from ..core.errors import AudioError
from .compat import scene_fps, sound_strips


@dataclass
class AudioSource:
    """A window of an audio file and the scene frame at which its first sample plays."""

    path: str
    offset_s: float
    duration_s: float | None
    start_frame: float
    label: str


def from_strip(scene: bpy.types.Scene, strip_name: str) -> AudioSource:
    strips = {s.name: s for s in sound_strips(scene)}
    if strip_name not in strips:
        names = ", ".join(strips) or "none"
        raise AudioError(f"Sound strip '{strip_name}' not found in scene '{scene.name}' (sound strips: {names}). "
                         "Pick a strip from the list, or an audio file.")
    strip = strips[strip_name]
    if strip.sound is None:
        raise AudioError(f"Sound strip '{strip_name}' has no sound data. Re-add the audio in the Video Sequencer.")
    fps = scene_fps(scene)
    # the visible part of the strip starts frame_offset_start frames into the sound, shifted by sound_offset
    offset_s = (strip.frame_final_start - strip.frame_start) / fps + getattr(strip, "sound_offset", 0.0)
    duration_s = (strip.frame_final_end - strip.frame_final_start) / fps
    return AudioSource(
        path=bpy.path.abspath(strip.sound.filepath, library=strip.sound.library),
        offset_s=max(0.0, offset_s),
        duration_s=duration_s,
        start_frame=float(strip.frame_final_start),
        label=f"strip '{strip_name}'",
    )


def from_file(path: str, start_frame: float) -> AudioSource:
    return AudioSource(path=bpy.path.abspath(path), offset_s=0.0, duration_s=None, start_frame=float(start_frame), label=path)
