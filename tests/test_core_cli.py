import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, shared_path
from core.mesh_io import read_pc2


def run_core(*args, env_weights):
    import os

    env = {**os.environ, "TALKING_HEAD_WEIGHTS": str(env_weights)}
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_animate_writes_frames_by_duration_times_fps(tmp_path, weights_dir, speech_path):
    template = shared_path("flame/FLAME_sample.ply")
    out = tmp_path / "motion.npy"
    result = run_core("animate", "--audio", speech_path, "--template", template, "--out", out, "--fps", 25,
                      env_weights=weights_dir)
    assert result.returncode == 0, result.stderr
    motion = np.load(out)
    assert motion.dtype == np.float32 and motion.shape == (round(2.99 * 25), 5023, 3)
    assert np.abs(motion - motion[0]).max() > 1e-3  # it moves (and starts and ends at rest)
    assert np.abs(motion[-1] - motion[0]).max() < 1e-3

    pc2 = tmp_path / "motion.pc2"
    assert run_core("animate", "--audio", speech_path, "--template", template, "--out", pc2, "--fps", 25,
                    env_weights=weights_dir).returncode == 0
    frames, _, _ = read_pc2(str(pc2))
    np.testing.assert_allclose(frames, motion, atol=1e-7)


def test_existing_output_is_not_overwritten(tmp_path, weights_dir, speech_path):
    out = tmp_path / "mine.npy"
    out.write_bytes(b"the user's file")
    result = run_core("animate", "--audio", speech_path, "--template", shared_path("flame/FLAME_sample.ply"),
                      "--out", out, env_weights=weights_dir)
    assert result.returncode != 0 and "--overwrite" in result.stderr
    assert out.read_bytes() == b"the user's file"


@pytest.mark.parametrize("case", ["cube", "silent", "missing"])
def test_errors_are_one_clear_line(tmp_path, weights_dir, audio_files, case):
    template = shared_path("flame/FLAME_sample.ply")
    audio = audio_files["speech"]
    if case == "cube":
        template = tmp_path / "cube.obj"
        template.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    else:
        audio = audio_files[case]
    out = tmp_path / "out.npy"
    result = run_core("animate", "--audio", audio, "--template", template, "--out", out, env_weights=weights_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not out.exists()


def test_takes_write_one_file_per_seed_and_differ(tmp_path, weights_dir, diffusion_model, speech_path):
    template = shared_path("flame/FLAME_sample.ply")
    out = tmp_path / "line.npy"
    result = run_core("animate", "--audio", speech_path, "--template", template, "--out", out, "--model",
                      diffusion_model, "--takes", 3, "--seed", 7, "--no-transcribe", env_weights=weights_dir)
    assert result.returncode == 0, result.stderr
    takes = [np.load(tmp_path / f"line_take{k}.npy") for k in (1, 2, 3)]
    assert not out.exists()
    assert all(t.shape == (round(2.99 * 30), 5023, 3) for t in takes)
    assert np.abs(takes[0] - takes[1]).max() > 1e-5 and np.abs(takes[1] - takes[2]).max() > 1e-5
    # take 2 of seed 7 is the take of seed 8 on its own
    single = tmp_path / "again.npy"
    assert run_core("animate", "--audio", speech_path, "--template", template, "--out", single, "--model",
                    diffusion_model, "--seed", 8, "--no-transcribe", env_weights=weights_dir).returncode == 0
    np.testing.assert_allclose(np.load(single), takes[1], atol=1e-6)


def test_takes_refused_for_a_model_that_does_not_sample_and_before_overwriting(tmp_path, weights_dir,
                                                                                diffusion_model, speech_path):
    template = shared_path("flame/FLAME_sample.ply")
    result = run_core("animate", "--audio", speech_path, "--template", template, "--out", tmp_path / "a.npy",
                      "--takes", 2, env_weights=weights_dir)
    assert result.returncode != 0 and "Takes to 1" in result.stderr
    result = run_core("animate", "--audio", speech_path, "--template", template, "--out", tmp_path / "a.npy",
                      "--guidance", 3, env_weights=weights_dir)
    assert result.returncode != 0 and "does not sample" in result.stderr
    assert list(tmp_path.iterdir()) == []

    existing = tmp_path / "b_take2.npy"
    existing.write_bytes(b"the user's take")
    result = run_core("animate", "--audio", speech_path, "--template", template, "--out", tmp_path / "b.npy",
                      "--model", diffusion_model, "--takes", 2, env_weights=weights_dir)
    assert result.returncode != 0 and "--overwrite" in result.stderr and "b_take2.npy" in result.stderr
    assert existing.read_bytes() == b"the user's take" and not (tmp_path / "b_take1.npy").exists()


def _all_parsers():
    """Every (name, parser) of `python -m core` and of the bake, whose --help a user reads."""
    import argparse
    import importlib

    from core.cli import build_parser

    parsers = [("python -m core", build_parser())]
    commands = next(a for a in parsers[0][1]._actions if isinstance(a, argparse._SubParsersAction))
    parsers += [(f"python -m core {name}", sub) for name, sub in commands.choices.items()]
    pytest.importorskip("bpy", reason="the bake's parser lives in the Blender layer")
    sys.path.insert(0, str(REPO / "tools"))
    importlib.import_module("checkout_package").import_checkout()
    from talking_head.blender.bake import build_parser as bake_parser

    return parsers + [("bake", bake_parser())]


def test_every_command_and_option_explains_itself_in_help():
    from core.models import available_models

    for name, parser in _all_parsers():
        if name != "python -m core":
            assert parser.description, f"{name} has no description"
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no help"
        model = next((a for a in parser._actions if "--model" in a.option_strings), None)
        if model is not None:
            assert all(m in model.help for m in available_models()), f"{name} --model does not list the models"


def test_train_help_documents_every_config_key():
    from dataclasses import fields

    from core.adapt import MetaOptions
    from core.train_config import TrainConfig, settings_help

    text = settings_help()
    for setting in fields(TrainConfig):
        assert f"  {setting.name} (default " in text
    for option in fields(MetaOptions):
        assert f'"{option.name}"' in text, f"meta key {option.name} is not documented"
    result = subprocess.run([sys.executable, "-m", "core", "train", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "weight_average (default 0.0)" in result.stdout
    assert "core/train.py" not in result.stdout  # documented here, not pointed at in the source


def test_messages_name_the_model_as_the_user_asked_for_it(weights_dir, speech_path, tmp_path):
    from core.models import load_model

    model = load_model(None)
    assert model.name == "default" and model.config["name"] == "tiny"  # the version stays in the config
    result = run_core("animate", "--audio", speech_path, "--template", shared_path("flame/FLAME_sample.ply"),
                      "--out", tmp_path / "m.npy", "--emotion", "happy", env_weights=weights_dir)
    assert result.returncode == 2 and "Model 'default' has no emotion control" in result.stderr, result.stderr
