"""Nothing lost under concurrency and crashes, and no load that runs code (issue 33): racing runs on
one output, kill -9 and SIGTERM, file modes, planted pickles and checkpoints."""

from __future__ import annotations

import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import LIBRIVOX_CLIP, REPO, shared_path

TEMPLATE = "flame/FLAME_sample.ply"


def start_animate(out: Path, weights: Path, *extra, preexec=None) -> subprocess.Popen:
    env = {**os.environ, "TALKING_HEAD_WEIGHTS": str(weights)}
    return subprocess.Popen([sys.executable, "-m", "core", "animate", "--audio", str(shared_path(LIBRIVOX_CLIP)),
                             "--template", str(shared_path(TEMPLATE)), "--out", str(out), *map(str, extra)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec)


def lock_of(out: Path) -> Path:
    return out.parent / f".{out.name}.talkinghead-lock"


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_second_run_on_the_same_output_fails_at_once_and_the_first_result_survives(tmp_path, weights_dir):
    out = tmp_path / "same.npy"
    first = start_animate(out, weights_dir)
    wait_for(lock_of(out), first)
    second = start_animate(out, weights_dir, "--overwrite")  # even --overwrite does not race a live writer
    _, second_err = second.communicate(timeout=300)
    _, first_err = first.communicate(timeout=300)
    assert second.returncode == 2 and "is being written by process" in second_err, second_err
    assert first.returncode == 0, first_err
    assert np.load(out).shape[1:] == (5023, 3)
    assert hidden(tmp_path) == []


def test_kill_9_leaves_only_hidden_files_that_the_next_run_removes(tmp_path, weights_dir):
    out = tmp_path / "line.npy"
    victim = start_animate(out, weights_dir)
    wait_for(lock_of(out), victim)
    victim.kill()
    victim.communicate()
    assert not out.exists() and hidden(tmp_path)  # the dead run's lock is still there
    rerun = start_animate(out, weights_dir)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert out.exists() and hidden(tmp_path) == []


def test_sigterm_cleans_up_and_writes_nothing(tmp_path, weights_dir):
    out = tmp_path / "line.npy"
    run = start_animate(out, weights_dir)
    wait_for(lock_of(out), run)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and "interrupted" in err, err
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from core.outputs import atomic_output, temp_name

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = temp_name()
    stale = mine.replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    (tmp_path / stale).write_bytes(b"x" * 100)
    (tmp_path / mine).write_bytes(b"a live process's")  # this process is alive: kept
    with atomic_output(str(tmp_path / "out.bin")) as handle:
        handle.write(b"result")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.bin", mine])


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    code = ("import os, sys, numpy as np; sys.path.insert(0, sys.argv[1]); os.umask(int(sys.argv[3]));"
            "from core.mesh_io import write_npy, write_pc2; from core.styles import Style, save_style;"
            "write_npy(sys.argv[2] + '/a.npy', np.zeros((2, 3), np.float32));"
            "write_pc2(sys.argv[2] + '/a.pc2', np.zeros((2, 4, 3), np.float32));"
            "save_style(Style('s', 'm', '0' * 16, {'style': np.zeros(4, np.float32)}), sys.argv[2] + '/s')")
    result = subprocess.run([sys.executable, "-c", code, str(REPO), str(tmp_path), str(umask)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in ("a.npy", "a.pc2", "s.safetensors", "s.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


class _RunsCode:
    """A pickle that would create a file when loaded, as a planted cache could do anything."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_planted_pickles_are_refused_without_running_them(tmp_path):
    from core.evaluate import load_masks
    from core.safe_pickle import UnsafePickleError

    marker = tmp_path / "ran"
    planted = tmp_path / "FLAME_masks.pkl"
    planted.write_bytes(pickle.dumps({"lips": _RunsCode(marker)}))
    with pytest.raises(UnsafePickleError, match="io.open"):
        load_masks(str(planted))
    assert not marker.exists()
    assert len(load_masks(str(shared_path("flame/FLAME_masks.pkl")))) > 5  # the real one still reads


def test_a_planted_templates_pickle_is_refused(tmp_path):
    from core.data import load_clips
    from core.safe_pickle import UnsafePickleError

    marker = tmp_path / "ran"
    (tmp_path / "templates.pkl").write_bytes(pickle.dumps({"FaceTalk_170725_00137_TA": _RunsCode(marker)}))
    (tmp_path / "wav").mkdir()
    (tmp_path / "vertices_npy").mkdir()
    with pytest.raises(UnsafePickleError):
        load_clips(str(tmp_path), "train")
    assert not marker.exists()


def test_the_mesh_cache_holds_no_pickle_and_a_damaged_one_is_rebuilt(tmp_path, flame_mesh):
    from core.mesh_graph import build_pyramid

    vertices, triangles = flame_mesh
    first = build_pyramid(vertices, triangles, cache_dir=str(tmp_path))
    (cache,) = tmp_path.glob("mesh_pyramid_*.npz")
    with np.load(cache, allow_pickle=False) as arrays:  # plain arrays only
        assert all(arrays[k].dtype != object for k in arrays.files)
    np.savez(cache, level0_vertices=np.array([_RunsCode(tmp_path / "ran")], dtype=object))
    again = build_pyramid(vertices, triangles, cache_dir=str(tmp_path))
    assert not (tmp_path / "ran").exists()
    assert np.array_equal(again.levels[1].spirals, first.levels[1].spirals)


def test_a_planted_checkpoint_is_refused_when_resuming(tmp_path):
    import torch

    from core.errors import ConfigError
    from core.train import load_checkpoint

    marker = tmp_path / "ran"
    torch.save({"model": {}, "rng": _RunsCode(marker)}, tmp_path / "checkpoint.pt")
    with pytest.raises(ConfigError, match="Cannot resume"):
        load_checkpoint(str(tmp_path / "checkpoint.pt"), torch.device("cpu"))
    assert not marker.exists()


def test_folder_in_place_appears_whole_or_not_at_all(tmp_path):
    from core.outputs import folder_in_place

    out = tmp_path / "corpus"
    with pytest.raises(RuntimeError):
        with folder_in_place(str(out)) as partial:
            os.makedirs(partial)
            (tmp_path / "corpus.partial" / "half.npy").write_bytes(b"x")
            raise RuntimeError("a bad recording half-way")
    assert not out.exists() and not (tmp_path / "corpus.partial").exists()
    out.mkdir()  # an empty folder the user made for it is taken over
    with folder_in_place(str(out)) as partial:
        os.makedirs(partial)
        (tmp_path / "corpus.partial" / "done.npy").write_bytes(b"y")
    assert (out / "done.npy").read_bytes() == b"y" and not (tmp_path / "corpus.partial").exists()
