"""The farm path: `python -m talking_head bake` with the pip bpy module, on real .blend files."""

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
    """A folder with a shot .blend (FLAME head + sound strip) and the checkout importable as talking_head."""
    root = tmp_path_factory.mktemp("farm")
    (root / "pkgs").mkdir()
    (root / "pkgs" / "talking_head").symlink_to(REPO, target_is_directory=True)
    from conftest import shared_path

    blend = root / "shot010.blend"
    made = python(SCENE_SCRIPT.format(repo=str(REPO), mesh=str(shared_path("flame/FLAME_sample.ply")),
                                      audio=str(speech_path), blend=str(blend)))
    assert made.returncode == 0, made.stderr
    return root


def bake(farm: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(farm / "pkgs")}
    return subprocess.run([sys.executable, "-m", "talking_head", "bake", *map(str, args)], cwd=farm, env=env,
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
    assert baked["action"] and "TH1.mean" in baked["shape_keys"]


def test_bake_cache_mode_to_a_named_output(farm):
    out_dir = farm / "out"
    out_dir.mkdir()
    result = bake(farm, "--blend", farm / "shot010.blend", "--object", "Head", "--strip", "line01",
                  "--mode", "cache", "--output", out_dir / "shot010_cache.blend")
    assert result.returncode == 0, result.stderr
    baked = inspect(out_dir / "shot010_cache.blend")
    assert baked["modifiers"] == [["MESH_CACHE", "//Head_talkinghead.pc2"]]
    assert (out_dir / "Head_talkinghead.pc2").is_file()


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
         "output": "list_i.blend"},
    ]
    (farm / "shots.json").write_text(json.dumps(shots))
    result = bake(farm, "--shots", farm / "shots.json")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert [line.split()[1] for line in progress] == ["shot010.blend:Head", "shot010.blend:Head",
                                                      "shot010.blend:Nobody", "shot010.blend:Head",
                                                      "shot010.blend:Head", "shot010.blend:Head", "shot010.blend:Head",
                                                      "shot010.blend:Head", "shot010.blend:Head"]
    assert "ok" in progress[0] and "ok" in progress[3] and "ok" in progress[5]
    assert "FAILED" in progress[4] and "identical" in progress[4]  # the default model does not sample
    assert "2 takes" in progress[5] and "seed 3" in progress[5] and "seed 4" in progress[5]
    assert "FAILED" in progress[1] and "is silent" in progress[1]
    assert "FAILED" in progress[2] and "No object 'Nobody'" in progress[2]
    assert "FAILED" in progress[6] and "'guidance' must be a number" in progress[6]
    assert "FAILED" in progress[7] and "Lip seal 2" in progress[7] and "out of range" in progress[7]
    assert "FAILED" in progress[8] and "no phonetic head" in progress[8]  # refused before any work
    assert lines[-1].endswith("3 of 9 shots baked, 6 failed")
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


def test_manifest_passes_blenders_validator_and_the_extension_builds(tmp_path):
    import bpy

    cli = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    validate = subprocess.run([sys.executable, str(cli), "validate", str(REPO)], capture_output=True, text=True)
    assert validate.returncode == 0 and "Success" in validate.stdout + validate.stderr, validate.stdout + validate.stderr
    built = subprocess.run([sys.executable, str(cli), "build", "--source-dir", str(REPO), "--output-dir", str(tmp_path)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    import zipfile

    (archive,) = tmp_path.glob("talking_head-*.zip")
    names = zipfile.ZipFile(archive).namelist()
    assert "blender_manifest.toml" in names and "core/pipeline.py" in names and "operators/generate.py" in names
    assert not any(n.startswith(("tests/", ".venv/", ".git/")) for n in names)


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
class Layout(Box):
    def prop(self, *a, **k): pass
    def box(self): return self
addon = bpy.context.preferences.addons["bl_ext.notorch.talking_head"]
type(addon.preferences).draw(type("P", (), {{"layout": Layout(), **{{k: getattr(addon.preferences, k) for k in ("device",)}}}})(), bpy.context)
print("HELP", " | ".join(lines))
"""
    (tmp_path / "talking_head").symlink_to(REPO, target_is_directory=True)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MISSING ['torch']" in result.stdout
    assert "pip install torch==2.13.0" in result.stdout


def test_readme_demo_animates_the_head(tmp_path, weights_dir, speech_path):
    """The README's first command: speech in, animated FLAME head out (the tiny model stands in)."""
    result = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--audio", str(speech_path),
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Animated 'Head' frames 1-72" in result.stderr  # 2.99 s at 24 fps
    assert (tmp_path / "demo.blend").stat().st_size > 0 and (tmp_path / "demo_preview.png").stat().st_size > 0
