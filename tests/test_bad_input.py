"""Bad input through the command lines a user runs: one line saying what to do, a non-zero exit,
nothing partial left and nothing overwritten (issue 32's table, row by row)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import LIBRIVOX_CLIP as SPEECH  # 2.99 s of real speech
from conftest import REPO, shared_path

TEMPLATE = "flame/FLAME_sample.ply"


def run_core(*args, weights: Path, cwd: Path = REPO, preexec=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TALKING_HEAD_WEIGHTS": str(weights), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, preexec_fn=preexec)


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, flame_mesh):
    """A moving 2.99 s reference at 30 fps, as .npy, plus the broken variants of its motion file."""
    folder = tmp_path_factory.mktemp("reference")
    template = flame_mesh[0]
    motion = np.repeat(template[None], 90, axis=0)
    motion[:, ::5, 1] += 0.002 * np.sin(np.arange(90) / 3.0)[:, None]
    np.save(folder / "moving.npy", motion)
    np.save(folder / "still.npy", np.repeat(template[None], 90, axis=0))
    (folder / "corrupt.npy").write_bytes(b"\x93NUMPY\x01\x00garbage" + os.urandom(200))
    np.save(folder / "pickled.npy", np.array([{"frames": 1}], dtype=object), allow_pickle=True)
    from core.mesh_io import write_pc2

    write_pc2(str(folder / "full.pc2"), motion)
    (folder / "truncated.pc2").write_bytes((folder / "full.pc2").read_bytes()[: 32 + 5023 * 12 * 10])
    return folder


@pytest.mark.parametrize("motion, words", [
    ("corrupt.npy", ("not a valid .npy",)),
    ("pickled.npy", ("Python objects",)),
    ("truncated.pc2", ("truncated", "90 frames")),
    ("still.npy", ("barely moves",)),
])
def test_adapt_refuses_bad_reference_motion(tmp_path, weights_dir, reference, motion, words):
    result = run_core("adapt", "--audio", shared_path(SPEECH), "--motion", reference / motion, "--template",
                      shared_path(TEMPLATE), "--name", "Ana", "--out", tmp_path, weights=weights_dir)
    assert_one_line_error(result, *words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", ["inf", "1e6", "0", "nan"])
def test_animate_refuses_frame_rates_outside_1_to_240(tmp_path, weights_dir, fps):
    result = run_core("animate", "--audio", shared_path(SPEECH), "--template", shared_path(TEMPLATE),
                      "--out", tmp_path / "m.npy", "--fps", fps, weights=weights_dir)
    assert_one_line_error(result, "frame rate from 1 to 240")
    assert list(tmp_path.iterdir()) == []


def test_animate_into_a_read_only_folder_says_so_before_the_work(tmp_path, weights_dir):
    if os.geteuid() == 0:  # root writes through any mode bits: a read-only kernel file system stands in
        folder = Path("/sys")
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
    before = sorted(os.listdir(folder))
    result = run_core("animate", "--audio", shared_path(SPEECH), "--template", shared_path(TEMPLATE),
                      "--out", folder / "m.npy", weights=weights_dir)
    assert_one_line_error(result, "Cannot write in", "permission denied")
    assert sorted(os.listdir(folder)) == before


def test_an_output_that_is_a_folder_is_refused_even_with_overwrite(tmp_path, weights_dir):
    (tmp_path / "dir.npy").mkdir()
    result = run_core("animate", "--audio", shared_path(SPEECH), "--template", shared_path(TEMPLATE),
                      "--out", tmp_path / "dir.npy", "--overwrite", weights=weights_dir)
    assert_one_line_error(result, "is a folder")
    assert list((tmp_path / "dir.npy").iterdir()) == []


def _small_file_limit():
    """Files may not grow past 1 MiB, as on a full disk: writes fail with an error instead of a signal."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_a_write_that_runs_out_of_space_leaves_nothing(tmp_path, weights_dir):
    out = tmp_path / "m.npy"  # 2.99 s at 30 fps of 5023 x 3 float32: 5 MiB
    result = run_core("animate", "--audio", shared_path(SPEECH), "--template", shared_path(TEMPLATE),
                      "--out", out, weights=weights_dir, preexec=_small_file_limit)
    assert_one_line_error(result, "Could not write", "Nothing was written")
    assert list(tmp_path.iterdir()) == []


def test_a_nan_template_is_refused(tmp_path, weights_dir, flame_mesh):
    vertices = flame_mesh[0].copy()
    vertices[100] = np.nan
    np.save(tmp_path / "nan.npy", vertices)
    result = run_core("animate", "--audio", shared_path(SPEECH), "--template", tmp_path / "nan.npy",
                      "--out", tmp_path / "m.npy", weights=weights_dir)
    assert_one_line_error(result, "NaN or infinite")
    assert not (tmp_path / "m.npy").exists()


def test_a_truncated_wav_is_refused_saying_how_much_is_missing(tmp_path, weights_dir):
    import soundfile

    audio, rate = soundfile.read(str(shared_path(SPEECH)), dtype="int16")
    soundfile.write(str(tmp_path / "full.wav"), audio, rate, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 2 * rate])  # header says 2.99 s, 1 s of samples follow
    result = run_core("animate", "--audio", tmp_path / "cut.wav", "--template", shared_path(TEMPLATE),
                      "--out", tmp_path / "m.npy", weights=weights_dir)
    assert_one_line_error(result, "truncated", "2.99 s", "1.00 s")
    assert not (tmp_path / "m.npy").exists()


def _write_style(folder: Path, name: str, tensors: dict, info: dict) -> None:
    from safetensors.numpy import save_file

    save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(info))


@pytest.mark.parametrize("damage, words", [("nan", "NaN"), ("no_name", "lacks")])
def test_damaged_style_files_are_refused_and_skipped_in_lists(tmp_path, weights_dir, damage, words):
    styles = tmp_path / "styles"
    styles.mkdir()
    info = {"format": 1, "name": "Ana", "base_model": "tiny", "base_fingerprint": "0" * 16}
    tensors = {"style": np.zeros(8, np.float32)}
    if damage == "nan":
        tensors["style"][3] = np.nan
    else:
        del info["name"]
    _write_style(styles, "Ana", tensors, info)
    result = run_core("animate", "--audio", shared_path(SPEECH), "--template", shared_path(TEMPLATE),
                      "--out", tmp_path / "m.npy", "--style", styles / "Ana.safetensors", weights=weights_dir)
    assert_one_line_error(result, words)
    assert not (tmp_path / "m.npy").exists()

    from core.styles import available_styles

    _write_style(styles, "Good", {"style": np.zeros(8, np.float32)},
                 {"format": 1, "name": "Good", "base_model": "tiny", "base_fingerprint": "1" * 16})
    assert available_styles([str(styles)]) == (["Ana", "Good"] if damage == "nan" else ["Good"])


# --- fuzzing the readers: random and truncated bytes give a correct read or a clear error, fast ---

def _valid_files(folder: Path, flame_mesh) -> dict[str, Path]:
    from core.mesh_io import write_npy, write_pc2

    vertices, triangles = flame_mesh
    small_v, small_t = vertices[:40], triangles[(triangles < 40).all(axis=1)][:20]
    files = {"ply": folder / "m.ply", "obj": folder / "m.obj", "npy": folder / "m.npy", "pc2": folder / "m.pc2",
             "style": folder / "s.safetensors", "shots": folder / "shots.json"}
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(small_v)}\nproperty float x\n"
              f"property float y\nproperty float z\nelement face {len(small_t)}\n"
              "property list uchar int vertex_indices\nend_header\n").encode()
    faces = b"".join(np.uint8(3).tobytes() + t.astype("<i4").tobytes() for t in small_t)
    files["ply"].write_bytes(header + small_v.astype("<f4").tobytes() + faces)
    files["obj"].write_text("".join(f"v {x} {y} {z}\n" for x, y, z in small_v)
                            + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in small_t))
    write_npy(str(files["npy"]), small_v)
    write_pc2(str(files["pc2"]), np.repeat(small_v[None], 3, axis=0))
    _write_style(folder, "s", {"style": np.zeros(8, np.float32)},
                 {"format": 1, "name": "s", "base_model": "tiny", "base_fingerprint": "0" * 16})
    files["shots"].write_text(json.dumps([{"blend": "a.blend", "object": "Head", "strip": "line01", "seed": 3}]))
    return files


def _read(kind: str, path: Path):
    from core.mesh_io import read_mesh, read_pc2
    from core.shots import read_shot_list, shot_problem
    from core.styles import load_style

    if kind in ("ply", "obj", "npy"):
        return read_mesh(str(path))
    if kind == "pc2":
        return read_pc2(str(path))
    if kind == "style":
        return load_style(str(path))
    shots = read_shot_list(str(path))
    return [shot_problem(s) for s in shots]


@pytest.mark.parametrize("kind", ["ply", "obj", "npy", "pc2", "style", "shots"])
def test_readers_survive_random_and_truncated_bytes(tmp_path, flame_mesh, kind):
    import time

    from core.errors import TalkingHeadError

    files = _valid_files(tmp_path, flame_mesh)
    original = files[kind].read_bytes()
    _read(kind, files[kind])  # the untouched file reads
    rng = np.random.default_rng(0)
    variants = [original[:n] for n in sorted(set(rng.integers(0, len(original), 25).tolist()) | {0, 1, 8})]
    for _ in range(25):  # flipped bytes at random places
        damaged = bytearray(original)
        for at in rng.integers(0, len(damaged), int(rng.integers(1, 8))):
            damaged[at] = int(rng.integers(0, 256))
        variants.append(bytes(damaged))
    variants += [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in (5, 100, 5000)]
    for number, data in enumerate(variants):
        files[kind].write_bytes(data)
        started = time.perf_counter()
        try:
            _read(kind, files[kind])
        except TalkingHeadError as exc:
            assert str(exc), f"variant {number}: an empty message"
        assert time.perf_counter() - started < 5.0, f"variant {number} took too long"
