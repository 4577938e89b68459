"""Word markers on the timeline: one per aligned word, replaced on the next Generate of the same head."""

from __future__ import annotations

import json

import bpy

# scene custom property: {object name: [[marker name, frame], ...]} of the markers Talking Head made
MARKERS_PROPERTY = "talking_head_word_markers"


def write_word_markers(scene: bpy.types.Scene, object_name: str, words, start_frame: float, fps: float) -> int:
    """Remove the markers the last Generate of `object_name` made (the animator's own are never
    touched), then mark each word's start; returns how many were made."""
    made = json.loads(scene.get(MARKERS_PROPERTY, "{}"))
    for name, frame in made.pop(object_name, []):
        for marker in list(scene.timeline_markers):
            if marker.name == name and marker.frame == frame:
                scene.timeline_markers.remove(marker)
                break
    ours = []
    for word in words:
        frame = int(round(start_frame + word.start_s * fps))
        marker = scene.timeline_markers.new(word.text, frame=frame)
        ours.append([marker.name, frame])
    if ours:
        made[object_name] = ours
    scene[MARKERS_PROPERTY] = json.dumps(made)
    return len(ours)
