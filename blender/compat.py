"""Differences between Blender 4.2 LTS and 5.x in the APIs we use, in one place."""

from __future__ import annotations

import bpy


def sound_strips(scene: bpy.types.Scene) -> list:
    """All sound strips of the scene's sequencer (5.0: strips_all; 4.2-4.x: sequences_all)."""
    editor = scene.sequence_editor
    if editor is None:
        return []
    strips = getattr(editor, "strips_all", None)
    if strips is None:
        strips = editor.sequences_all
    return [s for s in strips if s.type == "SOUND"]


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base


def assign_action(id_data: bpy.types.ID, action: bpy.types.Action) -> None:
    """Make `action` animate `id_data`, with a slot where the version has slots (4.4+)."""
    anim = id_data.animation_data or id_data.animation_data_create()
    anim.action = action
    if hasattr(action, "slots"):
        slot = action.slots[0] if len(action.slots) else action.slots.new(id_type=id_data.id_type, name=id_data.name)
        anim.action_slot = slot


def new_fcurves(action: bpy.types.Action, id_data: bpy.types.ID, data_paths: list[str]) -> list:
    """F-curves for `data_paths` in `action` (channel bag of its slot on 4.4+, action.fcurves before)."""
    if hasattr(action, "slots"):
        from bpy_extras import anim_utils

        slot = id_data.animation_data.action_slot
        fcurves = anim_utils.action_ensure_channelbag_for_slot(action, slot).fcurves
    else:
        fcurves = action.fcurves
    return [fcurves.new(path) for path in data_paths]


def action_fcurves(action: bpy.types.Action) -> list:
    """Every F-curve of `action`, whatever the version stores them in."""
    if hasattr(action, "layers") and len(action.layers):
        curves = []
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    curves.extend(bag.fcurves)
        return curves
    return list(getattr(action, "fcurves", []))


def remove_fcurves(action: bpy.types.Action, data_paths: set[str]) -> None:
    """Remove the F-curves of `action` that animate any of `data_paths`."""
    if hasattr(action, "layers") and len(action.layers):
        bags = [bag.fcurves for layer in action.layers for strip in layer.strips for bag in strip.channelbags]
    else:
        bags = [action.fcurves]
    for fcurves in bags:
        for fcurve in [f for f in fcurves if f.data_path in data_paths]:
            fcurves.remove(fcurve)
