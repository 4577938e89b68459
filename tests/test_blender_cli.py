"""The farm path: `tools/bake.py` (the bake without a Blender binary or symlink) with the pip bpy
module, on real .blend files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bpy", reason="bpy 5.0.1 (Python 3.11) runs these tests; see README")

from conftest import REPO  # noqa: E402

SCENE_SCRIPT = """
import sys, bpy
sys.path.insert(0, {repo!r})
from core.mesh_io import read_mesh
bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
scene.render.fps = 25
verts, faces = read_mesh({mesh!r})
mesh = bpy.data.meshes.new("Head")
mesh.from_pydata(verts.tolist(), [], faces.tolist())
scene.collection.objects.link(bpy.data.objects.new("Head", mesh))
scene.sequence_editor_create()
scene.sequence_editor.strips.new_sound("line01", {audio!r}, 1, 10)
bpy.ops.wm.save_as_mainfile(filepath={blend!r})
"""

INSPECT_SCRIPT = """
import json, sys, bpy
bpy.ops.wm.open_mainfile(filepath={blend!r})
head = bpy.data.objects["Head"]
keys = head.data.shape_keys
print(json.dumps({{
    "shape_keys": [k.name for k in keys.key_blocks] if keys else [],
    "action": keys.animation_data.action.name if keys and keys.animation_data and keys.animation_data.action else None,
    "modifiers": [[m.type, getattr(m, "filepath", "")] for m in head.modifiers],
}}))
"""


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def farm(tmp_path_factory, weights_dir, speech_path, flame_mesh):
    """A folder with a shot .blend (FLAME head + sound strip)."""
    root = tmp_path_factory.mktemp("farm")
    from conftest import shared_path

    blend = root / "shot010.blend"
    made = python(SCENE_SCRIPT.format(repo=str(REPO), mesh=str(shared_path("flame/FLAME_sample.ply")),
                                      audio=str(speech_path), blend=str(blend)))
    assert made.returncode == 0, made.stderr
    return root


def bake(farm: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / "bake.py"), *map(str, args)], cwd=farm,
                          capture_output=True, text=True, timeout=600)


def inspect(blend: Path) -> dict:
    result = python(INSPECT_SCRIPT.format(blend=str(blend)))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bake_one_shot_from_a_strip_keeps_the_input(farm):
    shot = farm / "shot010.blend"
    before = digest(shot)
    result = bake(farm, "--blend", shot, "--object", "Head", "--strip", "line01")
    assert result.returncode == 0, result.stderr
    assert "[1/1] shot010.blend:Head ok" in result.stderr
    assert "1 of 1 shots baked, 0 failed" in result.stderr
    assert digest(shot) == before  # never overwritten unless asked
    baked = inspect(farm / "shot010_talkinghead.blend")
    assert baked["action"] and "TH1.000" in baked["shape_keys"]


def test_bake_cache_mode_to_a_named_output(farm):
    out_dir = farm / "out"
    out_dir.mkdir()
    result = bake(farm, "--blend", farm / "shot010.blend", "--object", "Head", "--strip", "line01",
                  "--mode", "cache", "--output", out_dir / "shot010_cache.blend")
    assert result.returncode == 0, result.stderr
    baked = inspect(out_dir / "shot010_cache.blend")
    assert baked["modifiers"] == [["MESH_CACHE", "//shot010_cache_Head_talkinghead.pc2"]]
    assert (out_dir / "shot010_cache_Head_talkinghead.pc2").is_file()


def test_shot_list_reports_each_shot_and_fails_only_the_bad_one(farm, speech_path, audio_files, diffusion_model):
    shots = [
        {"blend": "shot010.blend", "object": "Head", "strip": "line01", "output": "list_a.blend"},
        {"blend": "shot010.blend", "object": "Head", "audio": str(audio_files["silent"]), "output": "list_b.blend"},
        {"blend": "shot010.blend", "object": "Nobody", "audio": str(speech_path), "output": "list_c.blend"},
        {"blend": "shot010.blend", "object": "Head", "audio": str(speech_path), "start_frame": 50,
         "emotion": "neutral", "output": "list_d.blend"},
        {"blend": "shot010.blend", "object": "Head", "strip": "line01", "takes": 2, "output": "list_e.blend"},
        {"blend": "shot010.blend", "object": "Head", "strip": "line01", "model": diffusion_model, "seed": 3,
         "takes": 2, "guidance": 2.5, "output": "list_f.blend"},
        {"blend": "shot010.blend", "object": "Head", "strip": "line01", "model": diffusion_model,
         "guidance": "tight", "output": "list_g.blend"},
        {"blend": "shot010.blend", "object": "Head", "strip": "line01", "lip_seal": 2, "output": "list_h.blend"},
        {"blend": "shot010.blend", "object": "Head", "strip": "line01", "model": diffusion_model, "lip_seal": 1,
         "transcribe": False, "output": "list_i.blend"},
        # a model without a phonetic head seals by the words it is given
        {"blend": "shot010.blend", "object": "Head", "strip": "line01", "model": diffusion_model, "lip_seal": 1,
         "transcript": "he was not an ill disposed young man", "word_markers": True, "output": "list_j.blend"},
    ]
    (farm / "shots.json").write_text(json.dumps(shots))
    result = bake(farm, "--shots", farm / "shots.json")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert [line.split()[1] for line in progress] == ["shot010.blend:Head", "shot010.blend:Head",
                                                      "shot010.blend:Nobody", "shot010.blend:Head",
                                                      "shot010.blend:Head", "shot010.blend:Head", "shot010.blend:Head",
                                                      "shot010.blend:Head", "shot010.blend:Head", "shot010.blend:Head"]
    assert "ok" in progress[0] and "ok" in progress[3] and "ok" in progress[5]
    assert "FAILED" in progress[4] and "identical" in progress[4]  # the default model does not sample
    assert "2 takes" in progress[5] and "seed 3" in progress[5] and "seed 4" in progress[5]
    assert "FAILED" in progress[1] and "is silent" in progress[1]
    assert "FAILED" in progress[2] and "No object 'Nobody'" in progress[2]
    assert "FAILED" in progress[6] and "'guidance' must be a number" in progress[6]
    assert "FAILED" in progress[7] and "Lip seal 2" in progress[7] and "out of range" in progress[7]
    assert "FAILED" in progress[8] and "no phonetic head" in progress[8]  # refused before any work
    assert "ok" in progress[9] and "8 word markers" in progress[9]
    assert lines[-1].endswith("4 of 10 shots baked, 6 failed")
    assert (farm / "list_a.blend").is_file() and (farm / "list_d.blend").is_file()
    assert not (farm / "list_b.blend").exists() and not (farm / "list_c.blend").exists()
    assert not (farm / "list_e.blend").exists() and (farm / "list_f.blend").is_file()
    assert not (farm / "list_g.blend").exists() and not (farm / "list_h.blend").exists()


def test_output_equal_to_input_needs_explicit_permission(farm):
    shot = farm / "shot010.blend"
    before = digest(shot)
    result = bake(farm, "--blend", shot, "--object", "Head", "--strip", "line01", "--output", shot)
    assert result.returncode == 1 and "--overwrite-input" in result.stderr
    assert digest(shot) == before


def test_bad_arguments_exit_non_zero_with_usage(farm):
    result = bake(farm, "--mode", "video")
    assert result.returncode == 2 and "invalid choice" in result.stderr


# what the extension zip may hold: the add-on, the bpy-free core and the shipped weights
EXTENSION_TOP_LEVEL = {"blender_manifest.toml", "__init__.py", "__main__.py", "README.md", "preferences.py",
                       "properties.py", "operators", "panels", "blender", "core", "weights"}


def test_the_documented_build_makes_a_zip_of_only_what_the_extension_needs(tmp_path):
    """README's build command, into a folder that does not exist yet (as dist/ on a fresh clone)."""
    output = tmp_path / "dist"
    built = subprocess.run([sys.executable, str(REPO / "tools" / "build_extension.py"), "--output-dir", str(output)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    import zipfile

    (archive,) = output.glob("talking_head-*.zip")
    assert f"built {archive}" in built.stderr
    names = zipfile.ZipFile(archive).namelist()
    assert "blender_manifest.toml" in names and "core/pipeline.py" in names and "operators/generate.py" in names
    assert "weights/default/model.safetensors" in names
    assert not any(n.startswith("weights/default_v4/") for n in names)  # a training start, not for animators
    strays = sorted({n.split("/")[0] for n in names} - EXTENSION_TOP_LEVEL)
    assert not strays, f"the zip carries {strays}; exclude them in blender_manifest.toml"
    assert not any("__pycache__" in n or n.endswith((".pyc", ".blend", ".zip")) for n in names)
    assert archive.stat().st_size < 30 * 2**20, f"{archive.stat().st_size / 2**20:.1f} MiB"


def test_extension_registers_without_torch_and_says_how_to_install_it(tmp_path):
    """Blender's bundled Python has no torch until the user installs it: the add-on must still load and
    tell them what to do, rather than fail to register."""
    code = f"""
import sys
sys.modules["torch"] = None  # import torch now raises ImportError, as in a fresh Blender
import bpy, addon_utils
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.preferences.extensions.repos.new(name="t", module="notorch", custom_directory={str(tmp_path)!r}, source="USER")
module = addon_utils.enable("bl_ext.notorch.talking_head", default_set=True, handle_error=None)
prefs = sys.modules["bl_ext.notorch.talking_head.preferences"]
print("MISSING", prefs.missing_modules())
lines = []
class Box:
    def label(self, text="", icon="NONE"): lines.append(text)
    def operator(self, idname, text="", icon="NONE"): lines.append("[" + text + "]"); return type("Op", (), {{}})()
    def row(self): return self
class Layout(Box):
    def prop(self, *a, **k): pass
    def box(self): return self
addon = bpy.context.preferences.addons["bl_ext.notorch.talking_head"]
prefs_class = type(addon.preferences)
fake = type("P", (), {{"layout": Layout(), "draw_dependencies": prefs_class.draw_dependencies,
                       **{{k: getattr(addon.preferences, k) for k in ("device", "wheel_folder", "torch_build", "video_packages")}}}})()
prefs_class.draw(fake, bpy.context)
print("HELP", " | ".join(lines))
"""
    (tmp_path / "talking_head").symlink_to(REPO, target_is_directory=True)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MISSING ['torch']" in result.stdout
    assert "[Install Dependencies]" in result.stdout and "Online access is off" in result.stdout
    assert "pip install torch==2.13.0" in result.stdout


def test_readme_demo_animates_the_head(tmp_path, weights_dir, speech_path):
    """The README's first command: speech in, animated FLAME head out (the tiny model stands in)."""
    import tempfile

    temp_before = set(os.listdir(tempfile.gettempdir()))
    result = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--audio", str(speech_path),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Animated 'Head' frames 1-72" in result.stderr  # 2.99 s at 24 fps
    assert (tmp_path / "out" / "demo.blend").stat().st_size > 0
    assert (tmp_path / "out" / "demo_preview.png").stat().st_size > 0
    assert not {n for n in set(os.listdir(tempfile.gettempdir())) - temp_before if n.startswith("talking_head")}
    # moved elsewhere, the .blend still has its speech, and the scene ends with the animation
    moved = tmp_path / "moved" / "demo.blend"
    moved.parent.mkdir()
    os.replace(tmp_path / "out" / "demo.blend", moved)
    check = python(f"""
import bpy
bpy.ops.wm.open_mainfile(filepath={str(moved)!r})
scene = bpy.context.scene
strip = scene.sequence_editor.strips["speech"]
print("SCENE", scene.frame_start, scene.frame_end, strip.sound.packed_file is not None)
""")
    assert check.returncode == 0, check.stderr
    assert "SCENE 1 72 True" in check.stdout, check.stdout


def test_the_first_readme_command_needs_no_root():
    """setup.sh installs Python packages only; the corpus tools' system packages are separate."""
    code = "\n".join(line for line in (REPO / "setup.sh").read_text().splitlines() if not line.lstrip().startswith("#"))
    assert "apt-get" not in code and "sudo" not in code and "install_speech_tools" not in code
    assert "tools/install_speech_tools.sh" in (REPO / ".ci" / "run").read_text()


def test_an_existing_output_is_kept_unless_overwrite_is_given(farm):
    out = farm / "kept.blend"
    out.write_bytes(b"an earlier bake")
    args = ("--blend", farm / "shot010.blend", "--object", "Head", "--strip", "line01", "--output", out)
    refused = bake(farm, *args)
    assert refused.returncode == 1 and "already exists; pass --overwrite" in refused.stderr
    assert out.read_bytes() == b"an earlier bake"
    replaced = bake(farm, *args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert inspect(out)["action"]
    assert not [p.name for p in farm.iterdir() if p.name.startswith(".talkinghead-") or p.name.endswith("@")]


def test_caches_of_different_shots_in_one_folder_are_named_by_shot(farm):
    (farm / "caches").mkdir()
    shots = [{"blend": "shot010.blend", "object": "Head", "strip": "line01", "mode": "cache",
              "output": f"caches/{name}.blend"} for name in ("shotA", "shotB")]
    (farm / "cache_shots.json").write_text(json.dumps(shots))
    result = bake(farm, "--shots", farm / "cache_shots.json")
    assert result.returncode == 0, result.stderr
    caches = sorted(p.name for p in (farm / "caches").glob("*.pc2"))
    assert caches == ["shotA_Head_talkinghead.pc2", "shotB_Head_talkinghead.pc2"]
    assert inspect(farm / "caches" / "shotB.blend")["modifiers"] == [["MESH_CACHE", "//shotB_Head_talkinghead.pc2"]]


def test_two_bakes_of_one_output_do_not_race(farm):
    import time

    out = farm / "raced.blend"
    args = [sys.executable, str(REPO / "tools" / "bake.py"), "--blend", str(farm / "shot010.blend"), "--object",
            "Head", "--strip", "line01", "--output", str(out)]
    first = subprocess.Popen(args, cwd=farm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = farm / ".raced.blend.talkinghead-lock"
    deadline = time.time() + 120
    while not lock.exists():
        assert first.poll() is None and time.time() < deadline, first.communicate()[1]
        time.sleep(0.02)
    second = subprocess.run(args + ["--overwrite"], cwd=farm, capture_output=True, text=True, timeout=300)
    _, first_err = first.communicate(timeout=300)
    assert second.returncode == 1 and "is being written by process" in second.stderr, second.stderr
    assert first.returncode == 0 and f"saved {out}" in first_err, first_err
    assert inspect(out)["action"]  # the survivor opens and is animated
    assert not [p.name for p in farm.iterdir() if p.name.startswith(".") and "raced" in p.name]
