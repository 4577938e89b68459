"""Output mode "shape keys": the motion's basis as shape keys, their weights as one Action.

Keys are named TH<take>.<n> (TH1.000, ... until takes are kept), so a re-generate replaces exactly
the keys and Action it made before and nothing the animator made. Keyframes are written in bulk.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core.pipeline import SceneMotion
from .compat import action_fcurves, assign_action, new_fcurves, remove_fcurves

TAKE_PROPERTY = "talking_head_take"  # custom property marking Actions this add-on made
SEED_PROPERTY = "talking_head_seed"  # the seed of a sampled take
GUIDANCE_PROPERTY = "talking_head_guidance"  # with the seed, what remakes the take
KEY_PREFIX = "TH"
_LINEAR = 1  # FCurve keyframe interpolation enum value of 'LINEAR' for foreach_set


def _is_ours(name: str) -> bool:
    head, dot, _ = name.partition(".")
    return bool(dot) and head.startswith(KEY_PREFIX) and (head == KEY_PREFIX or head[len(KEY_PREFIX):].isdigit())


def _take_actions() -> list[bpy.types.Action]:
    return [a for a in bpy.data.actions if a.get(TAKE_PROPERTY)]


def _keys_used_by(actions: list[bpy.types.Action]) -> set[str]:
    """Keys the takes really animate; a single zero keyframe only holds another take's key at rest."""
    used = set()
    for action in actions:
        for fcurve in action_fcurves(action):
            if fcurve.data_path.startswith('key_blocks["') and len(fcurve.keyframe_points) > 1:
                used.add(fcurve.data_path.split('"')[1])
    return used


def _set_keys(fcurve, frames: np.ndarray, values: np.ndarray) -> None:
    fcurve.keyframe_points.add(len(frames))
    fcurve.keyframe_points.foreach_set("co", np.column_stack([frames, values]).astype(np.float32).ravel())
    fcurve.keyframe_points.foreach_set("interpolation", np.full(len(frames), _LINEAR, dtype=np.int32))
    fcurve.update()


def write_shape_keys(obj: bpy.types.Object, motion: SceneMotion, start_frame: float, keep_takes: bool,
                     numbered: bool | None = None, seed: int | None = None) -> bpy.types.Action:
    """Write `motion` onto `obj` from `start_frame`; returns the new Action.

    keep_takes: the Action this replaces is kept (fake user) instead of removed. numbered: the new
    Action's name carries its take number (default: keep_takes), and `seed` when given."""
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    key = obj.data.shape_keys
    rest = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    key.reference_key.data.foreach_get("co", rest)
    rest = rest.reshape(-1, 3)

    previous = key.animation_data.action if key.animation_data else None
    kept = [a for a in _take_actions() if a.use_fake_user]
    if previous is not None and previous.get(TAKE_PROPERTY) and not previous.use_fake_user:
        if keep_takes:
            previous.use_fake_user = True  # stays in the file for the animator to audition
            kept.append(previous)
        else:
            bpy.data.actions.remove(previous)
    take = 1 + max((int(a[TAKE_PROPERTY]) for a in kept), default=0)
    prefix = f"{KEY_PREFIX}{take}"  # TH1 until takes are kept; a kept take's keys are never reused

    # remove our keys nothing kept refers to (the replaced take's); never the animator's own keys
    still_used = _keys_used_by(kept)
    removed = set()
    for block in list(key.key_blocks):
        if _is_ours(block.name) and block.name not in still_used:
            removed.add(f'key_blocks["{block.name}"].value')
            obj.shape_key_remove(block)
    for old in kept:  # their zero-holds of the removed keys go too
        remove_fcurves(old, removed)

    # normalise each key so its weight spans [-1, 1]: sliders stay in range and read naturally
    shapes = [motion.mean] + list(motion.basis)
    weights = [np.ones(motion.n_frames, dtype=np.float32)] + list(motion.coefficients.T)
    names = [f"{prefix}.mean"] + [f"{prefix}.{i:03d}" for i in range(len(motion.basis))]
    if not np.any(motion.mean):  # the phone layer carries the model's mean as a key of its own
        shapes, weights, names = shapes[1:], weights[1:], names[1:]
    for i in range(0 if names[0] != f"{prefix}.mean" else 1, len(shapes)):
        peak = float(np.abs(weights[i]).max())
        if peak > 0:
            shapes[i], weights[i] = shapes[i] * peak, weights[i] / peak
    for name, shape in zip(names, shapes):
        block = obj.shape_key_add(name=name, from_mix=False)
        block.points.foreach_set("co", (rest + shape).astype(np.float32).ravel())
        block.slider_min, block.slider_max = -1.0, 1.0
        block.value = 0.0

    numbered = keep_takes if numbered is None else numbered
    action = bpy.data.actions.new(f"{obj.name} talking head" + (f" take {take}" if numbered else "")
                                  + (f" seed {seed}" if seed is not None else ""))
    action[TAKE_PROPERTY] = take
    if seed is not None:
        action[SEED_PROPERTY] = int(seed)  # a take can be made again from its seed
        if motion.info.get("guidance") is not None:
            action[GUIDANCE_PROPERTY] = float(motion.info["guidance"])
    assign_action(key, action)
    frames = start_frame + np.arange(motion.n_frames, dtype=np.float64)
    for fcurve, values in zip(new_fcurves(action, key, [f'key_blocks["{n}"].value' for n in names]), weights):
        _set_keys(fcurve, frames, values)
    # older takes' keys stay at zero under this take, and this take's keys at zero under theirs,
    # so switching Actions always shows exactly one take
    others = sorted(_keys_used_by(kept) - set(names))
    for fcurve in new_fcurves(action, key, [f'key_blocks["{n}"].value' for n in others]):
        _set_keys(fcurve, frames[:1], np.zeros(1))
    for old in kept:
        slot_owner_was = key.animation_data.action
        assign_action(key, old)
        for fcurve in new_fcurves(old, key, [f'key_blocks["{n}"].value' for n in names]):
            _set_keys(fcurve, np.array([start_frame]), np.zeros(1))
        assign_action(key, slot_owner_was)
    return action
