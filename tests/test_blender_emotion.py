"""Emotion in Blender: a keyframed intensity becomes a per-frame curve, and an emotion model uses it."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="bpy 5.0.1 (Python 3.11) runs these tests; see README")

from blender_helpers import add_mesh, add_sound_strip, addon_module, new_scene, register_extension  # noqa: E402
from conftest import LIBRIVOX_CLIP, shared_path  # noqa: E402


@pytest.fixture(scope="module")
def addon(tmp_path_factory, weights_dir):
    import torch

    from core.models import build_model, save_model
    from test_emoface import TINY

    torch.manual_seed(0)
    model = build_model(dict(TINY))
    for basis in (model.content_basis, model.emotion_basis):
        torch.nn.init.normal_(basis.weight, std=2e-3)
    save_model(model, str(weights_dir / "emotion_tiny"))
    return register_extension(tmp_path_factory.mktemp("ext"))


def test_keyframed_intensity_drives_an_emotion_model(addon, flame_mesh):
    scene = new_scene(fps=30)
    verts, faces = flame_mesh
    add_mesh("Head", verts, faces)
    add_sound_strip(scene, shared_path(LIBRIVOX_CLIP), 10)
    settings = scene.talking_head
    settings.strip = "speech"
    settings.model = "emotion_tiny"
    settings.emotion = "happy"
    settings.intensity = 0.0
    settings.keyframe_insert("intensity", frame=10)
    settings.intensity = 1.0
    settings.keyframe_insert("intensity", frame=70)
    request = addon_module("blender.panel_request").request_from_panel(bpy.context)
    curve = request.conditioning.intensity_curve
    assert curve is not None and curve[0] == pytest.approx(0.0) and curve[-1] == pytest.approx(1.0)
    assert np.all(np.diff(curve) >= -1e-6) and len(curve) >= 89  # 2.99 s at 30 fps
    assert bpy.ops.talkinghead.generate("EXEC_DEFAULT") == {"FINISHED"}

    settings.emotion = "from_audio"
    assert bpy.ops.talkinghead.generate("EXEC_DEFAULT") == {"FINISHED"}
    settings.model = "default"  # the Imitator default has no emotion control: refused, clearly
    settings.emotion = "angry"
    with pytest.raises(RuntimeError, match="has no emotion control"):
        bpy.ops.talkinghead.generate("EXEC_DEFAULT")
