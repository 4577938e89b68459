"""The emotion intensity over a shot, when the animator keyframed it on the panel."""

from __future__ import annotations

import bpy
import numpy as np

DATA_PATH = "talking_head.intensity"


def intensity_curve(scene: bpy.types.Scene, start_frame: float, duration_s: float, fps: float) -> np.ndarray | None:
    """The keyframed intensity sampled at every scene frame of the speech, or None when it is not
    animated (the constant slider value applies)."""
    animation = scene.animation_data
    action = animation.action if animation else None
    if action is None:
        return None
    from .compat import action_fcurves

    fcurve = next((f for f in action_fcurves(action) if f.data_path == DATA_PATH), None)
    if fcurve is None:
        return None
    frames = start_frame + np.arange(max(2, int(round(duration_s * fps)) + 1))
    return np.clip(np.array([fcurve.evaluate(float(f)) for f in frames], dtype=np.float32), 0.0, 1.0)
