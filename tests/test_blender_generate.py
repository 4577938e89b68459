"""The extension inside bpy: registration, the modal Generate operator, both output modes, bad inputs."""

from __future__ import annotations


import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="bpy 5.0.1 (Python 3.11) runs these tests; see README")

from blender_helpers import (  # noqa: E402
    OperatorDriver, add_mesh, add_sound_strip, addon_module, evaluated_vertices, new_scene,
    register_extension, scene_snapshot,
)
from conftest import LONGER_CLIP, shared_path  # noqa: E402

TOLERANCE_M = 1e-4  # 0.1 mm, as the issue asks


@pytest.fixture(scope="module")
def addon(tmp_path_factory, weights_dir):
    return register_extension(tmp_path_factory.mktemp("ext"))


@pytest.fixture
def head(addon, flame_mesh):
    new_scene(fps=24)
    # transcribing every Generate costs a second or two; the tests about words, and the
    # frame-by-frame test in a scene of its own, keep it on as the panel has it by default
    bpy.context.scene.talking_head.transcribe = False
    verts, faces = flame_mesh
    return add_mesh("Head", verts, faces)


def drive_generate(**settings) -> tuple[set, OperatorDriver]:
    """Press Generate the way the panel does, then drive modal() to the end."""
    for key, value in settings.items():
        setattr(bpy.context.scene.talking_head, key, value)
    driver = OperatorDriver(addon_module("operators.generate").TALKINGHEAD_OT_generate)
    if not driver.start_job(bpy.context):
        return {"CANCELLED"}, driver
    return driver.run_modal(bpy.context), driver


def expected_vertices(obj, template, audio_path, fps, offset_s=0.0, duration_s=None) -> np.ndarray:
    """What the core predicts for this head and audio, independently of the Blender writers."""
    from core.audio import load_audio
    from core.models import Conditioning, load_model
    from core.pipeline import animate

    from core.speech import speech_timing

    faces = np.array([p.vertices[:] for p in obj.data.polygons])
    audio = load_audio(str(audio_path), offset_s, duration_s)
    speech = speech_timing(audio) if bpy.context.scene.talking_head.transcribe else None
    return animate(audio, template, faces, load_model("default"), Conditioning(speech=speech), fps).vertices(template)


def test_extension_registers_its_classes(addon):
    assert hasattr(bpy.types, "TALKINGHEAD_PT_main")
    assert hasattr(bpy.types, "TALKINGHEAD_OT_generate") and hasattr(bpy.types, "TALKINGHEAD_OT_cancel")
    assert hasattr(bpy.context.scene, "talking_head")
    assert addon.__name__ == "bl_ext.testrepo.talking_head"


def test_panel_draws_without_errors(head):
    from blender_helpers import addon_module

    panel_cls = addon_module("panels.main").TALKINGHEAD_PT_main

    class Layout:  # records what would be drawn
        def __init__(self):
            self.labels = []

        def __getattr__(self, name):
            return lambda *a, **k: self if name in ("column", "box", "row") else self.labels.append((name, a, k))

    layout = Layout()
    panel = OperatorDriver(panel_cls)
    panel.layout = layout
    panel_cls.draw(panel, bpy.context)
    drawn = [k.get("text", "") for name, _, k in layout.labels if name == "label"]
    assert any("Target: Head (FLAME)" in text for text in drawn)
    assert any(name == "operator" and a[0] == "talkinghead.generate" for name, a, _ in layout.labels)


@pytest.mark.parametrize("fps", [24, 29.97, 60])
def test_shape_keys_match_the_prediction_frame_by_frame(head, flame_mesh, fps):
    scene = new_scene(fps=fps)
    head = add_mesh("Head", *flame_mesh)
    clip = shared_path(LONGER_CLIP)
    strip = add_sound_strip(scene, clip, frame_start=11)
    strip.frame_offset_start = 12  # trimmed: the mouth must follow the part that plays
    result, driver = drive_generate(audio_source="STRIP", strip="speech", output_mode="SHAPEKEYS")
    assert result == {"FINISHED"}, driver.reports

    real_fps = scene.render.fps / scene.render.fps_base
    expected = expected_vertices(head, flame_mesh[0], clip, real_fps, offset_s=12 / real_fps,
                                 duration_s=(strip.frame_final_end - strip.frame_final_start) / real_fps)
    first = strip.frame_final_start
    assert first == 23
    assert len(expected) == strip.frame_final_end - strip.frame_final_start  # ends with the sound
    for i in list(range(0, len(expected), 7)) + [len(expected) - 1]:
        error = np.abs(evaluated_vertices(head, first + i) - expected[i]).max()
        assert error < TOLERANCE_M, f"frame {first + i}: {error * 1000:.3f} mm"

    keys = head.data.shape_keys
    names = [k.name for k in keys.key_blocks]
    # the model's keys, its mean (faded out in pauses), the jaw and the seal: no constant mean key
    assert names[0] == "Basis" and "TH1.mean" not in names and len(names) <= 1 + 6 + 3
    action = keys.animation_data.action
    assert action.get("talking_head_take")
    from blender_helpers import addon_module

    curves = addon_module("blender.compat").action_fcurves(action)
    assert all(len(c.keyframe_points) == len(expected) for c in curves)
    assert all(-1.0 <= kp.co[1] <= 1.0 for c in curves for kp in c.keyframe_points)


def test_regenerate_replaces_and_keep_takes_keeps(head, speech_path):
    add_sound_strip(bpy.context.scene, speech_path, frame_start=1)
    assert drive_generate(audio_source="STRIP", strip="speech")[0] == {"FINISHED"}
    first = scene_snapshot()["objects"]["Head"]
    assert drive_generate()[0] == {"FINISHED"}
    again = scene_snapshot()
    assert again["objects"]["Head"]["shape_keys"] == first["shape_keys"]  # same keys, not duplicated
    assert len(again["actions"]) == 1

    assert drive_generate(keep_takes=True)[0] == {"FINISHED"}
    assert drive_generate(keep_takes=True)[0] == {"FINISHED"}
    takes = [a for a in bpy.data.actions if a.get("talking_head_take")]
    assert len(takes) == 3 and sum(a.use_fake_user for a in takes) == 2
    keys = bpy.data.objects["Head"].data.shape_keys
    # switching back to an older take shows that take alone: newer takes' keys are held at zero
    older = min(takes, key=lambda a: a["talking_head_take"])
    keys.animation_data.action = older
    if hasattr(older, "slots"):
        keys.animation_data.action_slot = older.slots[0]
    bpy.context.scene.frame_set(20)
    active = [k.name for k in keys.key_blocks[1:] if abs(k.value) > 1e-6]
    assert active and all(name.split(".")[0] == active[0].split(".")[0] for name in active)

    # replacing the newest take removes its keys and every hold of them, and keeps the older takes
    keys.animation_data.action = max(takes, key=lambda a: a["talking_head_take"])
    assert drive_generate(keep_takes=False)[0] == {"FINISHED"}
    compat = addon_module("blender.compat")
    prefixes = {k.name.split(".")[0] for k in keys.key_blocks[1:]}
    kept = [a for a in bpy.data.actions if a.get("talking_head_take") and a.use_fake_user]
    assert len(kept) == 2 and len(prefixes) == 3  # two kept takes + the new one, no leftovers
    referenced = {c.data_path.split('"')[1] for a in bpy.data.actions for c in compat.action_fcurves(a)}
    assert referenced <= {k.name for k in keys.key_blocks}


def test_vertex_cache_plays_the_prediction(head, flame_mesh, speech_path, tmp_path):
    scene = bpy.context.scene
    add_sound_strip(scene, speech_path, frame_start=5)
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    head = bpy.data.objects["Head"]
    result, driver = drive_generate(audio_source="STRIP", strip="speech", output_mode="CACHE")
    assert result == {"FINISHED"}, driver.reports
    modifier = head.modifiers["Talking Head cache"]
    assert modifier.filepath.startswith("//") and (tmp_path / "shot_Head_talkinghead.pc2").is_file()
    expected = expected_vertices(head, flame_mesh[0], speech_path, 24.0)
    for i in (0, 13, 40, len(expected) - 1):
        error = np.abs(evaluated_vertices(head, 5 + i) - expected[i]).max()
        assert error < TOLERANCE_M, f"frame {5 + i}: {error * 1000:.3f} mm"


def test_cache_never_overwrites_a_file_it_did_not_write(head, speech_path, tmp_path):
    add_sound_strip(bpy.context.scene, speech_path, frame_start=1)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    foreign = tmp_path / "shot_Head_talkinghead.pc2"
    foreign.write_bytes(b"someone else's cache")
    assert drive_generate(audio_source="STRIP", strip="speech", output_mode="CACHE")[0] == {"FINISHED"}
    assert foreign.read_bytes() == b"someone else's cache"
    assert (tmp_path / "shot_Head_talkinghead_take2.pc2").is_file()


def assert_refused_and_unchanged(expected_words: str, **settings):
    before = scene_snapshot()
    result, driver = drive_generate(**settings)
    assert result == {"CANCELLED"}
    errors = [message for kind, message in driver.reports if "ERROR" in kind]
    assert errors and expected_words in errors[0], driver.reports
    assert scene_snapshot() == before
    assert not bpy.context.window_manager.talking_head_job.running
    return errors[0]


def test_a_scene_frame_rate_beyond_240_is_refused(head, speech_path):
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 1000, 1
    try:
        assert_refused_and_unchanged("frame rate from 1 to 240", audio_source="FILE", audio_file=str(speech_path))
    finally:
        scene.render.fps = 24


def test_non_flame_mesh_is_refused_with_the_vertex_count(addon):
    new_scene()
    bpy.ops.mesh.primitive_uv_sphere_add()
    message = assert_refused_and_unchanged("has 482 vertices", audio_source="FILE", audio_file="/nonexistent.wav")
    assert "5023" in message


@pytest.mark.parametrize("case, words", [("silent", "is silent"), ("corrupt", "Could not read audio"),
                                         ("missing", "not found"), ("empty", "is empty")])
def test_bad_audio_files_are_refused_and_change_nothing(head, audio_files, case, words):
    assert_refused_and_unchanged(words, audio_source="FILE", audio_file=str(audio_files[case]))


def test_stereo_48k_file_animates(head, audio_files):
    result, driver = drive_generate(audio_source="FILE", audio_file=str(audio_files["stereo48k"]), start_frame=3)
    assert result == {"FINISHED"}, driver.reports
    assert any("frames 3-74" in m for _, m in driver.reports)  # 2.99 s at 24 fps = 72 frames


def test_unsaved_blend_in_cache_mode_says_save_first(head, speech_path):
    message = assert_refused_and_unchanged("save the .blend first", audio_source="FILE",
                                           audio_file=str(speech_path), output_mode="CACHE", cache_folder="")
    assert "cache folder" in message


def test_no_strip_chosen(head):
    assert_refused_and_unchanged("No sound strip chosen", audio_source="STRIP")


def test_cancel_half_way_leaves_the_scene_as_it_was(head):
    clip = shared_path(LONGER_CLIP)
    scene = bpy.context.scene
    add_sound_strip(scene, clip, frame_start=1)
    scene.talking_head.audio_source, scene.talking_head.strip = "STRIP", "speech"
    before = scene_snapshot()
    driver = OperatorDriver(addon_module("operators.generate").TALKINGHEAD_OT_generate)
    assert driver.start_job(bpy.context)
    assert bpy.context.window_manager.talking_head_job.running
    assert driver.run_modal(bpy.context, cancel_after=1) == {"CANCELLED"}
    assert scene_snapshot() == before
    assert any("cancelled" in m for _, m in driver.reports)
    assert not bpy.context.window_manager.talking_head_job.running


def test_undo_restores_the_scene_before_generate(head, speech_path):
    window = bpy.context.window_manager.windows[0]
    area = next(a for a in window.screen.areas if a.type == "VIEW_3D")
    scene = bpy.context.scene
    scene.talking_head.audio_source, scene.talking_head.audio_file = "FILE", str(speech_path)
    with bpy.context.temp_override(window=window, area=area):
        bpy.ops.ed.undo_push(message="initial")  # a fresh file's first push only starts the undo stack
        bpy.ops.ed.undo_push(message="before generate")
        before = scene_snapshot()
        assert bpy.ops.talkinghead.generate() == {"FINISHED"}  # EXEC path: scripts and undo
        assert scene_snapshot()["objects"]["Head"]["shape_keys"]
        bpy.ops.ed.undo()
    assert scene_snapshot()["objects"]["Head"]["shape_keys"] == before["objects"]["Head"]["shape_keys"] == []


def test_blender_command_line_is_registered(addon, capsys):
    assert addon._cli_handle is not None
    assert addon._cli(["bake", "--help"]) == 0
    assert "--shots" in capsys.readouterr().out
    assert addon._cli(["render"]) == 2


def _panel_props(panel_name: str = "panels.main") -> list[str]:
    """The property names the Generate panel draws for the current scene."""
    panel_cls = addon_module(panel_name).TALKINGHEAD_PT_main
    drawn = []

    class Layout:
        def __getattr__(self, name):
            return (lambda *a, **k: self) if name in ("column", "box", "row") else \
                (lambda *a, **k: drawn.append(a[1]) if name == "prop" and len(a) > 1 else None)

    panel = OperatorDriver(panel_cls)
    panel.layout = Layout()
    panel_cls.draw(panel, bpy.context)
    return drawn


def test_takes_become_actions_with_their_seeds(head, speech_path, diffusion_model):
    settings = bpy.context.scene.talking_head
    assert not {"seed", "takes", "guidance"} & set(_panel_props())  # the default model does not sample
    settings.model = diffusion_model
    assert {"seed", "takes", "guidance"} <= set(_panel_props())

    add_sound_strip(bpy.context.scene, speech_path, frame_start=1)
    result, driver = drive_generate(audio_source="STRIP", strip="speech", seed=5, takes=3, guidance=2.5)
    assert result == {"FINISHED"}, driver.reports
    assert any("3 takes" in m for _, m in driver.reports), driver.reports
    takes = sorted((a for a in bpy.data.actions if a.get("talking_head_take")), key=lambda a: a["talking_head_take"])
    assert [a["talking_head_seed"] for a in takes] == [5, 6, 7]
    assert [a["talking_head_guidance"] for a in takes] == [2.5] * 3  # seed and guidance remake a take
    assert all(a.use_fake_user for a in takes)  # none is lost when the animator switches between them
    assert all(f"seed {a['talking_head_seed']}" in a.name for a in takes)
    keys = bpy.data.objects["Head"].data.shape_keys
    assert keys.animation_data.action == takes[-1]

    def face_over_time(action):
        keys.animation_data.action = action
        if hasattr(action, "slots"):
            keys.animation_data.action_slot = action.slots[0]
        return np.stack([evaluated_vertices(bpy.data.objects["Head"], frame) for frame in (15, 30, 45, 60)])

    # two takes can share a latent code at one frame; over a second of speech they must differ
    shapes = [face_over_time(a) for a in takes]
    assert np.abs(shapes[0] - shapes[1]).max() > 1e-5 and np.abs(shapes[1] - shapes[2]).max() > 1e-5


def test_takes_in_cache_mode_write_one_file_each(head, speech_path, diffusion_model, tmp_path):
    add_sound_strip(bpy.context.scene, speech_path, frame_start=1)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    bpy.context.scene.talking_head.model = diffusion_model
    result, driver = drive_generate(audio_source="STRIP", strip="speech", output_mode="CACHE", takes=2)
    assert result == {"FINISHED"}, driver.reports
    files = sorted(p.name for p in tmp_path.glob("*.pc2"))
    assert len(files) == 2, files
    from core.mesh_io import read_pc2

    first, second = (read_pc2(str(tmp_path / name))[0] for name in files)
    assert first.shape == second.shape and np.abs(first - second).max() > 1e-5
    modifier = bpy.data.objects["Head"].modifiers["Talking Head cache"]
    assert modifier.filepath.endswith(files[0])


def test_takes_for_a_model_that_does_not_sample_are_refused_before_any_change(head, speech_path):
    job = addon_module("blender.job")
    source = addon_module("blender.audio_source").from_file(str(speech_path), 1)
    before = scene_snapshot()
    with pytest.raises(addon_module("core.errors").ModelError, match="identical"):
        job.collect_request(bpy.context.scene, bpy.data.objects["Head"], source,
                            addon_module("core.models").Conditioning(), takes=2)
    with pytest.raises(addon_module("core.errors").ModelError, match="does not sample"):
        job.collect_request(bpy.context.scene, bpy.data.objects["Head"], source,
                            addon_module("core.models").Conditioning(guidance=3.0))
    assert scene_snapshot() == before


def test_dialogue_places_the_words_and_markers_are_replaced_not_piled_up(head, speech_path):
    scene = bpy.context.scene
    add_sound_strip(scene, speech_path, frame_start=5)
    scene.timeline_markers.new("animator's own", frame=3)
    settings = scene.talking_head
    settings.dialogue_text = None
    result, driver = drive_generate(audio_source="STRIP", strip="speech", dialogue="he was not an ill disposed young man",
                                    word_markers=True)
    assert result == {"FINISHED"}, driver.reports
    markers = sorted((m.frame, m.name) for m in scene.timeline_markers)
    words = [name for _, name in markers if name != "animator's own"]
    assert words == ["he", "was", "not", "an", "ill", "disposed", "young", "man"]
    assert markers[0] == (3, "animator's own") and all(frame >= 5 for frame, name in markers[1:])
    assert settings.words_heard == "he was not an ill disposed young man"
    # a second Generate replaces its own markers and keeps the animator's
    assert drive_generate()[0] == {"FINISHED"}
    assert len(scene.timeline_markers) == 9 and "animator's own" in [m.name for m in scene.timeline_markers]
    # Edit as Dialogue copies what was heard into the field; a Text datablock is read instead of the field
    settings.dialogue = ""
    assert bpy.ops.talkinghead.use_words_heard() == {"FINISHED"} and settings.dialogue == settings.words_heard
    text = bpy.data.texts.new("line01")
    text.write("he was not an ill disposed young dog")
    settings.dialogue_text = text
    result, driver = drive_generate(word_markers=False)
    assert result == {"FINISHED"} and any("dog" in message for _, message in driver.reports)
    assert len(scene.timeline_markers) == 9  # markers off: the last ones stay as they were
