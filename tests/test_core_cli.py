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
    assert np.abs(motion[0] - motion[-1]).max() > 0  # it moves

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
                      diffusion_model, "--takes", 3, "--seed", 7, env_weights=weights_dir)
    assert result.returncode == 0, result.stderr
    takes = [np.load(tmp_path / f"line_take{k}.npy") for k in (1, 2, 3)]
    assert not out.exists()
    assert all(t.shape == (round(2.99 * 30), 5023, 3) for t in takes)
    assert np.abs(takes[0] - takes[1]).max() > 1e-5 and np.abs(takes[1] - takes[2]).max() > 1e-5
    # take 2 of seed 7 is the take of seed 8 on its own
    single = tmp_path / "again.npy"
    assert run_core("animate", "--audio", speech_path, "--template", template, "--out", single, "--model",
                    diffusion_model, "--seed", 8, env_weights=weights_dir).returncode == 0
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
