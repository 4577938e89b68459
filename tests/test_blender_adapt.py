"""Adapt Style inside bpy: a reference performance in the scene becomes a style file that the
style list offers and Generate uses; cancel and bad input leave nothing behind."""

from __future__ import annotations

import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="bpy 5.0.1 (Python 3.11) runs these tests; see README")

from blender_helpers import (  # noqa: E402
    OperatorDriver, add_mesh, add_sound_strip, addon_module, new_scene, register_extension,
)
from conftest import LONGER_CLIP, shared_path  # noqa: E402


@pytest.fixture(scope="module")
def addon(tmp_path_factory, weights_dir):
    return register_extension(tmp_path_factory.mktemp("ext"))


@pytest.fixture
def reference_scene(addon, flame_mesh, tmp_path):
    """A saved .blend with a head animated (by Generate) to a 7 s sound strip starting at frame 1."""
    scene = new_scene(fps=30)
    verts, faces = flame_mesh
    head = add_mesh("Actor", verts, faces)
    add_sound_strip(scene, shared_path(LONGER_CLIP), 1)
    settings = scene.talking_head
    settings.strip = "speech"
    settings.intensity = 1.0
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    assert bpy.ops.talkinghead.generate("EXEC_DEFAULT") == {"FINISHED"}
    settings.reference_object = head
    settings.reference_strip = "speech"
    settings.reference_start, settings.reference_end = 1, 150
    settings.style_name = "Actor One"
    return scene, tmp_path / "styles"


def drive_adapt() -> tuple[set, OperatorDriver]:
    driver = OperatorDriver(addon_module("operators.adapt_style").TALKINGHEAD_OT_adapt_style)
    if not driver.start_job(bpy.context):
        return {"CANCELLED"}, driver
    return driver.run_modal(bpy.context, timeout=300), driver


def test_adapt_style_writes_a_style_that_generate_can_use(reference_scene):
    scene, styles = reference_scene
    frame_before = scene.frame_current
    result, driver = drive_adapt()
    assert result == {"FINISHED"}, driver.reports
    assert (styles / "Actor One.safetensors").is_file() and (styles / "Actor One.json").is_file()
    assert "Style 'Actor One' saved" in driver.reports[-1][1]
    assert scene.frame_current == frame_before  # evaluating the reference restored the frame

    settings = scene.talking_head
    names = [item.identifier for item in settings.bl_rna.properties["style"].enum_items_static] or \
        [i[0] for i in addon_module("properties")._style_items(settings, bpy.context)]
    assert "Actor One" in names
    settings.style = "Actor One"
    assert bpy.ops.talkinghead.generate("EXEC_DEFAULT") == {"FINISHED"}


def test_cancel_and_bad_input_leave_no_style(reference_scene):
    scene, styles = reference_scene
    driver = OperatorDriver(addon_module("operators.adapt_style").TALKINGHEAD_OT_adapt_style)
    assert driver.start_job(bpy.context)
    assert driver.run_modal(bpy.context, cancel_after=0) == {"CANCELLED"}
    assert not styles.exists() or not any(styles.iterdir())
    assert "no style was written" in driver.reports[-1][1]

    settings = scene.talking_head
    for change, message in ((dict(reference_start=0), "before its sound"),
                            (dict(reference_end=1), "range 1-1 is empty"),
                            (dict(style_name="../evil"), "is not usable"),
                            (dict(reference_object=None), "No active object")):
        saved = {k: getattr(settings, k) for k in change}
        for key, value in change.items():
            setattr(settings, key, value)
        result, driver = drive_adapt()
        assert result == {"CANCELLED"} and message in driver.reports[-1][1], driver.reports
        for key, value in saved.items():
            setattr(settings, key, value)
    assert not styles.exists() or not any(styles.iterdir())


def test_adapt_command_line_inside_blender(reference_scene, tmp_path):
    """`-c talking_head adapt` takes the same arguments as `python -m core adapt`, here on files
    exported from the scene's reference."""
    import soundfile

    from core.audio import load_audio

    scene, _ = reference_scene
    motion = addon_module("blender.adapt_job").object_motion(scene, scene.talking_head.reference_object, 1, 150)
    np.save(tmp_path / "ref.npy", motion)
    soundfile.write(str(tmp_path / "ref.wav"), load_audio(str(shared_path(LONGER_CLIP)))[: 16000 * 5], 16000)
    import importlib

    cli = importlib.import_module("bl_ext.testrepo.talking_head.blender.cli")
    arguments = ["adapt", "--audio", str(tmp_path / "ref.wav"), "--motion", str(tmp_path / "ref.npy"),
                 "--template", str(shared_path("flame/FLAME_sample.ply")), "--name", "FromFiles",
                 "--out", str(tmp_path / "out_styles" / "FromFiles.safetensors")]
    assert cli.main(arguments) == 0
    assert os.path.getsize(tmp_path / "out_styles" / "FromFiles.safetensors") < 1_000_000
    assert cli.main(arguments) == 2  # an existing style is not overwritten


def test_adapt_style_from_a_video_in_the_panel(addon, flame_mesh, tmp_path):
    """The Video reference: a clip of a head speaking (rendered here with known motion) and the actor's
    FLAME head in the scene become a style, through the same modal operator."""
    pytest.importorskip("mediapipe", reason="adapting from video needs mediapipe")
    from core.audio import load_audio
    from core.corpus.articulation import FaceRig, SpeakingStyle
    from core.head_frame import estimate_head_frame
    from core.preview import frame_bounds, render_clip
    from core.video import write_video
    from conftest import LIBRIVOX_CLIP

    verts, faces = flame_mesh
    canonical = estimate_head_frame(verts, faces).points_to_canonical(verts)
    audio = load_audio(str(shared_path(LIBRIVOX_CLIP)))
    rig = FaceRig(canonical, faces)
    n = int(len(audio) / 16000 * 30)
    curves = np.zeros((n, 6))
    curves[:, 0] = np.clip(6 + 7 * np.sin(np.arange(n) / 30 * 2 * np.pi * 2), 0, None)
    moving = rig.deform(curves, SpeakingStyle())
    frames = render_clip(moving, faces, 256, frame_bounds(canonical), crop=0.6)
    write_video(str(tmp_path / "actor.mkv"), frames, 30.0, audio)

    scene = new_scene(fps=24)
    head = add_mesh("ActorHead", verts, faces)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "video_shot.blend"))
    settings = scene.talking_head
    settings.reference_kind, settings.reference_object = "VIDEO", head
    settings.reference_video = str(tmp_path / "actor.mkv")
    settings.reference_start, settings.reference_end = 1, n
    settings.style_name = "From Video"
    result, driver = drive_adapt()
    assert result == {"FINISHED"}, driver.reports
    assert (tmp_path / "styles" / "From Video.safetensors").is_file()

    settings.reference_video = str(tmp_path / "missing.mkv")
    result, driver = drive_adapt()
    assert result == {"CANCELLED"} and "Video not found" in driver.reports[-1][1]
